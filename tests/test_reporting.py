"""monai_reg_ext.reporting: the shared writers of the classical bundles' run scripts and the benchmarks (evaluation
summaries: tests/evaluation)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai_reg_ext.reporting import emit_report, mean_std, save_pair_outputs


def test_mean_std_rounds_and_counts():
    assert mean_std([1.0, 2.0, 4.0]) == {"mean": 2.3333, "std": 1.2472, "n": 3}


def test_save_pair_outputs_writes_and_refuses_overwrite(tmp_path):
    ddf = torch.zeros(1, 3, 5, 5, 5)
    args = dict(
        metrics={"dice": 1.0},
        loss_curve=[2.0, 1.0],
        warped=torch.ones(1, 5, 5, 5),
        warped_label=torch.ones(1, 5, 5, 5),
        ddf=ddf,
        affine=np.eye(4),
        warped_dtype=np.int16,
        extra_json={"theta.json": {"a": [1, 2]}},
    )
    save_pair_outputs(tmp_path / "p", **args)
    names = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"theta.json", "metrics.json", "loss_curve.json", "warped.nii.gz", "warped_label.nii.gz"} <= names
    assert json.loads((tmp_path / "p" / "theta.json").read_text()) == {"a": [1, 2]}
    with pytest.raises(FileExistsError, match="theta.json"):
        save_pair_outputs(tmp_path / "p", **args)
    save_pair_outputs(tmp_path / "p", **args, overwrite=True)


def test_emit_report_prints_and_writes(tmp_path, capsys):
    report = {"a": 1}
    assert emit_report(report, tmp_path / "r.json") is report
    assert json.loads(capsys.readouterr().out) == report
    assert json.loads((tmp_path / "r.json").read_text()) == report
