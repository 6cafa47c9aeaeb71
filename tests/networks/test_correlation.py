"""CorrelationNet: the cost volume, the soft-argmax and the feature warp on analytic cases; shapes, TorchScript,
gradients, 2D and 3D."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_reg_ext.networks import CorrelationNet, RegistrationNet
from monai_reg_ext.networks.correlation import _offsets, _upsample_field, _warp, cost_volume, soft_argmax_displacement
from monai_reg_ext.spatial import warp_image


def _unit_features(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(shape, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.mark.parametrize("shift", [(1, -2, 1), (0, 0, 0), (-2, 2, -1)])
def test_cost_volume_peaks_at_the_known_shift(shift):
    fixed = _unit_features((1, 4, 10, 11, 12))
    moving = torch.roll(fixed, shifts=shift, dims=(2, 3, 4))  # moving[i] = fixed[i - t]: fixed(x) = moving(x + t)
    costs = cost_volume(fixed, moving, 2)[..., 3:7, 3:7, 3:7]  # away from the rolled-over faces
    assert costs.shape[1] == 5**3
    best = _offsets(2, 3)[costs.mean((0, 2, 3, 4)).argmax()]
    assert best.tolist() == list(shift)
    # the peak is the full similarity of unit vectors
    assert torch.allclose(costs.max(1).values, torch.ones(()), atol=1e-5)


def test_soft_argmax_with_a_sharp_peak_returns_that_offset():
    offsets = _offsets(1, 2)  # 9 offsets in 2D
    costs = torch.zeros(1, 9, 4, 5)
    costs[:, 7] = 1.0  # offset (1, 0)
    disp = soft_argmax_displacement(costs, offsets, torch.tensor(200.0))
    assert disp.shape == (1, 2, 4, 5)
    torch.testing.assert_close(disp, offsets[7].view(1, 2, 1, 1).expand(1, 2, 4, 5), atol=1e-6, rtol=0)
    flat = soft_argmax_displacement(torch.zeros(1, 9, 4, 5), offsets, torch.tensor(1.0))
    torch.testing.assert_close(flat, torch.zeros(1, 2, 4, 5))  # a flat cost volume: the window's centre


def test_warp_by_an_integer_translation_and_zero_outside():
    feat = torch.randn(1, 3, 6, 7, 8, generator=torch.Generator().manual_seed(1))
    disp = torch.tensor([1.0, -2.0, 0.0]).view(1, 3, 1, 1, 1).expand(1, 3, 6, 7, 8)
    out = _warp(feat, disp)
    torch.testing.assert_close(out[:, :, :5, 2:], feat[:, :, 1:, :5], atol=1e-5, rtol=0)  # out(x) = feat(x + d)
    assert float(out[:, :, 5].abs().max()) == 0.0  # sampled beyond the last row: zero
    torch.testing.assert_close(_warp(feat, torch.zeros(1, 3, 6, 7, 8)), feat, atol=1e-5, rtol=0)
    field = 2 * torch.randn(1, 3, 6, 7, 8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_warp(feat, field), warp_image(feat, field, padding_mode="zeros"), atol=1e-5, rtol=0)


def test_upsample_field_keeps_a_translation_in_physical_units():
    coarse = torch.full((1, 3, 4, 4, 4), 1.5)
    fine = _upsample_field(coarse, [16, 16, 8])
    torch.testing.assert_close(fine[:, 0], torch.full((1, 16, 16, 8), 6.0))  # x4 along axis 0
    torch.testing.assert_close(fine[:, 2], torch.full((1, 16, 16, 8), 3.0))  # x2 along axis 2


@pytest.mark.parametrize("spatial_dims, size", [(2, (32, 24)), (3, (16, 20, 12))])
def test_shapes_script_and_gradients(spatial_dims, size):
    torch.manual_seed(0)
    net = CorrelationNet(spatial_dims=spatial_dims)
    pair = torch.rand(2, 2, *size)
    ddf = net(pair)
    assert ddf.shape == (2, spatial_dims, *size)
    torch.testing.assert_close(torch.jit.script(net)(pair), ddf)  # MONAI's ckpt_export scripts the network
    ddf.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert float(net.enc1[0].weight.grad.abs().sum()) > 0


def test_identical_images_give_a_small_field_and_bad_shapes_are_named():
    torch.manual_seed(0)
    net = RegistrationNet(backbone=CorrelationNet(), method="ddf", spatial_dims=3)
    image = torch.rand(1, 1, 16, 16, 16)
    out = net(image, image)
    # untrained features: every voxel matches itself best, the soft-argmax stays well inside the window
    assert float(out["ddf"].abs().mean()) < 1.0
    with pytest.raises(ValueError, match="divisible by 4"):
        CorrelationNet()(torch.rand(1, 2, 18, 16, 16))
    with pytest.raises(ValueError, match="even number"):
        CorrelationNet(in_channels=3)
