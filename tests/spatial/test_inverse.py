"""invert_ddf and inverse_consistency_error: translations, smooth random fields (2D, 3D), masks and errors."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext import compose_ddf, warp_image
from monai_reg_ext.data import random_smooth_ddf
from monai_reg_ext.spatial import inverse_consistency_error, invert_ddf


@pytest.mark.parametrize("size", [(20, 24), (12, 14, 10)])
def test_translation_inverts_to_negative_translation(size):
    ndim = len(size)
    shift = torch.tensor([1.5, -2.25, 0.75][:ndim])
    ddf = shift.view(1, ndim, *([1] * ndim)).expand(2, ndim, *size).contiguous()
    inverse = invert_ddf(ddf)
    assert torch.allclose(inverse, -ddf, atol=1e-6)
    assert torch.allclose(inverse_consistency_error(ddf, inverse), torch.zeros(2), atol=1e-6)


@pytest.mark.parametrize("size", [(64, 56), (32, 36, 28)])
def test_smooth_random_field_both_compositions_near_identity(size):
    ndim = len(size)
    ddf = random_smooth_ddf(size, max_displacement=3.0, smoothness=6.0, seed=3, batch_size=2)
    assert ddf.pow(2).sum(1).sqrt().amax().item() == pytest.approx(3.0, rel=1e-4)
    inverse = invert_ddf(ddf, iterations=20, tolerance=1e-3)
    before = inverse_consistency_error(ddf, torch.zeros_like(ddf), margin=4)
    forward_then_inverse = inverse_consistency_error(ddf, inverse, margin=4)  # compose_ddf(ddf, inverse)
    inverse_then_forward = inverse_consistency_error(inverse, ddf, margin=4)  # compose_ddf(inverse, ddf)
    assert forward_then_inverse.shape == (2,)
    assert (before > 0.3).all()
    assert (forward_then_inverse < 0.1).all() and (inverse_then_forward < 0.1).all()
    # the images agree too: warping with ddf then with its inverse gives the image back inside the margin
    img = torch.rand(2, 1, *[s // 4 for s in size], generator=torch.Generator().manual_seed(0))
    img = torch.nn.functional.interpolate(img, size=size, mode="bilinear" if ndim == 2 else "trilinear")
    back = warp_image(warp_image(img, ddf), inverse)
    inner = (slice(None), slice(None)) + tuple(slice(4, s - 4) for s in size)
    assert (back - img)[inner].abs().mean() < 0.01


def test_iterations_and_tolerance():
    ddf = random_smooth_ddf((40, 40), max_displacement=3.0, smoothness=6.0, seed=1)
    one = inverse_consistency_error(ddf, invert_ddf(ddf, iterations=1), margin=4)
    many = inverse_consistency_error(ddf, invert_ddf(ddf, iterations=30, tolerance=1e-6), margin=4)
    assert many < one and many < 1e-3


def test_mask_and_margin():
    ddf = random_smooth_ddf((24, 24), max_displacement=2.0, smoothness=5.0, seed=0)
    zero = torch.zeros_like(ddf)
    norm = ddf.pow(2).sum(1).sqrt()  # error against a zero inverse: |ddf(x)|
    mask = torch.zeros(1, 1, 24, 24, dtype=torch.bool)
    mask[..., 5:9, 10:20] = True
    expected = norm[0, 5:9, 10:20].mean()
    assert inverse_consistency_error(ddf, zero, mask=mask).item() == pytest.approx(expected.item(), rel=1e-5)
    assert inverse_consistency_error(ddf, zero, mask=mask[0, 0]).item() == pytest.approx(expected.item(), rel=1e-5)
    assert inverse_consistency_error(ddf, zero, margin=3).item() == pytest.approx(
        norm[0, 3:21, 3:21].mean().item(), rel=1e-5
    )
    assert torch.allclose(compose_ddf(ddf, zero), ddf)


def test_errors():
    ddf = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match="iterations"):
        invert_ddf(ddf, iterations=0)
    with pytest.raises(ValueError, match="shape"):
        invert_ddf(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="margin"):
        inverse_consistency_error(ddf, ddf, margin=4)
    with pytest.raises(ValueError, match="mask"):
        inverse_consistency_error(ddf, ddf, mask=torch.ones(1, 1, 8, 7))
    with pytest.raises(ValueError, match="no voxel"):
        inverse_consistency_error(ddf, ddf, mask=torch.zeros(8, 8))
