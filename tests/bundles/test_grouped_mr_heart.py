"""The grouped_mr_heart bundle: shipped data, MyoPS 2020 loader on a fake copy, train / evaluate / inference smoke."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.data import GroupedDataset
from monai_reg_ext.demo.manifest import sha256_file
from tests.helpers import (
    BUNDLES_DIR,
    load_bundle_script,
    run_bundle_evaluation,
    run_bundle_inference,
    run_bundle_training,
    write_absolute_pairs,
)

BUNDLE = BUNDLES_DIR / "grouped_mr_heart"
DATA = BUNDLE / "data"


def test_shipped_data_matches_manifest_and_layout():
    manifest = json.loads((DATA / "manifest.json").read_text())
    for rel, sha in manifest["files"].items():
        assert sha256_file(DATA / rel) == sha, rel
    ds = GroupedDataset(DATA / "phantom3d" / "test", sample_image_in_group=False, labeled=True, sample_label="all",
                        shuffle=False, spatial_size=(64, 64, 16))  # fmt: skip
    assert len(ds) == 4 * 3 and len(ds.groups) == 4
    item = ds[0]
    assert item["moving_image"].shape == (1, 64, 64, 16) and item["moving_label"].shape == (3, 64, 64, 16)
    assert (item["moving_image_id"], item["fixed_image_id"]) == ("patient_000/C0", "patient_000/DE")
    lab = nib.load(DATA / "phantom3d" / "test" / "labels" / "patient_000" / "C0.nii.gz").get_fdata()
    assert lab.shape == (64, 64, 16, 3) and lab.sum(-1).max() == 1 and (lab.sum((0, 1, 2)) > 100).all()
    cine = GroupedDataset(DATA / "cine2d" / "test", sample_image_in_group=False, shuffle=False, spatial_size=(64, 64))
    assert len(cine) == 6 and cine[0]["moving_image"].shape == (1, 64, 64)
    frame = nib.load(DATA / "cine2d" / "test" / "images" / "frames_12_15" / "frame_12.nii.gz")
    assert frame.shape == (256, 256) and np.isclose(frame.header.get_zooms()[0], 350 / 256, atol=1e-4)
    held_out = {p.name for p in (DATA / "cine2d" / "test" / "images").rglob("*.nii.gz")}
    train = {p.name for p in (DATA / "cine2d" / "train" / "images").rglob("*.nii.gz")}
    assert not held_out & train


def test_phantom_contrasts_differ_between_sequences():
    mk = load_bundle_script(BUNDLE, "make_demo_data")
    p = {**mk.DEFAULTS, "shape": [32, 32, 8], "spacing": [5.0, 5.0, 12.0]}
    out = mk.render_patient(7, p)
    assert set(out) == {"C0", "DE", "T2"}
    lv = out["C0"]["label"][..., 0] > 0
    mean = {s: out[s]["image"][lv].mean() for s in out}
    assert mean["C0"] > mean["DE"] > mean["T2"]  # bright blood (bSSFP), grey (LGE), dark (T2)
    assert not np.array_equal(out["C0"]["label"], out["DE"]["label"])  # the sequences are misaligned


def _fake_myops(root: Path, ids=(101, 102, 103, 104), gd=True) -> Path:
    rng = np.random.default_rng(0)
    for i in ids:
        folder = root / "train25"
        folder.mkdir(parents=True, exist_ok=True)
        for seq in ("C0", "DE", "T2"):
            img = (rng.random((12, 10, 3)) * 1000).astype(np.int16)
            nib.save(nib.Nifti1Image(img, np.eye(4)), str(folder / f"myops_training_{i}_{seq}.nii.gz"))
        if gd:
            lab = np.zeros((12, 10, 3), np.int16)
            lab[2:5, 2:5], lab[5:7, 2:5], lab[7:9, 2:5], lab[2:4, 6:8] = 500, 200, 2221, 600
            (root / "train25_myops_gd").mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "train25_myops_gd" / f"myops_training_{i}_gd.nii.gz"))
    return root


def test_myops_layout_prepare_then_load(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_myops2020")
    src = _fake_myops(tmp_path / "myops")
    counts = prep.prepare(str(src), str(tmp_path / "out"), n_val=1, n_test=1)
    assert counts == {"train": 2, "val": 1, "test": 1}
    assert (tmp_path / "out" / "test" / "images" / "patient_104" / "T2.nii.gz").is_file()
    lab = nib.load(tmp_path / "out" / "train" / "labels" / "patient_101" / "DE.nii.gz").get_fdata()
    assert lab.shape == (12, 10, 3, 3) and lab[..., 1].sum() == 2 * 3 * 3 * 2  # myo = 200 + scar 2221
    ds = GroupedDataset(tmp_path / "out" / "train", sample_image_in_group=False, labeled=True, sample_label="all",
                        shuffle=False, spatial_size=(8, 8, 4))  # fmt: skip
    assert len(ds) == 2 * 3 and ds[0]["moving_label"].shape == (3, 8, 8, 4)
    with pytest.raises(FileExistsError):
        prep.prepare(str(src), str(tmp_path / "out"), n_val=1, n_test=1)


def test_myops_bad_layouts(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_myops2020")
    with pytest.raises(FileNotFoundError, match="myops_training"):
        prep.prepare(str(tmp_path), str(tmp_path / "o"))
    src = _fake_myops(tmp_path / "m", ids=(1, 2, 3, 4))
    (src / "train25" / "myops_training_2_T2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="patient 2"):
        prep.prepare(str(src), str(tmp_path / "o"), n_val=1, n_test=1)
    src = _fake_myops(tmp_path / "m2", ids=(1, 2, 3))
    bad = np.full((12, 10, 3), 7, np.int16)
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(src / "train25_myops_gd" / "myops_training_1_gd.nii.gz"))
    with pytest.raises(ValueError, match="myops_training_1_gd"):
        prep.prepare(str(src), str(tmp_path / "o"), n_val=1, n_test=1)


def _tiny_grouped(root: Path, part: str, n: int) -> Path:
    """``n`` groups of each split of the shipped data (3D phantom or 2D cine)."""
    for split in ("train", "val"):
        for sub in ("images", "labels"):
            src = DATA / part / split / sub
            if not src.is_dir():
                continue
            for group in sorted(p.name for p in src.iterdir())[:n]:
                shutil.copytree(src / group, root / split / sub / group)
    return root


@pytest.mark.parametrize(
    "part,dims,size,extra",
    [("phantom3d", 3, [32, 32, 8], {}), ("cine2d", 2, [32, 32], {"labeled_eval": False})],
    ids=["3d_phantom", "2d_cine"],
)
def test_train_evaluate_smoke(part, dims, size, extra, tmp_path):
    data, runs = _tiny_grouped(tmp_path / "data", part, 2), tmp_path / "runs"
    common = {"spatial_dims": dims, "spatial_size": size, **extra}
    model_path = run_bundle_training(BUNDLE, data, runs, **common)
    state = torch.load(model_path, weights_only=True)
    assert any(v.ndim == dims + 2 for v in state.values())  # conv kernels of the requested dimension
    metrics = run_bundle_evaluation(BUNDLE, data, runs, model_path, eval_split="val", **common)
    assert "val_gmi" in metrics and ("val_mean_dice" in metrics) == (dims == 3)


def test_inference_smoke(tmp_path):
    base = DATA / "phantom3d" / "test"
    pairs = json.loads((base / "pairs.json").read_text())[:1]
    pairs_file = write_absolute_pairs(pairs, base, tmp_path / "pairs.json", keep=())
    assert "dice_label0_after" in run_bundle_inference(BUNDLE, tmp_path / "inference", pairs_file)
