from __future__ import annotations

import pytest
import torch

from monai_reg_ext import affine_to_ddf, compose_ddf, dvf_to_ddf, jacobian_determinant, resize_ddf, warp_image
from monai_reg_ext.spatial import identity_grid


def smooth_field(size, amplitude=1.5, seed=0, dtype=torch.float32):
    """A smooth random field: sums of low-frequency sines (voxels)."""
    g = torch.Generator().manual_seed(seed)
    ndim = len(size)
    grid = identity_grid(size, dtype=dtype)
    out = torch.zeros(1, ndim, *size, dtype=dtype)
    for k in range(ndim):
        for j in range(ndim):
            phase = torch.rand(1, generator=g).item() * 6.28
            freq = 2 * torch.pi / (2 * size[j])
            out[0, k] += amplitude / ndim * torch.sin(freq * grid[j] + phase)
    return out


@pytest.mark.parametrize("size", [(6, 7), (5, 6, 7)])
def test_identity_theta_gives_zero_ddf(size):
    ndim = len(size)
    theta = torch.cat([torch.eye(ndim), torch.zeros(ndim, 1)], 1).unsqueeze(0).repeat(2, 1, 1)
    torch.testing.assert_close(affine_to_ddf(theta, size), torch.zeros(2, ndim, *size))


def test_known_theta_matches_hand_computation():
    # DeepReg's fixed theta (transposed to our (D, D+1) layout): (0,0,0)->(.12,.4,.04), (0,1,2)->(1.63,2.42,1.99)
    rows = torch.tensor([[0.86, 0.75, 0.48], [0.07, 0.98, 0.01], [0.72, 0.52, 0.97], [0.12, 0.4, 0.04]])
    theta = rows.T.unsqueeze(0)  # (1, 3, 4)
    ddf = affine_to_ddf(theta, (3, 3, 3))
    grid = identity_grid((3, 3, 3))
    mapped = ddf[0] + grid
    torch.testing.assert_close(mapped[:, 0, 0, 0], torch.tensor([0.12, 0.4, 0.04]))
    torch.testing.assert_close(mapped[:, 0, 1, 2], torch.tensor([1.63, 2.42, 1.99]))


def test_affine_ddf_warps_like_monai_affine_transform():
    from monai.networks.layers import AffineTransform

    g = torch.Generator().manual_seed(1)
    theta = torch.cat([torch.eye(3) + 0.05 * torch.randn(3, 3, generator=g), torch.randn(3, 1, generator=g)], 1)
    theta = theta.unsqueeze(0)
    img = torch.rand(1, 1, 8, 9, 10, generator=g)
    ours = warp_image(img, affine_to_ddf(theta, (8, 9, 10)), padding_mode="zeros")
    ref = AffineTransform(normalized=False, padding_mode="zeros", align_corners=True)(img, theta)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_affine_theta_shape_error():
    with pytest.raises(ValueError, match=r"\(B, 3, 4\)"):
        affine_to_ddf(torch.zeros(1, 2, 3), (4, 4, 4))


@pytest.mark.parametrize("size", [(6, 7), (5, 6, 7)])
def test_dvf_zero_gives_zero_ddf(size):
    dvf = torch.zeros(2, len(size), *size)
    torch.testing.assert_close(dvf_to_ddf(dvf), dvf)


def test_dvf_constant_translation_integrates_exactly():
    dvf = torch.zeros(1, 3, 8, 8, 8)
    dvf[:, 1] = 1.0  # a constant velocity integrates to the same constant displacement
    torch.testing.assert_close(dvf_to_ddf(dvf), dvf, atol=1e-5, rtol=0)


def test_dvf_gives_positive_jacobian():
    dvf = smooth_field((12, 12, 12), amplitude=4.0)
    assert jacobian_determinant(dvf_to_ddf(dvf)).min() > 0


