"""The loading code for DeepReg's original unpaired_mr_brain data, on a tiny fake copy of its layout."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_reg_ext.data import UnpairedDataset
from tests.helpers import BUNDLES_DIR, load_bundle_script


def load_script():
    return load_bundle_script(BUNDLES_DIR / "unpaired_mr_brain", "prepare_learn2reg_hippocampus")


def fake_learn2reg(root: Path, ids=(1, 2, 3, 311, 312, 313)) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("img", "label"):
        (root / "Training" / sub).mkdir(parents=True)
    for i in ids:
        img = rng.random((9, 11, 8)).astype(np.float32)
        lab = np.zeros((9, 11, 8), np.uint8)
        lab[2:5, 3:6, 2:4], lab[5:7, 3:6, 2:4] = 1, 2
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "Training" / "img" / f"hippocampus_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "Training" / "label" / f"hippocampus_{i:03d}.nii.gz"))
    return root


def test_prepare_then_load(tmp_path):
    prepare = load_script().prepare
    src = fake_learn2reg(tmp_path / "l2r")
    counts = prepare(str(src), str(tmp_path / "out"))
    assert counts == {"train": 3, "val": 2, "test": 1}
    ds = UnpairedDataset(
        tmp_path / "out" / "train", labeled=True, spatial_size=(8, 8, 8), sample_label="all", shuffle=False
    )
    sample = ds[0]
    assert sample["moving_label"].shape == (2, 8, 8, 8) and sample["moving_image"].shape == (1, 8, 8, 8)
    assert float(sample["moving_label"].max()) <= 1.0
    with pytest.raises(FileExistsError):
        prepare(str(src), str(tmp_path / "out"))


def test_bad_layouts(tmp_path):
    prepare = load_script().prepare
    with pytest.raises(FileNotFoundError, match="Training"):
        prepare(str(tmp_path), str(tmp_path / "o"))
    src = fake_learn2reg(tmp_path / "l2r", ids=(1,))
    lab = np.full((9, 11, 8), 3, np.uint8)
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(src / "Training" / "label" / "hippocampus_001.nii.gz"))
    with pytest.raises(ValueError, match="hippocampus_001"):
        prepare(str(src), str(tmp_path / "o"))
