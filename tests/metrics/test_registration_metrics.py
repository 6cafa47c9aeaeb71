from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler, from_engine

from monai_reg_ext.metrics import (
    FoldingFractionMetric,
    HD95Metric,
    RegistrationDiceMetric,
    SDLogJacobianMetric,
    SSDMetric,
    registration_metric_handler,
    registration_output_transform,
)


def _label():
    x = torch.zeros(2, 2, 8, 8, 8)
    x[:, 0, 2:5, 2:5, 2:5] = 1
    x[:, 1, 5:7, 5:7, 5:7] = 1
    return x


def test_cumulative_dice_skips_nan():
    m = RegistrationDiceMetric()
    lab = _label()
    lab_empty = lab.clone()
    lab_empty[:, 1] = 0
    m(lab, lab)
    m(lab_empty, lab_empty)  # label 1 empty in both: nan, skipped
    assert m.aggregate().item() == 1.0
    assert m.aggregate(reduction="none").shape == (4, 2)
    m.reset()
    m([lab[0], lab[1]], [lab[0], torch.zeros_like(lab[1])])  # list of channel-first tensors
    # sample 1: the fixed label is empty, the prediction is not -> Dice 0
    assert m.aggregate(reduction="mean_batch").tolist() == [0.5, 0.5]


def test_ddf_and_image_metrics():
    ddf = torch.zeros(2, 3, 6, 6, 6)
    assert FoldingFractionMetric()(ddf).shape == (2, 1)
    assert SDLogJacobianMetric()(ddf).abs().max().item() < 1e-6
    s = SSDMetric()
    s(torch.full((2, 1, 4, 4), 0.6), torch.full((2, 1, 4, 4), 0.3))
    assert s.aggregate().item() == pytest.approx(0.09)
    h = HD95Metric(spacing=2.0)
    h(_label(), _label())
    assert h.aggregate().item() == 0.0


@pytest.mark.parametrize("nested", [False, True])
def test_ignite_handler_with_dict_output(nested):
    lab = _label()

    def step(engine, batch):
        if nested:  # SupervisedEvaluator-like layout, decollated into a list of per-sample dicts
            return [
                {"pred": {"pred_fixed_label": p, "ddf": torch.zeros(3, 8, 8, 8)}, "label": {"fixed_label": f}}
                for p, f in zip(lab, lab)
            ]
        return {"pred_fixed_label": lab, "fixed_label": lab, "ddf": torch.zeros(2, 3, 8, 8, 8)}

    engine = Engine(step)
    if nested:
        dice = registration_metric_handler(RegistrationDiceMetric(), "pred_fixed_label", "fixed_label")
    else:
        dice = IgniteMetricHandler(
            RegistrationDiceMetric(), output_transform=from_engine(["pred_fixed_label", "fixed_label"])
        )
    dice.attach(engine, "dice")
    fold = IgniteMetricHandler(FoldingFractionMetric(), output_transform=registration_output_transform("ddf"))
    fold.attach(engine, "folding")
    engine.run([0, 1], max_epochs=1)
    assert engine.state.metrics["dice"] == 1.0
    assert engine.state.metrics["folding"] == 0.0


def test_output_transform_missing_key():
    with pytest.raises(KeyError, match="fixed_label"):
        registration_output_transform("a", "fixed_label")({"a": 1})
