"""Tests of the image losses (DeepReg §8 values, constant images, gradcheck, shape errors)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_reg_ext.losses import (
    GlobalMutualInformationLoss,
    GlobalNCCLoss,
    LocalNormalizedCrossCorrelationLoss,
    SumSquaredDifferenceLoss,
)

SHAPES = [(2, 1, 5, 6), (2, 1, 4, 5, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_ssd_constants(shape):
    y_true, y_pred = torch.full(shape, 0.6), torch.full(shape, 0.3)
    assert SumSquaredDifferenceLoss()(y_pred, y_true).item() == pytest.approx(0.09, abs=1e-6)
    assert SumSquaredDifferenceLoss()(y_true, y_true).item() == 0.0
    per_sample = SumSquaredDifferenceLoss(reduction="none")(y_pred, y_true)
    assert per_sample.shape == (shape[0],)
    assert torch.allclose(per_sample, torch.full((shape[0],), 0.09))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("neg", [False, True])
def test_gncc_padded_constant_blocks(shape, neg):
    pad = [1, 1] * (len(shape) - 2)
    y_true = F.pad(torch.full(shape, 0.6), pad)
    y_pred = F.pad(torch.full(shape, -0.3 if neg else 0.3), pad)
    # DeepReg's GNCC score is 1; the loss is its negative
    assert GlobalNCCLoss()(y_pred, y_true).item() == pytest.approx(-1.0, abs=1e-5)


def test_gncc_range_and_self():
    torch.manual_seed(0)
    a, b = torch.rand(3, 1, 6, 7, 5), torch.rand(3, 1, 6, 7, 5)
    assert GlobalNCCLoss()(a, a).item() == pytest.approx(-1.0, abs=1e-5)
    assert GlobalNCCLoss()(2 * a + 1, a).item() == pytest.approx(-1.0, abs=1e-5)
    value = GlobalNCCLoss()(a, b).item()
    assert -1.0 <= value <= 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_constant_images_no_nan(shape):
    y_true, y_pred = torch.full(shape, 0.6), torch.full(shape, 0.3)
    nd = len(shape) - 2
    losses = [
        GlobalNCCLoss(),
        LocalNormalizedCrossCorrelationLoss(spatial_dims=nd, kernel_size=3),
        GlobalMutualInformationLoss(),
    ]
    for loss in losses:
        for a, b in ((y_pred, y_true), (y_true, y_true), (torch.zeros(shape), torch.ones(shape))):
            a = a.clone().requires_grad_(True)
            value = loss(a, b)
            value.backward()
            assert torch.isfinite(value), type(loss).__name__
            assert torch.isfinite(a.grad).all(), type(loss).__name__


@pytest.mark.parametrize("shape", SHAPES)
def test_gmi_constant_is_zero(shape):
    gmi = GlobalMutualInformationLoss()
    assert gmi(torch.full(shape, 0.3), torch.full(shape, 0.6)).item() == pytest.approx(0.0, abs=1e-5)
    assert gmi(torch.zeros(shape), torch.ones(shape)).item() == pytest.approx(0.0, abs=1e-5)


def test_gradcheck_ssd_gncc():
    torch.manual_seed(0)
    a = torch.rand(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, 1, 3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: SumSquaredDifferenceLoss()(x, b), (a,))
    assert torch.autograd.gradcheck(lambda x: GlobalNCCLoss()(x, b), (a,))
    c = torch.rand(1, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    d = torch.rand(1, 1, 3, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: GlobalNCCLoss(reduction="none")(x, d), (c,))


@pytest.mark.parametrize("loss", [SumSquaredDifferenceLoss(), GlobalNCCLoss()])
def test_shape_errors(loss):
    with pytest.raises(ValueError, match="expected y_true with the shape"):
        loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match="4 or 5 dims"):
        loss(torch.rand(4, 4), torch.rand(4, 4))
