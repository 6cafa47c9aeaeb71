"""scripts/compare_registration.py: the thin wrapper's helpers (used by scripts/benchmark.py and
scripts/instance_optimisation_table.py) on a tiny pair with a known translation; the comparison itself is tested in
tests/evaluation/test_compare.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import compare_registration as cr  # noqa: E402

SHIFT = np.array([1.0, 0.0, -0.5])


@pytest.fixture
def item_root(tmp_path):
    shape, aff = (16, 16, 16), np.diag([2.0, 2.0, 2.0, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    r = lambda g: np.sqrt(((g - 7.5) ** 2).sum(0)) / 5.0  # noqa: E731
    mov, fix = r(grid), r(grid + SHIFT[:, None, None, None])
    arrays = {"m.nii.gz": mov, "f.nii.gz": fix, "ml.nii.gz": np.stack([(mov >= 0.5) & (mov < 1), mov < 0.5], -1)}
    arrays |= {
        "fl.nii.gz": np.stack([(fix >= 0.5) & (fix < 1), fix < 0.5], -1),
        "d.nii.gz": np.broadcast_to(SHIFT, (*shape, 3)),
    }
    for name, arr in arrays.items():
        nib.save(nib.Nifti1Image(np.asarray(arr, np.float32), aff), tmp_path / name)
    item = {
        "moving": "m.nii.gz",
        "fixed": "f.nii.gz",
        "moving_label": "ml.nii.gz",
        "fixed_label": "fl.nii.gz",
        "ddf": "d.nii.gz",
    }
    (tmp_path / "pairs.json").write_text(json.dumps([item]))
    return item, tmp_path


def test_legacy_helpers(item_root):
    item, root = item_root
    pair = cr.load_pair(item, root)
    assert pair["paths"]["moving"] == root / "m.nii.gz" and pair["fixed"].shape == (16, 16, 16)
    assert pair["ddf_true"].shape == (3, 16, 16, 16)
    none = cr.run_method("none", pair)
    assert none["seconds"] == 0.0 and not none["ddf"].any()
    before, after = cr.evaluate_ddf(pair, none["ddf"]), cr.evaluate_ddf(pair, cr.run_method("true_ddf", pair)["ddf"])
    assert set(before) == set(cr.METRIC_KEYS) - {"seconds"}
    assert before["error_mm"] == pytest.approx(float(np.linalg.norm(SHIFT)) * 2.0, abs=1e-5)
    assert after["error_mm"] == pytest.approx(0.0, abs=1e-6) and after["dice_wm"] > before["dice_wm"]
    assert cr.main is cr.ev.compare_methods and cr.configure_threads(1)["torch_threads"] == 1
