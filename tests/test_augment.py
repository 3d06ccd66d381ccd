import pytest
import torch
import torch.nn.functional as F

from train.augment import elastic_field, random_affine

pytestmark = pytest.mark.unit


def digit_batch(n: int = 8) -> torch.Tensor:
    """A batch of bright crosses on black, in [0, 1]."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 10:18, 6:22] = 1.0
    x[:, :, 4:24, 12:16] = 0.7
    return x


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_keeps_shape_dtype_and_value_range():
    x = digit_batch()
    out = random_affine(x, generator=seeded())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)


def test_zero_strength_is_the_identity():
    x = digit_batch()
    torch.testing.assert_close(random_affine(x, degrees=0.0, translate=0.0, generator=seeded()), x)


def test_each_image_gets_its_own_warp():
    x = digit_batch()
    out = random_affine(x, generator=seeded())
    assert not torch.equal(out[0], out[1])


def test_same_seed_same_warp():
    x = digit_batch()
    assert torch.equal(random_affine(x, generator=seeded(3)), random_affine(x, generator=seeded(3)))


def test_pure_translation_moves_ink_by_at_most_the_limit():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13:15, 13:15] = 1.0  # a 2x2 dot at the centre
    out = random_affine(x, degrees=0.0, translate=0.1, generator=seeded())
    rows = torch.arange(28.0).view(1, 28, 1)
    centre_y = (out[:, 0] * rows).sum((1, 2)) / out[:, 0].sum((1, 2))
    # 10% of 28 pixels, either way, around the dot's centre at 13.5.
    assert (centre_y - 13.5).abs().max() <= 2.8 + 1e-4
    assert (centre_y - 13.5).abs().max() > 1.0  # and it does move
    # Ink is conserved away from the border.
    torch.testing.assert_close(out.sum((1, 2, 3)), x.sum((1, 2, 3)))


def test_scale_enlarges_or_shrinks_the_ink_within_the_limit():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1.0
    out = random_affine(images, degrees=0.0, translate=0.0, generator=torch.Generator().manual_seed(0), scale=0.25)
    area = out.sum((1, 2, 3)) / images[0].sum()  # about the square of the zoom
    assert area.min() < 0.85 and area.max() > 1.15
    assert area.min() > 0.75**2 - 0.05 and area.max() < 1.25**2 + 0.05


def test_elastic_field_moves_points_by_about_the_strength_and_smoothly():
    field = elastic_field(256, 28, 2.0, cells=4, generator=seeded())
    assert field.shape == (256, 28, 28, 2)
    pixels = field * 28 / 2  # back from [-1, 1] coordinates to pixels
    assert 1.2 < pixels.std().item() < 2.2
    # Smooth: neighbouring pixels move alike, far less than the displacement itself.
    step = (pixels[:, 1:] - pixels[:, :-1]).abs().mean().item()
    assert step < 0.25 * pixels.abs().mean().item()
    # A finer lattice makes a rougher field.
    fine = elastic_field(256, 28, 2.0, cells=8, generator=seeded()) * 14
    assert (fine[:, 1:] - fine[:, :-1]).abs().mean().item() > 1.5 * step


def test_elastic_distortion_bends_strokes_but_keeps_the_ink():
    x = digit_batch(64)
    plain = random_affine(x, degrees=0.0, translate=0.0, generator=seeded())
    bent = random_affine(x, degrees=0.0, translate=0.0, generator=seeded(), elastic=1.5)
    assert bent.min() >= 0.0 and bent.max() <= 1.0
    assert (bent - plain).abs().amax((1, 2, 3)).min() > 0.3  # every image changes
    ink = bent.sum((1, 2, 3)) / x.sum((1, 2, 3))
    # Stretched or squeezed locally, not erased: about as much ink on average.
    assert ink.min() > 0.5 and ink.mean().item() == pytest.approx(1.0, abs=0.1)
    assert torch.equal(bent, random_affine(x, degrees=0.0, translate=0.0, generator=seeded(), elastic=1.5))


def test_elastic_field_is_the_bicubic_upsampling_of_its_lattice():
    field = elastic_field(16, 28, 1.0, cells=5, generator=seeded(4))
    coarse = torch.randn(16, 2, 5, 5, generator=seeded(4))
    expected = F.interpolate(coarse, size=(28, 28), mode="bicubic", align_corners=True) * (2.0 / 28)
    torch.testing.assert_close(field, expected.permute(0, 2, 3, 1))
