"""The level pair's sampling of a moving image on its own grid: the precomputed grid_sample coordinates give the
moving image at ``M (p + u(p))``, the inside mask marks exactly the points within the moving grid, gradients flow."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.optimise.pyramid import make_level
from monai_reg_ext.spatial import identity_grid, warp_image
from monai_reg_ext.spatial.resample import sample_at


def _matrix(ndim: int) -> torch.Tensor:
    """A fixed -> moving voxel map with rotation-like mixing, anisotropic scale and a shift, ``(D + 1, D + 1)``."""
    m = torch.eye(ndim + 1, dtype=torch.float64)
    m[:ndim, :ndim] = torch.tensor([[1.1, 0.1, 0.0], [-0.08, 0.9, 0.05], [0.02, -0.04, 1.2]])[:ndim, :ndim]
    m[:ndim, ndim] = torch.tensor([1.5, -2.0, 0.7])[:ndim]
    return m


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("factor", [1, 2])
def test_level_pair_samples_moving_at_mapped_points(ndim, factor):
    torch.manual_seed(0)
    fixed_size, moving_size = (18, 20, 16)[:ndim], (22, 17, 19)[:ndim]
    fixed = torch.rand(2, 1, *fixed_size, dtype=torch.float64)
    moving = torch.rand(2, 1, *moving_size, dtype=torch.float64)
    m = _matrix(ndim)
    pair = make_level(moving, fixed, factor, m)
    ddf = (torch.randn(2, ndim, *pair.size, dtype=torch.float64) * 2.0).requires_grad_(True)

    # reference: the moving-level voxel positions M_level (p + u(p)), then sample_at
    assert pair.matrix is not None
    lin, trans = pair.matrix[:, :, :ndim], pair.matrix[:, :, ndim]
    pts = identity_grid(pair.size, dtype=torch.float64).unsqueeze(0) + ddf
    pts = torch.einsum("bij,bj...->bi...", lin, pts) + trans.view(2, ndim, *([1] * ndim))
    expected = sample_at(pair.moving, pts, padding_mode="border")
    warped, grid = pair.warp(ddf)
    assert torch.allclose(warped, expected, atol=1e-12)

    upper = torch.tensor([s - 1 for s in pair.moving.shape[2:]], dtype=torch.float64).view(1, ndim, *([1] * ndim))
    inside = ((pts >= 0) & (pts <= upper)).all(dim=1, keepdim=True).double()
    assert 0 < inside.mean() < 1  # the test covers both cases
    assert torch.equal(pair.inside(ddf), inside)
    assert torch.equal(pair.inside(ddf, grid), inside)

    (grad,) = torch.autograd.grad(warped.sum(), ddf)
    (grad_ref,) = torch.autograd.grad(expected.sum(), ddf)
    assert torch.allclose(grad, grad_ref, atol=1e-10)


@pytest.mark.parametrize("ndim", [2, 3])
def test_level_pair_on_the_same_grid_is_warp_image(ndim):
    """Without a map the level pair samples as ``warp_image`` (bilinear, border); the zero DDF is inside everywhere
    (the last voxel lands on the grid's edge exactly), a shift of half the grid is outside on half of it."""
    torch.manual_seed(1)
    size = (12, 15, 10)[:ndim]
    fixed, moving = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    pair = make_level(moving, fixed, 1)
    ddf = (torch.randn(2, ndim, *size) * 2.0).requires_grad_(True)
    warped, _ = pair.warp(ddf)
    expected = warp_image(moving, ddf)
    assert torch.allclose(warped, expected, atol=1e-5)
    (grad,) = torch.autograd.grad(warped.sum(), ddf)
    (grad_ref,) = torch.autograd.grad(expected.sum(), ddf)
    assert torch.allclose(grad, grad_ref, atol=1e-4)

    assert torch.equal(pair.inside(torch.zeros(2, ndim, *size)), torch.ones(2, 1, *size))
    shift = torch.zeros(2, ndim, *size)
    shift[:, 0] = size[0] / 2.0
    inside = pair.inside(shift)
    assert torch.equal(inside[:, :, : size[0] // 2], torch.ones_like(inside[:, :, : size[0] // 2]))
    assert inside[:, :, size[0] // 2 + 1 :].sum() == 0
