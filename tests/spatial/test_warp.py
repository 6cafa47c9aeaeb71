from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_reg_ext import warp_image
from monai_reg_ext.spatial import identity_grid


@pytest.mark.parametrize("size", [(7, 8), (5, 6, 7)])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_identity_ddf_leaves_image_unchanged(size, mode):
    img = torch.rand(2, 3, *size)
    ddf = torch.zeros(2, len(size), *size)
    torch.testing.assert_close(warp_image(img, ddf, mode=mode), img, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(7, 8), (5, 6, 7)])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("shift", [1, 2, -1])
def test_integer_translation_shifts_exactly(size, axis, shift):
    ndim = len(size)
    if axis >= ndim:
        pytest.skip("axis beyond the spatial dims")
    img = torch.rand(1, 1, *size)
    ddf = torch.zeros(1, ndim, *size)
    ddf[:, axis] = shift
    out = warp_image(img, ddf, padding_mode="zeros")
    n = size[axis]
    dst = [slice(None)] * (ndim + 2)
    src = [slice(None)] * (ndim + 2)
    if shift > 0:
        dst[axis + 2], src[axis + 2] = slice(0, n - shift), slice(shift, n)
    else:
        dst[axis + 2], src[axis + 2] = slice(-shift, n), slice(0, n + shift)
    torch.testing.assert_close(out[tuple(dst)], img[tuple(src)], atol=1e-5, rtol=0)


def test_nearest_keeps_labels_binary_and_integer_dtype():
    lab = (torch.rand(1, 1, 6, 6, 6) > 0.5).to(torch.uint8)
    ddf = torch.rand(1, 3, 6, 6, 6) * 2 - 1
    out = warp_image(lab, ddf, mode="nearest")
    assert out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize("mov_size,fix_size", [((9, 11), (5, 6)), ((6, 7, 8), (11, 9, 5))])
def test_different_moving_size_equals_resize_then_warp(mov_size, fix_size):
    ndim = len(fix_size)
    mode = "bilinear" if ndim == 2 else "trilinear"
    # a linear ramp is reproduced exactly by linear resizing, so both routes must agree
    grid = identity_grid(mov_size).unsqueeze(0)
    img = (grid * torch.arange(1, ndim + 1).view(1, ndim, *([1] * ndim))).sum(1, keepdim=True)
    resized = F.interpolate(img, size=fix_size, mode=mode, align_corners=True)
    ddf = torch.rand(1, ndim, *fix_size) * 0.8 - 0.4
    expected = warp_image(resized, ddf)
    torch.testing.assert_close(warp_image(img, ddf), expected, atol=1e-4, rtol=1e-4)


def test_gradients_reach_image_and_ddf():
    img = torch.rand(1, 1, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    ddf = (torch.rand(1, 3, 4, 5, 3, dtype=torch.float64) * 0.6 - 0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda i, d: warp_image(i, d), (img, ddf), atol=1e-5)


def test_gradcheck_different_sizes_2d():
    img = torch.rand(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    ddf = (torch.rand(1, 2, 4, 3, dtype=torch.float64) * 0.6 - 0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda i, d: warp_image(i, d), (img, ddf), atol=1e-5)


@pytest.mark.parametrize(
    "img_shape,ddf_shape,match",
    [
        ((1, 1, 4, 4, 4), (1, 2, 4, 4, 4), "expected shape"),
        ((2, 1, 4, 4, 4), (1, 3, 4, 4, 4), "batch sizes differ"),
        ((1, 1, 4, 4), (1, 3, 4, 4, 4), "3 spatial dims"),
    ],
)
def test_bad_shapes_raise(img_shape, ddf_shape, match):
    with pytest.raises(ValueError, match=match):
        warp_image(torch.rand(img_shape), torch.zeros(ddf_shape))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="mode"):
        warp_image(torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), mode="cubic")
    with pytest.raises(ValueError, match="padding_mode"):
        warp_image(torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), padding_mode="wrap")
