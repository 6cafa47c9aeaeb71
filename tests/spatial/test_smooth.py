"""Gaussian smoothing and anti-aliased resizing (``monai_reg_ext.spatial.smooth``)."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.spatial import anti_aliasing_sigma, gaussian_smooth, resize_image


def test_sigma_follows_the_align_corners_spacing_ratio():
    # 49 -> 13 voxels: spacing ratio 48 / 12 = 4, sigma (4 - 1) / 2 = 1.5; no shrink -> 0; enlarging -> 0
    assert anti_aliasing_sigma((49, 10, 8), (13, 10, 16)) == pytest.approx((1.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="dimensions"):
        anti_aliasing_sigma((10, 10), (5, 5, 5))


@pytest.mark.parametrize("dims", [2, 3])
def test_constant_image_stays_constant_up_to_its_borders(dims):
    img = torch.full((2, 1) + (20,) * dims, 3.0)
    out = resize_image(img, (7,) * dims, anti_aliasing=True)
    assert out.shape == (2, 1) + (7,) * dims
    torch.testing.assert_close(out, torch.full_like(out, 3.0))  # replicated borders: no dark frame


def test_smoothing_keeps_the_mean_and_cuts_white_noise_variance():
    noise = torch.rand(1, 1, 40, 40, 40, generator=torch.Generator().manual_seed(0))
    out = gaussian_smooth(noise, (1.5, 1.5, 1.5))
    inner = out[..., 8:-8, 8:-8, 8:-8]
    assert float(inner.mean()) == pytest.approx(0.5, abs=0.01)
    # white noise through a unit-sum Gaussian: variance x 1 / (4 pi sigma^2)^(3/2) = 1 / 150 (std / 12.2)
    assert float(inner.std()) == pytest.approx(float(noise.std()) / 12.2, rel=0.15)


def test_resize_without_anti_aliasing_is_plain_align_corners_interpolation():
    ramp = torch.arange(13, dtype=torch.float32).view(1, 1, 13, 1).expand(1, 1, 13, 3)
    torch.testing.assert_close(resize_image(ramp, (7, 3))[0, 0, :, 0], torch.arange(0, 13, 2, dtype=torch.float32))
    assert resize_image(ramp, (13, 3)) is ramp
    with pytest.raises(ValueError, match="does not fit"):
        resize_image(ramp, (7, 3, 3))
