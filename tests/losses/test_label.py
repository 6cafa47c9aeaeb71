"""Tests of MultiScaleLabelLoss (DeepReg §8 cross-entropy values, identical labels, gradcheck, errors)."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.losses import MultiScaleLabelLoss

DEEPREG_SCALES = [0, 1, 2, 4, 8, 16, 32]
SHAPES = [(2, 3, 7, 6), (2, 2, 5, 6, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss_type", ["dice", "jaccard"])
@pytest.mark.parametrize("kernel", ["gaussian", "cauchy"])
@pytest.mark.parametrize("background_weight", [0.0, 0.2])
def test_identical_labels_zero_loss(shape, loss_type, kernel, background_weight):
    torch.manual_seed(0)
    soft = torch.rand(shape)
    hard = (soft > 0.5).float()
    loss = MultiScaleLabelLoss(loss_type, scales=DEEPREG_SCALES, kernel=kernel, background_weight=background_weight)
    for label in (soft, hard):
        assert loss(label, label).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss_type", ["dice", "jaccard"])
def test_empty_and_full_labels(loss_type):
    zeros, ones = torch.zeros(1, 1, 4, 4, 4), torch.ones(1, 1, 4, 4, 4)
    # DeepReg: all-zero inputs with smoothing 1e-5 score 1 (loss 0); all-ones score 1
    assert MultiScaleLabelLoss(loss_type)(zeros, zeros).item() == pytest.approx(0.0, abs=1e-6)
    assert MultiScaleLabelLoss(loss_type)(ones, ones).item() == pytest.approx(0.0, abs=1e-6)
    assert MultiScaleLabelLoss(loss_type)(zeros, ones).item() == pytest.approx(1.0, abs=1e-6)


def test_deepreg_dice_formula_squared_false():
    torch.manual_seed(1)
    t, p = torch.rand(2, 1, 5, 5), torch.rand(2, 1, 5, 5)
    w = 0.3
    ft, fp = t.flatten(1), p.flatten(1)
    y_prod, y_sum, vol = (ft * fp).sum(1), (ft + fp).sum(1), ft.shape[1]
    num = 2 * (y_prod - w * y_sum + w * vol)
    den = (1 - 2 * w) * y_sum + 2 * w * vol
    expected = 1 - ((num + 1e-5) / (den + 1e-5)).mean()
    got = MultiScaleLabelLoss("dice", background_weight=w, squared=False)(p, t)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    expected_fg = 1 - ((2 * y_prod + 1e-5) / (y_sum + 1e-5)).mean()
    assert MultiScaleLabelLoss("dice", squared=False)(p, t).item() == pytest.approx(expected_fg.item(), rel=1e-5)
    expected_j = 1 - ((y_prod + 1e-5) / (y_sum - y_prod + 1e-5)).mean()
    assert MultiScaleLabelLoss("jaccard", squared=False)(p, t).item() == pytest.approx(expected_j.item(), rel=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy_deepreg_values(shape):
    t, p = torch.full(shape, 0.6), torch.full(shape, 0.3)
    assert MultiScaleLabelLoss("cross-entropy")(p, t).item() == pytest.approx(0.72236, abs=1e-5)
    assert MultiScaleLabelLoss("cross-entropy", background_weight=0.2)(p, t).item() == pytest.approx(0.60642, abs=1e-5)
    assert MultiScaleLabelLoss("cross-entropy", binary=True)(p, t).item() == pytest.approx(11.5129, abs=1e-4)


def test_scales_average_and_reduction():
    torch.manual_seed(2)
    t, p = torch.rand(3, 2, 9, 9), torch.rand(3, 2, 9, 9)
    per_scale = [MultiScaleLabelLoss(scales=[s], reduction="none")(p, t) for s in (0, 1, 2)]
    combined = MultiScaleLabelLoss(scales=[0, 1, 2], reduction="none")(p, t)
    assert combined.shape == (3,)
    assert torch.allclose(combined, torch.stack(per_scale).mean(0))
    assert MultiScaleLabelLoss(scales=[0, 1, 2])(p, t).item() == pytest.approx(combined.mean().item(), rel=1e-6)
    assert MultiScaleLabelLoss(scales=[0, 1, 2], reduction="sum")(p, t).item() == pytest.approx(
        combined.sum().item(), rel=1e-6
    )
    value = MultiScaleLabelLoss(scales=[0, 1, 2])(p, t).item()
    assert 0.0 < value < 1.0


def test_gradcheck_dice():
    torch.manual_seed(0)
    p = torch.rand(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 2, 5, 4, dtype=torch.float64)
    loss = MultiScaleLabelLoss("dice", scales=[0, 1], background_weight=0.2).double()
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (p,))
    p3 = torch.rand(1, 1, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    t3 = torch.rand(1, 1, 3, 4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: MultiScaleLabelLoss("dice", scales=[0, 1])(x, t3), (p3,))


def test_errors():
    with pytest.raises(ValueError, match="loss_type"):
        MultiScaleLabelLoss("mse")
    with pytest.raises(ValueError, match="kernel"):
        MultiScaleLabelLoss(kernel="box")
    with pytest.raises(ValueError, match="background_weight"):
        MultiScaleLabelLoss(background_weight=1.5)
    with pytest.raises(ValueError, match="scales"):
        MultiScaleLabelLoss(scales=[-1])
    with pytest.raises(ValueError, match="expected y_true with the shape"):
        MultiScaleLabelLoss()(torch.rand(1, 2, 4, 4), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="4 or 5 dims"):
        MultiScaleLabelLoss()(torch.rand(1, 4, 4), torch.rand(1, 4, 4))


def test_kernels_are_buffers_normalised():
    loss = MultiScaleLabelLoss(scales=[0, 1, 2], kernel="gaussian")
    buffers = dict(loss.named_buffers())
    assert set(buffers) == {"kernel_1", "kernel_2"}
    assert all(b.sum().item() == pytest.approx(1.0, abs=1e-6) for b in buffers.values())
    assert loss.state_dict() == {}


@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (1, 2, 5, 6, 4), (1, 1, 12, 9, 7)])
@pytest.mark.parametrize("sigma", [1, 4, 8])
def test_smoothing_matches_monai_separable_filtering(shape, sigma):
    from monai.losses.multi_scale import make_cauchy_kernel
    from monai.networks.layers import separable_filtering

    from monai_reg_ext.losses.label import _smooth

    x = torch.rand(shape, dtype=torch.float64)
    k = make_cauchy_kernel(sigma).double()
    k = k / k.sum()
    assert torch.allclose(_smooth(x, k), separable_filtering(x, [k] * (len(shape) - 2)), atol=1e-12)


def test_long_kernel_crop_matches_monai_2d():
    from monai.losses.multi_scale import make_gaussian_kernel
    from monai.networks.layers import separable_filtering

    from monai_reg_ext.losses.label import _smooth

    x = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    k = make_gaussian_kernel(32).double()
    k = k / k.sum()
    assert torch.allclose(_smooth(x, k), separable_filtering(x, [k, k]), atol=1e-12)


def test_kernel_follows_input_dtype_and_device():
    """The loss module is not moved with the network: its kernels must follow the input (GPU training bug)."""
    loss = MultiScaleLabelLoss("dice", scales=[0, 1, 2])
    y = (torch.rand(1, 1, 9, 9, 9) > 0.5).float()
    p = torch.rand(1, 1, 9, 9, 9)
    torch.testing.assert_close(loss(p.double(), y.double()).float(), loss(p, y), atol=1e-5, rtol=1e-5)
