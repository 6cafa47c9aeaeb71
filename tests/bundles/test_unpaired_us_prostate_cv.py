"""The unpaired_us_prostate_cv bundle: fold layout, CV rotations, original layout, and train / evaluate / inference."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from tests.helpers import BUNDLES_DIR, check_shipped_weights, load_bundle_script, run_bundle_smoke

BUNDLE = BUNDLES_DIR / "unpaired_us_prostate_cv"
CONFIGS = BUNDLE / "configs"


def _script(name: str):
    """The bundle's scripts import each other: load one with ``scripts/`` on ``sys.path``."""
    return load_bundle_script(BUNDLE, name, scripts_on_path=True)


def _subset_fold(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` volumes (and hidden masks) of a shipped fold."""
    dst.mkdir(parents=True)
    for name in ("images.h5", "gland_masks.h5"):
        with h5py.File(src / name, "r") as f, h5py.File(dst / name, "w") as g:
            for key in sorted(f.keys())[:n]:
                g.create_dataset(key, data=f[key][()])


@pytest.fixture(scope="module")
def tiny_folds(tmp_path_factory):
    root = tmp_path_factory.mktemp("trus")
    for fold in (0, 8, 9):
        _subset_fold(BUNDLE / "data" / f"fold{fold}", root / f"fold{fold}", 2)
    return root


def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (24, 32, 32))


def test_shipped_folds_are_unlabelled_h5_with_hidden_masks():
    from monai_reg_ext.data import UnpairedDataset

    for k in range(10):
        with (
            h5py.File(BUNDLE / "data" / f"fold{k}" / "images.h5", "r") as f,
            h5py.File(BUNDLE / "data" / f"fold{k}" / "gland_masks.h5", "r") as g,
        ):
            assert sorted(f.keys()) == sorted(g.keys()) and len(f.keys()) == 6
            img, mask = f[sorted(f.keys())[0]][()], g[sorted(g.keys())[0]][()]
            assert img.shape == mask.shape == (40, 64, 64) and img.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 1} and 0.01 < mask.mean() < 0.1
            ring = ndimage.binary_dilation(mask > 0, iterations=3) & (mask == 0)
            assert img[mask > 0].mean() < 0.8 * img[ring].mean()  # hypoechoic gland, brighter periprostatic fat
    ds = UnpairedDataset([str(BUNDLE / "data" / "fold8"), str(BUNDLE / "data" / "fold9")], shuffle=False)
    assert not ds.labeled and len(ds) == 6  # the masks are not a layout the loaders read
    sample = ds[0]
    assert tuple(sample["moving_image"].shape) == (1, 40, 64, 64) and sample["moving_image_id"].startswith("fold8/")


def test_cv_rotation_configs_list_disjoint_folds():
    for r in range(10):
        cfg = json.loads((CONFIGS / "cv" / f"rotation_{r}.json").read_text())
        train, val, test = cfg["train_folds"], cfg["val_folds"], cfg["test_folds"]
        assert test == [(9 + r) % 10] and val == [(8 + r) % 10]
        assert sorted(train + val + test) == list(range(10)) and len(train) == 8
    base = json.loads((CONFIGS / "train.json").read_text())
    assert base["train_folds"] == list(range(8)) and base["val_folds"] == [8] and base["test_folds"] == [9]


def test_prepare_original_layout(tmp_path):
    prep = _script("prepare_trus3d")
    src = tmp_path / "dataset_trus3d-master" / "data"
    for k in range(3):
        (src / f"fold{k}").mkdir(parents=True)
        with h5py.File(src / f"fold{k}" / "images.h5", "w") as f:
            for i in range(3):
                f.create_dataset(f"case{k}{i}", data=np.full((64, 100, 100), i, np.uint8))
    with h5py.File(src / "fold3.h5", "w") as f:
        for i in range(2):
            f.create_dataset(f"case3{i}", data=np.zeros((64, 100, 100), np.uint8))
    counts = prep.prepare(str(tmp_path / "dataset_trus3d-master"), str(tmp_path / "folds"))
    assert counts == {"fold0": 3, "fold1": 3, "fold2": 3, "fold3": 2}
    from monai_reg_ext.data import UnpairedDataset

    ds = UnpairedDataset([str(tmp_path / "folds" / "fold0"), str(tmp_path / "folds" / "fold3")], shuffle=False)
    assert len(ds) == 2 and tuple(ds[0]["fixed_image"].shape) == (1, 64, 100, 100)
    with h5py.File(src / "fold1" / "images.h5", "a") as f:
        f.create_dataset("bad", data=np.zeros((64, 100, 99), np.uint8))
    with pytest.raises(ValueError, match=r"fold1/images.h5::bad: expected shape \(64, 100, 100\)"):
        prep.prepare(str(tmp_path / "dataset_trus3d-master"), str(tmp_path / "folds"), overwrite=True)
    with pytest.raises(FileNotFoundError, match="no fold"):
        prep.prepare(str(tmp_path / "folds" / "fold0"), str(tmp_path / "x"))


def test_train_evaluate_inference_smoke(tiny_folds, tmp_path):
    folds = {"train_folds": [0], "val_folds": [8], "test_folds": [9], "spatial_size": [16, 16, 16]}
    smoke = run_bundle_smoke(BUNDLE, tiny_folds, tmp_path, train=folds, evaluate=folds)
    assert "val_lncc" in smoke.metrics and "dice_label0_after" in smoke.summary


def test_results_script_on_tiny_fold(tiny_folds, tmp_path):
    ev = _script("evaluate")
    res = ev.evaluate(folds=[9], dataset_dir=str(tiny_folds), output=str(tmp_path / "res"))
    before, row = res["pairs"]["none"][0], res["pairs"]["network"][0]
    assert len(res["pairs"]["network"]) == 1 and row["pair"] == "subject_054->subject_055"
    assert 0.2 < before["dice"] < 0.95 and 0 < before["lncc"] < 1
    assert 0 <= row["folding_fraction"] < 0.05 and row["seconds"] > 0
    assert set(res["eval_metrics"]) == set(ev.EVAL_METRICS)
    assert (tmp_path / "res" / "results.md").is_file() and (tmp_path / "res" / "registration_test_pair0.png").is_file()


@pytest.mark.slow
def test_cross_validate_one_short_rotation(tiny_folds, tmp_path):
    cv = _script("cross_validate")
    res = cv.cross_validate(
        rotations=[0],
        max_epochs=1,
        val_interval=1,
        output=str(tmp_path / "cv"),
        dataset_dir=str(tiny_folds),
        extra=["--train_folds", "[0]", "--spatial_size", "[16,16,16]", "--batch_size", "1"],
    )
    assert res["rotations"]["0"]["test_folds"] == [9]
    assert (tmp_path / "cv" / "cv_summary.md").read_text().count("| 0 | 9 |") == 1


@pytest.mark.slow
def test_demo_data_regenerates_byte_for_byte():
    assert _script("make_demo_data").check(BUNDLE / "data", verbose=False)
