"""The paired_mrus_prostate bundle: original layout, synthetic generator, train / evaluate / inference via configs."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import BUNDLES_DIR, check_shipped_weights, load_bundle_script, run_bundle_smoke, write_absolute_pairs

BUNDLE = BUNDLES_DIR / "paired_mrus_prostate"
FOLDERS = ("moving_images", "fixed_images", "moving_labels", "fixed_labels")


@pytest.fixture(scope="module")
def tiny_parts(tmp_path_factory):
    """Parts 0 and 8 (one case each) and part 9 of the shipped data, in the bundle's part layout."""
    root = tmp_path_factory.mktemp("mrus")
    for part in ("part00", "part08", "part09"):
        src = BUNDLE / "data" / part
        name = sorted((src / "moving_images").iterdir())[0].name
        for sub in FOLDERS:
            (root / part / sub).mkdir(parents=True)
            shutil.copy(src / sub / name, root / part / sub / name)
    return root


def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (16, 24, 16))


def test_shipped_data_layout_shapes_and_landmarks():
    """DeepReg's shapes, 2-channel labels, and fixed landmarks that map onto the moving ones through the truth."""
    from monai_reg_ext.data import PairedDataset

    ds = PairedDataset(
        [str(BUNDLE / "data" / "part09")], labeled=True, sample_label="all", shuffle=False, spatial_size=None
    )
    sample = ds[0]
    assert tuple(sample["moving_image"].shape) == (1, 69, 69, 64)
    assert tuple(sample["fixed_image"].shape) == (1, 47, 63, 44)
    assert tuple(sample["moving_label"].shape) == (2, 69, 69, 64)
    assert tuple(sample["fixed_label"].shape) == (2, 47, 63, 44)
    # the transition zone lies inside the gland in both images
    for key in ("moving_label", "fixed_label"):
        gland, tz = sample[key][0] > 0.5, sample[key][1] > 0.5
        assert tz.sum() > 100 and bool((tz & ~gland).sum() < 0.02 * tz.sum())
    pairs = json.loads((BUNDLE / "data" / "test_pairs.json").read_text())
    assert len(pairs) == 18 and {p["moving"].split("/")[0] for p in pairs} == {"part09", "part10"}
    gen = load_bundle_script(BUNDLE, "make_demo_data")
    case = gen.random_case(gen.DEFAULTS["seed"] * 1000 + 9, gen.DEFAULTS)
    x = case.landmarks()
    y = case.inverse_points(x)
    np.testing.assert_allclose((y.T + case.displacement(y.T)).T, x, atol=1e-3)
    shipped = json.loads((BUNDLE / "data" / "part09" / "fixed_landmarks" / "case_009.json").read_text())
    np.testing.assert_allclose(np.asarray(shipped["points"]), y, atol=1e-3)
    assert shipped["space"] == "physical"


