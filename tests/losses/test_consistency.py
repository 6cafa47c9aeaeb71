"""InverseConsistencyLoss and symmetric (inverse-consistent) training: analytic values, 2D and 3D, gradients."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.losses import (
    GradientNormLoss,
    InverseConsistencyLoss,
    RegistrationLoss,
    SumSquaredDifferenceLoss,
)
from monai_reg_ext.networks import RegistrationNet


@pytest.mark.parametrize("dims", [2, 3])
def test_exact_inverse_translations_give_zero(dims):
    ddf = torch.zeros(2, dims, *([12] * dims))
    ddf[:, 0] = 1.5
    ddf[:, -1] = -0.25
    assert InverseConsistencyLoss()(ddf, -ddf).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("dims", [2, 3])
def test_common_bias_is_penalised_as_twice_the_shift(dims):
    """Both directions shifted by the same t: each round trip is 2t, so the loss is |2t|^2."""
    ddf = torch.zeros(1, dims, *([10] * dims))
    ddf[:, 0] = 0.5
    ddf[:, 1] = 0.25
    expected = (2 * 0.5) ** 2 + (2 * 0.25) ** 2
    assert InverseConsistencyLoss()(ddf, ddf).item() == pytest.approx(expected, rel=1e-6)


def test_reductions_and_shape_error():
    ddf = torch.zeros(3, 2, 8, 8)
    ddf[1, 0] = 1.0
    per_sample = InverseConsistencyLoss(reduction="none")(ddf, ddf)
    assert per_sample.shape == (3,) and per_sample.tolist() == pytest.approx([0.0, 4.0, 0.0])
    assert InverseConsistencyLoss(reduction="sum")(ddf, ddf).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="one shape"):
        InverseConsistencyLoss()(ddf, torch.zeros(3, 2, 8, 9))


def test_smooth_field_and_its_numerical_inverse_are_nearly_consistent():
    """A smooth field d and the fixed-point inverse v = -d(x + v) give a residual far below d's own size."""
    x = torch.linspace(0, 1, 24)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    ddf = torch.stack([1.2 * torch.sin(torch.pi * xx), 0.8 * torch.cos(torch.pi * yy)])[None]
    from monai_reg_ext import warp_image

    inverse = -ddf.clone()
    for _ in range(30):
        inverse = -warp_image(ddf, inverse, mode="bilinear", padding_mode="border")
    loss = InverseConsistencyLoss()(ddf, inverse).item()
    naive = InverseConsistencyLoss()(ddf, torch.zeros_like(ddf)).item()
    assert loss < 0.01 * naive


def test_gradients_flow_to_both_fields():
    ddf = (0.3 * torch.randn(1, 2, 9, 9, dtype=torch.float64)).requires_grad_()
    inv = (0.3 * torch.randn(1, 2, 9, 9, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: InverseConsistencyLoss()(a, b), (ddf, inv), atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_network_returns_both_directions_only_in_training(dims):
    torch.manual_seed(0)
    net = RegistrationNet(
        "localnet", spatial_dims=dims, inverse_consistent=True, backbone_kwargs={"num_channel_initial": 4}
    )
    size = [16] * dims
    moving, fixed = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    net.train()
    out = net(moving, fixed)
    assert out["ddf"].shape == out["ddf_inverse"].shape == (2, dims, *size)
    assert out["pred_moving_image"].shape == moving.shape
    # identity start: the backward pass warps the fixed image onto itself
    assert torch.allclose(out["pred_moving_image"], fixed, atol=1e-5)
    # the batched backward direction equals running the net with the images swapped
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out = net(moving, fixed)
    swapped = net(fixed, moving)
    assert torch.allclose(out["ddf_inverse"], swapped["ddf"], atol=1e-5)
    net.eval()
    assert "ddf_inverse" not in net(moving, fixed)
    assert net.config["inverse_consistent"] is True
    assert RegistrationNet(**net.config).inverse_consistent


def test_network_refuses_different_sizes_in_training():
    net = RegistrationNet(
        "localnet", spatial_dims=2, inverse_consistent=True, backbone_kwargs={"num_channel_initial": 4}
    )
    with pytest.raises(ValueError, match="one shape"):
        net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 24))


def test_registration_loss_symmetric_terms():
    fixed, moving = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    ddf = torch.zeros(1, 2, 8, 8)
    ddf[:, 0] = 0.5
    pred = {
        "pred_fixed_image": moving,
        "pred_moving_image": fixed,
        "ddf": ddf,
        "ddf_inverse": ddf,
    }
    loss = RegistrationLoss(
        SumSquaredDifferenceLoss(),
        None,
        GradientNormLoss(),
        weights={"image": 1.0, "label": 0.0, "regulariser": 1.0, "inverse_consistency": 2.0},
        inverse_consistency=InverseConsistencyLoss(),
    )
    terms = loss.terms(pred, {"fixed_image": fixed, "moving_image": moving})
    ssd = ((moving - fixed) ** 2).mean()
    assert terms["image"].item() == pytest.approx(ssd.item(), rel=1e-6)
    assert terms["regulariser"].item() == pytest.approx(0.0, abs=1e-12)
    assert terms["inverse_consistency"].item() == pytest.approx(2.0 * 1.0, rel=1e-6)
    assert terms["total"].item() == pytest.approx(ssd.item() + 2.0, rel=1e-6)
    with pytest.raises(ValueError, match="inverse_consistent=True"):
        loss.terms({"pred_fixed_image": moving, "ddf": ddf}, {"fixed_image": fixed})


def test_three_weights_still_accepted():
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), None, None, weights=(1.0, 0.0, 0.0))
    assert loss.active == ("image",) and loss.weights["inverse_consistency"] == 1.0
