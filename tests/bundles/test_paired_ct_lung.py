"""The paired_ct_lung bundle: shipped weights and data, train / evaluate / inference through the configs (metadata and
network gates: ``test_bundle_gates.py``)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext.io import read_landmarks
from monai_reg_ext.metrics import landmark_tre
from tests.bundles.lung_checks import LungBundleChecks, check_learn2reg_lung_prepare_errors, make_fake_learn2reg_lung
from tests.helpers import BUNDLES_DIR, load_bundle_script, run_train_evaluate_inference, tiny_dataset_fixture

BUNDLE = BUNDLES_DIR / "paired_ct_lung"
SUBDIRS = ("moving_images", "fixed_images", "moving_labels", "fixed_labels")


#: two training and two validation pairs of the shipped data, plus a pairs file of one test pair
tiny_data = tiny_dataset_fixture(BUNDLE, subdirs=SUBDIRS, stem="pair")


def test_shipped_data_layout_and_manifest():
    manifest = json.loads((BUNDLE / "data" / "manifest.json").read_text())
    assert manifest["parameters"]["test_subjects"] == ["pyrad_lung2"]
    assert "pyrad_lung2" not in manifest["parameters"]["train_subjects"]  # the reported subject is held out
    for rel in manifest["files"]:
        assert (BUNDLE / "data" / rel).is_file(), rel
    img = nib.load(str(BUNDLE / "data" / "example" / "fixed.nii.gz"))
    hu = img.get_fdata()
    assert img.shape == (64, 56, 64) and hu.min() >= -1000.5 and hu.max() <= 200.5
    lungs = nib.load(str(BUNDLE / "data" / "example" / "fixed_label.nii.gz")).get_fdata() > 0.5
    assert hu[lungs].mean() < -600  # the lung mask holds air-like lung tissue


def test_landmarks_inside_lungs_and_tre_of_identity_and_true_ddf():
    test = BUNDLE / "data" / "test"
    item = json.loads((test / "pairs.json").read_text())[0]
    fixed = nib.load(str(test / item["fixed"]))
    lungs = nib.load(str(test / item["fixed_label"])).get_fdata() > 0.5
    f = read_landmarks(test / item["fixed_landmarks"])
    m = read_landmarks(test / item["moving_landmarks"])
    assert len(f) >= 20 and f.shape == m.shape
    assert lungs[tuple(np.round(f).astype(int).T)].all()  # every keypoint is in the (real) lungs
    zero = torch.zeros(1, 3, *fixed.shape, dtype=torch.float64)
    tre0 = landmark_tre(m, f, zero, fixed_affine=fixed.affine).numpy()
    np.testing.assert_allclose(tre0, np.linalg.norm((m - f) * 4.5, axis=1), rtol=1e-6)
    ddf = torch.as_tensor(np.moveaxis(nib.load(str(test / item["ddf"])).get_fdata(), -1, 0))[None]
    tre = landmark_tre(m, f, ddf, fixed_affine=fixed.affine).numpy()
    assert tre.max() < 0.05 and tre0.mean() > 2.0  # the stored true DDF maps the landmarks; the identity does not


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    # both trainings: the unsupervised override, then the combined default (its model.pt is evaluated)
    run_train_evaluate_inference(BUNDLE, tiny_data, tmp_path / "unsup", ["train.json", "train_unsup.json"])
    run_train_evaluate_inference(BUNDLE, tiny_data, tmp_path)


def test_prepare_learn2reg_on_a_fake_layout(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_learn2reg_lung")
    src = make_fake_learn2reg_lung(tmp_path / "training", cases=(1, 2, 3, 4, 20))
    counts = prep.prepare(str(src), str(tmp_path / "out"), clip=(-1000, 200))
    assert counts == {"train": 1, "val": 1, "test": 2}  # case_020 excluded
    fixed = nib.load(str(tmp_path / "out" / "test" / "fixed_images" / "case_004.nii.gz")).get_fdata()
    insp = nib.load(str(src / "scans" / "case_004_insp.nii.gz")).get_fdata()
    np.testing.assert_allclose(fixed, np.clip(insp, -1000, 200), atol=1e-3)  # inspiration = fixed
    from monai_reg_ext.data import PairedDataset

    ds = PairedDataset(str(tmp_path / "out" / "train"), labeled=True, spatial_size=(8, 8, 8))
    assert ds[0]["moving_image"].shape == (1, 8, 8, 8)
    check_learn2reg_lung_prepare_errors(prep, src, tmp_path / "out", missing=src / "scans" / "case_001_exp.nii.gz")


class TestLungBundle(LungBundleChecks):
    bundle = BUNDLE
    weights = ("model.pt", "model_unsup.pt")
