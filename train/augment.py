"""Batch augmentation on tensors: random rotation, scaling, translation and elastic distortion in one warp.

The whole batch is warped at once with ``affine_grid``/``grid_sample``: no
per-image PIL work in the input pipeline (docs/decisions.md). The elastic
distortion is a smooth random displacement field added to the affine grid
before the one ``grid_sample``.
"""

import math
from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache
def _upsampling(cells: int, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (size, cells) matrix of 1-D bicubic upsampling (align_corners): bicubic is separable."""
    eye = torch.eye(cells, device=device, dtype=dtype).view(cells, 1, 1, cells)
    rows = F.interpolate(eye, size=(1, size), mode="bicubic", align_corners=True)
    return rows.view(cells, size).T.contiguous()


def elastic_field(
    n: int, size: int, strength: float, cells: int = 4, generator: torch.Generator | None = None, **opts
) -> torch.Tensor:
    """A smooth random displacement field (N, size, size, 2) in ``grid_sample``'s [-1, 1] coordinates.

    Gaussian noise on a coarse ``cells`` x ``cells`` lattice, upsampled bicubically to the image: each
    point moves by about ``strength`` pixels (the standard deviation per axis), neighbouring points
    alike, as in Simard et al.'s elastic distortions but with the Gaussian smoothing replaced by the
    upsampling of a coarse lattice, done as two small matrix products (``W @ noise @ W.T``) rather than
    ``F.interpolate``, which costs many times more on the CPU.
    """
    coarse = torch.randn(n, 2, cells, cells, generator=generator, **opts)
    up = _upsampling(cells, size, coarse.device, coarse.dtype)
    # One pixel is 2 / size in [-1, 1] coordinates.
    return (up @ coarse @ up.T).mul_(strength * 2.0 / size).permute(0, 2, 3, 1)


def random_affine(
    images: torch.Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    generator: torch.Generator | None = None,
    scale: float = 0.0,
    elastic: float = 0.0,
    elastic_cells: int = 4,
) -> torch.Tensor:
    """Rotate each image by U(-degrees, degrees), scale it by U(1 - scale, 1 + scale), shift it by
    U(-translate, translate) of its size and, with ``elastic`` > 0, distort it by a smooth random
    field moving each pixel by about ``elastic`` pixels (:func:`elastic_field`).

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
    if elastic:
        grid = grid + elastic_field(n, images.shape[-1], elastic, elastic_cells, **opts)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