def test_prepare_original_layout(tmp_path):
    """DeepReg's flat mrus layout (4 folders, 4D labels) is split into parts by index modulo 11."""
    prep = load_bundle_script(BUNDLE, "prepare_mrus_prostate")
    src = tmp_path / "example-data-mrus"
    shapes = {"moving": (69, 69, 64), "fixed": (47, 63, 44)}
    for i in range(13):
        for side, shape in shapes.items():
            img = nib.Nifti1Image(np.full(shape, i, np.float32), np.eye(4))
            lab = nib.Nifti1Image(np.zeros((*shape, 3), np.uint8), np.eye(4))
            (src / f"{side}_images").mkdir(parents=True, exist_ok=True)
            (src / f"{side}_labels").mkdir(parents=True, exist_ok=True)
            nib.save(img, str(src / f"{side}_images" / f"case{i:06d}.nii.gz"))
            nib.save(lab, str(src / f"{side}_labels" / f"case{i:06d}.nii.gz"))
    counts = prep.prepare(str(src), str(tmp_path / "parts"))
    assert counts["part00"] == 2 and counts["part01"] == 2 and counts["part10"] == 1 and len(counts) == 11
    assert (tmp_path / "parts" / "part01" / "fixed_labels" / "case000012.nii.gz").is_file()
    from monai_reg_ext.data import PairedDataset

    ds = PairedDataset([str(tmp_path / "parts" / "part00")], labeled=True, sample_label="sample", shuffle=False)
    s = ds[1]
    assert tuple(s["moving_label"].shape) == (1, 69, 69, 64) and tuple(s["fixed_image"].shape) == (1, 47, 63, 44)
    with pytest.raises(FileExistsError, match="not empty"):
        prep.prepare(str(src), str(tmp_path / "parts"))
    (src / "fixed_labels" / "case000003.nii.gz").unlink()
    with pytest.raises(ValueError, match="fixed_labels: file names differ"):
        prep.prepare(str(src), str(tmp_path / "parts2"))
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    shutil.copy(src / "fixed_labels" / "case000004.nii.gz", bad / "fixed_labels" / "case000003.nii.gz")
    nib.save(
        nib.Nifti1Image(np.zeros((40, 40, 40), np.float32), np.eye(4)), str(bad / "moving_images" / "case000000.nii.gz")
    )
    with pytest.raises(ValueError, match=r"case000000.nii.gz: expected shape \(69, 69, 64\)"):
        prep.prepare(str(bad), str(tmp_path / "parts3"))


def test_train_evaluate_inference_smoke(tiny_parts, tmp_path):
    grids = {"spatial_size": [16, 24, 16], "moving_spatial_size": [24, 24, 24], "test_parts": [9]}
    pairs = json.loads((BUNDLE / "data" / "test_pairs.json").read_text())[:1]
    pairs_file = write_absolute_pairs(pairs, BUNDLE / "data", tmp_path / "pairs.json")
    train = {"train_parts": [0], "val_parts": [8], **grids}
    smoke = run_bundle_smoke(BUNDLE, tiny_parts, tmp_path, pairs_file, train, grids)
    assert "val_mean_dice" in smoke.metrics and "dice_label1_after" in smoke.summary


def test_results_script_on_one_pair(tmp_path):
    """scripts/evaluate.py: before/after Dice and TRE with the shipped weights, written as JSON + MD + PNG."""
    ev = load_bundle_script(BUNDLE, "evaluate")
    pairs = json.loads((BUNDLE / "data" / "test_pairs.json").read_text())[:1]
    pairs_file = write_absolute_pairs(pairs, BUNDLE / "data", tmp_path / "pairs.json")
    res = ev.evaluate(pairs=str(pairs_file), output=str(tmp_path / "res"))
    before, row = res["pairs"]["none"][0], res["pairs"]["network"][0]
    assert 0.3 < before["dice_gland"] < 1 and 0 <= row["folding_fraction"] < 0.05
    # the probe deformation and misalignment are several mm; the generator's own no-registration TRE of this case
    gen = load_bundle_script(BUNDLE, "make_demo_data")
    moving = json.loads((BUNDLE / "data" / pairs[0]["moving_landmarks"]).read_text())["points"]
    fixed = json.loads((BUNDLE / "data" / pairs[0]["fixed_landmarks"]).read_text())["points"]
    expected = float(np.linalg.norm(np.asarray(moving) - np.asarray(fixed), axis=1).mean())
    assert before["tre_mm"] == pytest.approx(expected, abs=1e-3) and expected > 1.0
    assert gen.DEFAULTS["moving_shape"] == [69, 69, 64]
    assert (tmp_path / "res" / "results.md").is_file() and list((tmp_path / "res").glob("registration_*.png"))


@pytest.mark.slow
def test_demo_data_regenerates_byte_for_byte():
    gen = load_bundle_script(BUNDLE, "make_demo_data")
    assert gen.check(BUNDLE / "data", verbose=False)