@pytest.mark.parametrize("size", [(16, 15), (10, 11, 12)])
def test_compose_obeys_definition(size):
    first = smooth_field(size, amplitude=3.0, seed=1)
    second = smooth_field(size, amplitude=3.0, seed=2)
    # a linear ramp is interpolated exactly, so the two-step warp is exact away from the borders
    img = identity_grid(size).unsqueeze(0).sum(1, keepdim=True)
    two_steps = warp_image(warp_image(img, first), second)
    inner = tuple([slice(None), slice(None)] + [slice(4, -4)] * len(size))
    err = (two_steps - warp_image(img, compose_ddf(first, second)))[inner].abs().mean()
    naive = (two_steps - warp_image(img, first + second))[inner].abs().mean()
    assert err < 0.05, err  # residual = linear interpolation of `first` between voxels
    assert err < 0.2 * naive, (err, naive)


def test_compose_with_zero_is_identity_and_translations_add():
    first = smooth_field((8, 9, 10))
    torch.testing.assert_close(compose_ddf(first, torch.zeros_like(first)), first)
    torch.testing.assert_close(compose_ddf(torch.zeros_like(first), first), first)
    a, b = torch.zeros_like(first), torch.zeros_like(first)
    a[:, 0], b[:, 2] = 1.0, -2.0
    torch.testing.assert_close(compose_ddf(a, b), a + b)


def test_compose_shape_mismatch():
    with pytest.raises(ValueError, match="share shape"):
        compose_ddf(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 3, 4, 4, 5))


def test_resize_ddf_rescales_values():
    ddf = torch.ones(1, 3, 9, 9, 5)
    out = resize_ddf(ddf, (17, 5, 5))
    assert out.shape == (1, 3, 17, 5, 5)
    torch.testing.assert_close(out[:, 0], torch.full((1, 17, 5, 5), 2.0))
    torch.testing.assert_close(out[:, 1], torch.full((1, 17, 5, 5), 0.5))
    torch.testing.assert_close(out[:, 2], torch.full((1, 17, 5, 5), 1.0))


def test_resize_ddf_preserves_affine_field_physically():
    theta = torch.tensor([[[1.1, 0.05, 3.0], [0.0, 0.9, -2.0]]])
    small, big = (9, 7), (17, 13)
    coarse = affine_to_ddf(theta, small)
    fine = resize_ddf(coarse, big)
    # the same physical map, written on the fine grid: scale coordinates by 2 (both axes have (n-1) doubled)
    s = torch.tensor([2.0, 2.0])
    theta_fine = torch.cat([theta[0, :, :2], theta[0, :, 2:] * s.view(2, 1)], 1).unsqueeze(0)
    torch.testing.assert_close(fine, affine_to_ddf(theta_fine, big), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size", [(6, 7), (5, 6, 7)])
def test_jacobian_identity_is_one(size):
    jac = jacobian_determinant(torch.zeros(2, len(size), *size))
    assert jac.shape == (2, *size)
    torch.testing.assert_close(jac, torch.ones_like(jac))


@pytest.mark.parametrize("scales", [(1.5, 0.5), (2.0, 0.5, 1.5)])
def test_jacobian_of_scaling_is_product(scales):
    ndim = len(scales)
    size = (6,) * ndim
    theta = torch.cat([torch.diag(torch.tensor(scales)), torch.zeros(ndim, 1)], 1).unsqueeze(0)
    jac = jacobian_determinant(affine_to_ddf(theta, size))
    expected = torch.tensor(scales).prod()
    torch.testing.assert_close(jac, torch.full_like(jac, expected.item()))


def test_jacobian_spacing_reads_mm_field():
    spacing = (2.0, 0.5, 1.0)
    theta = torch.cat([torch.diag(torch.tensor([1.2, 0.8, 1.0])), torch.zeros(3, 1)], 1).unsqueeze(0)
    ddf_vox = affine_to_ddf(theta, (5, 6, 7))
    ddf_mm = ddf_vox * torch.tensor(spacing).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(jacobian_determinant(ddf_mm, spacing), jacobian_determinant(ddf_vox))


def test_jacobian_gradcheck():
    ddf = (torch.rand(1, 2, 4, 5, dtype=torch.float64) * 0.2).requires_grad_()
    assert torch.autograd.gradcheck(jacobian_determinant, (ddf,))
