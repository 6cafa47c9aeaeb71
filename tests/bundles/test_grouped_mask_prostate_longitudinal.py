"""The grouped_mask_prostate_longitudinal bundle: synthetic data, DeepReg's H5 grouped layout, and train / evaluate /
inference through the real configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from tests.helpers import (
    BUNDLES_DIR,
    check_shipped_weights,
    load_bundle_script,
    parse_bundle_config,
    run_bundle_evaluation,
    run_bundle_inference,
    run_bundle_training,
    write_absolute_pairs,
)

BUNDLE = BUNDLES_DIR / "grouped_mask_prostate_longitudinal"
DATA = BUNDLE / "data"


def _generator():
    return load_bundle_script(BUNDLE, "make_demo_data")


def _patients(split: str) -> list[Path]:
    return sorted(p for p in (DATA / split / "images").iterdir() if p.is_dir())


def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (64, 64, 32))


def test_demo_data_layout_and_content():
    manifest = json.loads((DATA / "manifest.json").read_text())
    assert manifest["synthetic"] is True
    total = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file())
    assert total < 3 * 2**20
    counts = {split: len(_patients(split)) for split in ("train", "val", "test")}
    assert counts == {s: manifest["parameters"][f"n_{s}"] for s in counts}
    seeds = [v["seed"] for v in manifest["patients"].values()]
    assert len(seeds) == len(set(seeds)), "splits must not share patients"
    for split in ("train", "val", "test"):
        for patient in _patients(split)[:2]:
            visits = sorted(patient.glob("visit_*.nii.gz"))
            assert 3 <= len(visits) <= 6
            for v in visits:
                img = nib.load(v)
                data = np.asarray(img.dataobj)
                assert data.shape == (64, 64, 32) and data.dtype == np.uint8
                assert set(np.unique(data)) == {0, 1}
                np.testing.assert_allclose(np.diag(img.affine)[:3], [1.5, 1.5, 2.5])
    pairs = json.loads((DATA / "test" / "pairs.json").read_text())
    assert len(pairs) == counts["test"]
    assert all((DATA / "test" / p[k]).is_file() for p in pairs for k in ("moving", "fixed"))


def test_generator_is_deterministic():
    """train/patient_000 regenerated from its seed equals the shipped files (the full check is --check)."""
    gen = _generator()
    manifest = json.loads((DATA / "manifest.json").read_text())
    res = gen.make_patient(manifest["parameters"]["seed_train"], manifest["parameters"])
    shipped = sorted((DATA / "train" / "images" / "patient_000").glob("visit_*.nii.gz"))
    assert len(res["masks"]) == len(shipped)
    for mask, f in zip(res["masks"], shipped):
        np.testing.assert_array_equal(mask, np.asarray(nib.load(f).dataobj))


def _fake_h5(folder: Path, groups: dict[int, int], shape=(16, 16, 8)) -> None:
    """DeepReg's grouped H5 layout: ``<folder>/images.h5`` with keys ``group-<g>-<i>`` (masks as images, no labels)."""
    import h5py

    gen = _generator()
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")) * 2.0
    with h5py.File(folder / "images.h5", "w") as f:
        for g, n in groups.items():
            for i in range(n):
                occ = gen.gland_occupancy(grid - i, [9.0 + i, 7.0, 6.0], np.zeros(19), 1.0)
                f[f"group-{g}-{i}"] = (occ >= 0.5).astype(np.float32)


def test_deepreg_h5_grouped_layout(tmp_path):
    """The config's eval transform + GroupedDataset read DeepReg's ``images.h5`` (keys group-<g>-<i>) unchanged."""
    _fake_h5(tmp_path / "test", {1: 3, 2: 2})
    overrides = {
        "dataset_dir": str(tmp_path),
        "spatial_size": [16, 16, 8],
        "validate#dataset#dir": str(tmp_path / "test"),
        "validate#dataset#sample_image_in_group": False,
    }
    ds = parse_bundle_config(BUNDLE, ["train.json"], overrides).get_parsed_content("validate#dataset")
    assert len(ds.pairs(0)) == 3 * 2 + 2 * 1  # unconstrained: sum n(n-1)
    item = ds[0]
    assert item["moving_image"].shape == (1, 16, 16, 8)
    torch.testing.assert_close(item["moving_label"], item["moving_image"])  # the mask is its own label
    assert item["moving_image_id"].split("-")[1] == item["fixed_image_id"].split("-")[1]  # intra-group


def test_train_evaluate_inference_smoke(tmp_path):
    data = tmp_path / "data"
    for split, n in (("train", 2), ("val", 1)):
        for patient in _patients(split)[:n]:
            shutil.copytree(patient, data / split / "images" / patient.name)
    _fake_h5(data / "h5val", {1: 3})
    runs = tmp_path / "runs"
    model_path = run_bundle_training(BUNDLE, data, runs, spatial_size=[32, 32, 16], batch_size=2)
    # the DeepReg H5 layout through the evaluation config
    metrics = run_bundle_evaluation(BUNDLE, data, runs, model_path, spatial_size=[32, 32, 16], eval_split="h5val")
    assert "val_mean_dice" in metrics and "val_centroid_distance_mm" in metrics
    pair = json.loads((DATA / "test" / "pairs.json").read_text())[0]
    pairs_file = write_absolute_pairs([pair], DATA / "test", tmp_path / "pairs.json", keep=())
    assert "dice_label0_after" in run_bundle_inference(BUNDLE, tmp_path / "inference", pairs_file)
