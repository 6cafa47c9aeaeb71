"""The unpaired_ct_lung bundle: shipped weights and data, train / evaluate / inference via the configs (metadata and
network gates: ``test_bundle_gates.py``)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.bundles.lung_checks import LungBundleChecks, check_learn2reg_lung_prepare_errors, make_fake_learn2reg_lung
from tests.helpers import BUNDLES_DIR, load_bundle_script, run_train_evaluate_inference, tiny_dataset_fixture

BUNDLE = BUNDLES_DIR / "unpaired_ct_lung"


#: two training and two validation images of the shipped data, plus a pairs file of one test pair
tiny_data = tiny_dataset_fixture(BUNDLE)


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
    prep = load_bundle_script(BUNDLE, "prepare_learn2reg_lung")
    src = make_fake_learn2reg_lung(tmp_path / "training", cases=(1, 2, 3, 4, 5, 6, 20))
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
    missing = src / "lungMasks" / "case_001_exp.nii.gz"
    check_learn2reg_lung_prepare_errors(prep, src, tmp_path / "out", missing)


class TestLungBundle(LungBundleChecks):
    bundle = BUNDLE
