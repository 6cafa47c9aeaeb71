"""The unpaired_ct_lung bundle: metadata, network I/O, shipped data, train / evaluate / inference via the configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import verify_metadata, verify_net_in_out

from tests.helpers import run_train_evaluate_inference, run_two_process_training

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "unpaired_ct_lung"
CONFIGS = BUNDLE / "configs"
SCHEMA = ROOT.parent / "shared" / "reference" / "monai_meta_schema_20240725.json"


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BUNDLE / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training and two validation images of the shipped data, plus a pairs file of one test pair."""
    root = tmp_path_factory.mktemp("lung")
    for split in ("train", "val"):
        for sub in ("images", "labels"):
            (root / split / sub).mkdir(parents=True)
            for i in range(2):
                name = f"subject_{i:03d}.nii.gz"
                shutil.copy(BUNDLE / "data" / split / sub / name, root / split / sub / name)
    example = BUNDLE / "data" / "example"
    keys = ("moving", "fixed", "moving_label", "fixed_label")
    (root / "pairs.json").write_text(json.dumps([{k: str(example / f"{k}.nii.gz") for k in keys}]))
    return root


def test_metadata_is_valid():
    if not SCHEMA.is_file():
        pytest.skip(f"MONAI's metadata schema is not at {SCHEMA} (it cannot be downloaded here)")
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_network_in_out():
    verify_net_in_out(
        net_id="backbone_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json")
    )


@pytest.mark.parametrize("weights", ["model.pt"])
def test_shipped_weights_load_safely(weights):
    state = torch.load(BUNDLE / "models" / weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    from monai_reg_ext.bundle import load_bundle

    model = load_bundle(BUNDLE, weights=BUNDLE / "models" / weights)
    assert model.spatial_size == (32, 28, 32)


def test_shipped_data_layout_and_manifest():
    manifest = json.loads((BUNDLE / "data" / "manifest.json").read_text())
    assert manifest["parameters"]["test_subjects"] == ["pyrad_lung2"]
    patients = {k.split("/")[0]: set() for k in manifest["images"]}
    for key, info in manifest["images"].items():
        patients[key.split("/")[0]].add(info["patient"])
    assert "pyrad_lung2" not in patients["train"] | patients["val"]  # the reported patient is held out
    assert not any(info["deformed"] for k, info in manifest["images"].items() if k.startswith("test/"))
    for rel in manifest["files"]:
        assert (BUNDLE / "data" / rel).is_file(), rel
    affines = {str(nib.load(str(p)).affine.round(4).tolist()) for p in (BUNDLE / "data").glob("*/images/*.nii.gz")}
    assert len(affines) == 1  # one common grid


def test_test_pairs_are_real_inter_subject_pairs():
    test = BUNDLE / "data" / "test"
    pairs = json.loads((test / "pairs.json").read_text())
    assert len(pairs) == 4 and all("pyrad_lung2" in p["subject"] for p in pairs)
    for p in pairs:
        mov, fix = p["subject"].split("->")
        assert mov != fix and p["moving"] != p["fixed"]
        img = nib.load(str(test / p["moving"])).get_fdata()
        lungs = nib.load(str(test / p["moving_label"])).get_fdata() > 0.5
        assert img.shape == (64, 56, 64) and hu_ok(img) and img[lungs].mean() < -600


def hu_ok(hu: np.ndarray) -> bool:
    return bool(hu.min() >= -1000.5 and hu.max() <= 200.5)


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    run_train_evaluate_inference(BUNDLE, tiny_data, tmp_path)


def test_prepare_learn2reg_on_a_fake_layout(tmp_path):
    prep = _load_script("prepare_learn2reg_lung")
    src = tmp_path / "training"
    for sub in ("scans", "lungMasks"):
        (src / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in (1, 2, 3, 4, 5, 6, 20):
        for phase in ("insp", "exp"):
            img = rng.normal(-700, 100, size=(12, 10, 8)).astype(np.float32)
            nib.save(nib.Nifti1Image(img, np.eye(4)), str(src / "scans" / f"case_{c:03d}_{phase}.nii.gz"))
            mask = (img < -700).astype(np.uint8)
            nib.save(nib.Nifti1Image(mask, np.eye(4)), str(src / "lungMasks" / f"case_{c:03d}_{phase}.nii.gz"))
    counts = prep.prepare(str(src), str(tmp_path / "out"))
    assert counts == {"train": 2, "val": 2, "test": 2}  # one scan per patient; case_020 excluded
    got = nib.load(str(tmp_path / "out" / "test" / "images" / "case_006.nii.gz")).get_fdata()
    exp = nib.load(str(src / "scans" / "case_006_exp.nii.gz")).get_fdata()
    np.testing.assert_allclose(got, exp, atol=1e-3)  # expiration scans by default
    from monai_reg_ext.data import UnpairedDataset

    ds = UnpairedDataset(str(tmp_path / "out" / "train"), labeled=True, spatial_size=(8, 8, 8), shuffle=False)
    assert ds[0]["moving_image_id"] != ds[0]["fixed_image_id"]
    with pytest.raises(ValueError, match="phase"):
        prep.prepare(str(src), str(tmp_path / "x"), phase="mid")
    with pytest.raises(FileExistsError, match="not empty"):
        prep.prepare(str(src), str(tmp_path / "out"))
    (src / "lungMasks" / "case_001_exp.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case_001"):
        prep.prepare(str(src), str(tmp_path / "other"))


def _sources() -> tuple[Path, Path] | None:
    for base in (ROOT / "downloads", ROOT.parent / "downloads"):
        ts, pr = base / "ts" / "totalsegmentator-2.18.0", base / "pyradiomics_data"
        if ts.is_dir() and pr.is_dir():
            return ts, pr
    return None


@pytest.mark.slow
def test_demo_data_is_reproducible():
    src = _sources()
    if src is None:
        pytest.skip("the TotalSegmentator / pyradiomics source files are not under downloads/ (see docs/data.md)")
    mod = _load_script("make_demo_data")
    assert mod.check(str(src[0]), str(src[1]), BUNDLE / "data")


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    run_two_process_training(
        BUNDLE,
        ["train.json"],
        tiny_data,
        tmp_path / "runs",
        "--spatial_size",
        "[16,16,16]",
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
        "--batch_size",
        "1",
    )
