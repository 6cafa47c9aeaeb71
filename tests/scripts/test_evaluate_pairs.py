"""scripts/evaluate_pairs.py: pair loading and scoring on tiny files the test writes (analytic values)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import evaluate_pairs  # noqa: E402


@pytest.fixture
def pair_root(tmp_path):
    """Moving mask = fixed mask shifted by 2 voxels along axis 0; landmarks shifted likewise; true DDF = +2 voxels."""
    shape = (12, 10, 8)
    aff = np.diag([1.5, 2.0, 2.5, 1.0])
    fixed = np.zeros(shape, np.float32)
    fixed[3:7, 2:8, 2:6] = 1.0
    moving = np.roll(fixed, 2, axis=0)
    ddf = np.zeros((*shape, 3), np.float32)
    ddf[..., 0] = 2.0
    for name, arr in (("moving", moving), ("fixed", fixed), ("moving_label", moving), ("fixed_label", fixed)):
        nib.save(nib.Nifti1Image(arr, aff), tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(ddf, aff), tmp_path / "ddf.nii.gz")
    (tmp_path / "fixed_landmarks.csv").write_text("4,5,3\n5,4,4\n")
    (tmp_path / "moving_landmarks.csv").write_text("6,5,3\n7,4,4\n")
    item = {k: f"{k}.nii.gz" for k in ("moving", "fixed", "moving_label", "fixed_label", "ddf")}
    item |= {"moving_landmarks": "moving_landmarks.csv", "fixed_landmarks": "fixed_landmarks.csv"}
    (tmp_path / "pairs.json").write_text(json.dumps([item]))
    return tmp_path, item


def test_identity_and_true_ddf_scores(pair_root):
    root, item = pair_root
    pair = evaluate_pairs.load_pair(item, root)
    before = evaluate_pairs.score(pair, np.zeros((3, 12, 10, 8)))
    assert before["dice"] == pytest.approx(2 * 2 / 8)  # 4-voxel slabs overlapping on 2 of 4 rows
    assert before["tre_mm"] == pytest.approx(2 * 1.5)  # 2 voxels of 1.5 mm along axis 0
    assert before["error_mm"] == pytest.approx(3.0) and before["folding_pct"] == 0.0
    after = evaluate_pairs.score(pair, pair["ddf_true"])
    assert after["dice"] == pytest.approx(1.0) and after["tre_mm"] == pytest.approx(0.0, abs=1e-6)
    assert after["error_mm"] == pytest.approx(0.0, abs=1e-6)


def test_missing_file_is_named(pair_root):
    root, item = pair_root
    (root / "fixed_label.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="fixed_label"):
        evaluate_pairs.load_pair(item, root)
