"""Pen strokes traced from MNIST digits, for drawing them on the demo page with real pointer events.

A digit is thresholded, thinned to a one-pixel skeleton (Zhang-Suen), and the skeleton is walked
into polylines: each polyline is one stroke of the pen, in 28x28 pixel coordinates (x, y).
"""

import numpy as np

# Neighbours P2..P9 of Zhang and Suen's paper, clockwise from north, as (row, column) offsets.
RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def skeleton(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean picture: strokes one pixel wide, connectivity kept."""
    image = np.pad(ink.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = [np.roll(image, (-dr, -dc), axis=(0, 1)) for dr, dc in RING]
            count = sum(p)
            transitions = sum((p[i] == 0) & (p[(i + 1) % 8] == 1) for i in range(8))
            if step == 0:
                sides = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                sides = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            remove = (image == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & sides
            if remove.any():
                image[remove] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


def strokes(pixels: np.ndarray, level: int = 100) -> list[list[tuple[int, int]]]:
    """Polylines of (x, y) pixel positions that retrace an MNIST digit (uint8, ink bright)."""
    remaining = {(int(r), int(c)) for r, c in zip(*np.nonzero(skeleton(pixels >= level)), strict=True)}

    def neighbours(point):
        r, c = point
        # Straight neighbours first: a diagonal step past a straight one would skip a pixel.
        ordered = sorted(RING, key=lambda d: abs(d[0]) + abs(d[1]))
        return [(r + dr, c + dc) for dr, dc in ordered if (r + dr, c + dc) in remaining]

    paths = []
    while remaining:
        # Start at an end of a line when there is one, so a stroke is not cut in two.
        ends = [p for p in remaining if len(neighbours(p)) <= 1]
        point = min(ends or remaining)
        path = [point]
        remaining.discard(point)
        while following := neighbours(point):
            point = following[0]
            path.append(point)
            remaining.discard(point)
        paths.append([(c, r) for r, c in path])
    return paths
