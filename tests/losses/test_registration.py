"""Tests of RegistrationLoss (weights, term keys, logging side effect, missing labels, bundle configs)."""

from __future__ import annotations

import pytest
import torch
from monai.losses import MultiScaleLoss
from torch.nn.modules.loss import _Loss

from monai_reg_ext.losses import (
    BendingEnergyLoss,
    GradientNormLoss,
    LocalNormalizedCrossCorrelationLoss,
    MultiScaleLabelLoss,
    RegistrationLoss,
    SumSquaredDifferenceLoss,
)


def _batch(spatial=(8, 9), labels=True, seed=0):
    torch.manual_seed(seed)
    nd = len(spatial)
    pred = {
        "pred_fixed_image": torch.rand(2, 1, *spatial),
        "ddf": torch.randn(2, nd, *spatial, requires_grad=True),
    }
    targets = {"fixed_image": torch.rand(2, 1, *spatial)}
    if labels:
        pred["pred_fixed_label"] = torch.rand(2, 2, *spatial)
        targets["fixed_label"] = (torch.rand(2, 2, *spatial) > 0.5).float()
    return pred, targets


@pytest.mark.parametrize("spatial", [(8, 9), (5, 6, 7)])
def test_total_is_weighted_sum(spatial):
    pred, targets = _batch(spatial)
    image, label, reg = SumSquaredDifferenceLoss(), MultiScaleLabelLoss(scales=[0, 1]), GradientNormLoss()
    loss = RegistrationLoss(image, label, reg, weights=(2.0, 0.5, 0.1))
    terms = loss.terms(pred, targets)
    assert set(terms) == {"image", "label", "regulariser", "total"}
    expected = {
        "image": 2.0 * image(pred["pred_fixed_image"], targets["fixed_image"]),
        "label": 0.5 * label(pred["pred_fixed_label"], targets["fixed_label"]),
        "regulariser": 0.1 * reg(pred["ddf"]),
    }
    for key, value in expected.items():
        assert terms[key].item() == pytest.approx(value.item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-6)
    total = loss(pred, targets)
    assert total.ndim == 0
    total.backward()
    assert pred["ddf"].grad is not None and torch.isfinite(pred["ddf"].grad).all()
    assert set(pred["loss_terms"]) == set(terms)
    assert all(isinstance(v, float) for v in pred["loss_terms"].values())
    assert pred["loss_terms"]["total"] == pytest.approx(total.item(), rel=1e-6)


def test_zero_weight_and_none_disable_terms():
    pred, targets = _batch(labels=False)
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), MultiScaleLabelLoss(), BendingEnergyLoss(), weights=(1, 0, 1))
    terms = loss.terms(pred, targets)  # labels absent: fine, the label term is off
    assert set(terms) == {"image", "regulariser", "total"}
    assert terms["total"].item() == pytest.approx((terms["image"] + terms["regulariser"]).item())
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), None, BendingEnergyLoss())
    assert set(loss.terms(pred, targets)) == {"image", "regulariser", "total"}
    loss = RegistrationLoss(regulariser=GradientNormLoss(), weights={"regulariser": 3.0})
    terms = loss.terms(pred, targets)
    assert set(terms) == {"regulariser", "total"}
    assert terms["total"].item() == pytest.approx(3.0 * GradientNormLoss()(pred["ddf"]).item(), rel=1e-6)


def test_dict_weights_default_to_one():
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), MultiScaleLabelLoss(), GradientNormLoss(), {"label": 0.2})
    assert loss.weights == {
        "image": 1.0,
        "label": 0.2,
        "regulariser": 1.0,
        "inverse_consistency": 1.0,
        "outside_fov": 1.0,
    }
    assert loss.active == ("image", "label", "regulariser")  # no inverse-consistency loss given: inactive


def test_missing_labels_raise():
    pred, targets = _batch(labels=False)
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), MultiScaleLabelLoss(), GradientNormLoss())
    with pytest.raises(ValueError, match="label term .* expected pred\\['pred_fixed_label'\\]"):
        loss(pred, targets)
    pred["pred_fixed_label"] = torch.rand(2, 1, 8, 9)
    with pytest.raises(ValueError, match="expected targets\\['fixed_label'\\]"):
        loss(pred, targets)


def test_weight_errors():
    with pytest.raises(ValueError, match="expected 3 to 5 weights"):
        RegistrationLoss(SumSquaredDifferenceLoss(), weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="unknown"):
        RegistrationLoss(SumSquaredDifferenceLoss(), weights={"images": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        RegistrationLoss(SumSquaredDifferenceLoss(), weights=(-1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="at least one loss"):
        RegistrationLoss()
    with pytest.raises(ValueError, match="at least one loss"):
        RegistrationLoss(SumSquaredDifferenceLoss(), weights=(0, 1, 1))


class _Asymmetric(_Loss):
    def forward(self, y_pred, y_true):
        return (y_pred - 2 * y_true).mean()


def test_monai_multiscale_loss_argument_order():
    pred, targets = _batch()
    loss = RegistrationLoss(label_loss=MultiScaleLoss(_Asymmetric(), scales=None), weights=(0, 1, 0))
    expected = (pred["pred_fixed_label"] - 2 * targets["fixed_label"]).mean()
    assert loss(pred, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    loss = RegistrationLoss(label_loss=_Asymmetric(), weights=(0, 1, 0))
    assert loss(pred, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bundle_config_target():
    from monai.bundle import ConfigParser

    config = {
        "loss": {
            "_target_": "monai_reg_ext.losses.RegistrationLoss",
            "image_loss": {
                "_target_": "monai_reg_ext.losses.LocalNormalizedCrossCorrelationLoss",
                "spatial_dims": 3,
                "kernel_size": 3,
            },
            "label_loss": {"_target_": "monai_reg_ext.losses.MultiScaleLabelLoss", "scales": [0, 1, 2]},
            "regulariser": {"_target_": "monai_reg_ext.losses.BendingEnergyLoss", "spacing": [1.0, 1.0, 2.0]},
            "weights": {"image": 1.0, "label": 1.0, "regulariser": 0.5},
        }
    }
    loss = ConfigParser(config).get_parsed_content("loss")
    assert isinstance(loss, RegistrationLoss)
    assert isinstance(loss.image_loss, LocalNormalizedCrossCorrelationLoss)
    pred, targets = _batch((5, 6, 7))
    value = loss(pred, targets)
    assert torch.isfinite(value)
    assert set(pred["loss_terms"]) == {"image", "label", "regulariser", "total"}
