"""Batch augmentation on tensors: random rotation, scaling and translation in one affine warp.

The whole batch is warped at once with ``affine_grid``/``grid_sample``: no
per-image PIL work in the input pipeline (docs/decisions.md).
"""

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    generator: torch.Generator | None = None,
    scale: float = 0.0,
) -> torch.Tensor:
    """Rotate each image by U(-degrees, degrees), scale it by U(1 - scale, 1 + scale) and shift it by
    U(-translate, translate) of its size.

    ``images`` is a float (N, C, H, W) batch whose background is 0 (pixels in [0, 1],
    before normalisation), so the uncovered border fills with background and
    bilinear interpolation keeps values inside the input's range.
    """
    n = images.shape[0]
    opts = {"device": images.device, "dtype": images.dtype, "generator": generator}
    angle = (torch.rand(n, **opts) * 2 - 1) * math.radians(degrees)
    # affine_grid works in [-1, 1] coordinates: a shift of a fraction f of the image is 2f.
    shift = (torch.rand(n, 2, **opts) * 2 - 1) * (2 * translate)
    # affine_grid maps output to input coordinates: dividing by the zoom enlarges the digit.
    cos, sin = torch.cos(angle), torch.sin(angle)
    if scale:
        zoom = 1.0 + (torch.rand(n, **opts) * 2 - 1) * scale
        cos, sin = cos / zoom, sin / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
