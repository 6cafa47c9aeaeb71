"""The unpaired_ct_abdomen bundle: metadata eval_metrics, the three trainings' configs and weights, the demo data, the
loaders, and train / evaluate / inference through the real configs."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_reg_ext.data import UnpairedDataset
from monai_reg_ext.demo.manifest import sha256_file
from tests.helpers import (
    BUNDLES_DIR,
    PAIR_KEYS,
    REPO_ROOT,
    check_shipped_weights,
    load_bundle_script,
    make_tiny_dataset,
    parse_bundle_config,
    run_bundle_evaluation,
    run_bundle_inference,
    run_bundle_training,
    run_two_process_training,
)

BUNDLE = BUNDLES_DIR / "unpaired_ct_abdomen"
CONFIGS = BUNDLE / "configs"
DATA = BUNDLE / "data"
ORGANS = ("liver", "spleen", "stomach", "pancreas")
WEIGHTS = {
    "combined": "models/model.pt",
    "unsupervised": "models/model_unsupervised.pt",
    "weakly_supervised": "models/model_weakly_supervised.pt",
}
#: (image, label, regulariser) weights of DeepReg's three trainings
LOSS_WEIGHTS = {
    "combined": {"image": 1.0, "label": 0.1, "regulariser": 0.025},
    "unsupervised": {"image": 1.0, "label": 0.0, "regulariser": 0.1},
    "weakly_supervised": {"image": 0.0, "label": 1.0, "regulariser": 0.5},
}


def _config_names(variant: str) -> list[str]:
    """The training configs of a variant: ``train.json``, then the variant's override unless it is the default."""
    return ["train.json"] if variant == "combined" else ["train.json", f"{variant}.json"]


def _parser(variant: str) -> ConfigParser:
    return parse_bundle_config(BUNDLE, _config_names(variant))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training and two validation subjects of the shipped data, plus a pairs file of the example pair."""
    return make_tiny_dataset(DATA, tmp_path_factory.mktemp("abdomen"))


# ------------------------------------------------------------------------------------------------ metadata and configs
@pytest.mark.parametrize("variant", sorted(LOSS_WEIGHTS))
def test_variant_overrides_change_exactly_loss_weights_output_and_ckpt(variant):
    base = copy.deepcopy(_parser("combined").get())
    raw = copy.deepcopy(_parser(variant).get())
    assert raw["loss"]["weights"] == LOSS_WEIGHTS[variant]
    changed = {k for k in set(base) | set(raw) if base.get(k) != raw.get(k)}
    loss_changed = {k for k in base["loss"] if base["loss"][k] != raw["loss"][k]}
    parser = _parser(variant)
    if variant == "combined":
        assert parser.get_parsed_content("ckpt_path") == str(BUNDLE / "models" / "model.pt")
    else:
        override = json.loads((CONFIGS / f"{variant}.json").read_text())
        assert set(override) == {"loss#weights", "output_dir", "ckpt_path"}
        assert changed == {"loss", "output_dir", "ckpt_path"} and loss_changed == {"weights"}
        assert parser.get_parsed_content("ckpt_path") == str(BUNDLE / WEIGHTS[variant])
        assert parser.get_parsed_content("output_dir") == str(BUNDLE / "runs" / variant)
    # a weight of 0 switches a term off: the instantiated loss has exactly the intended active terms
    active = {k for k, w in LOSS_WEIGHTS[variant].items() if w > 0}
    assert set(parser.get_parsed_content("loss").active) == active


def test_multi_gpu_config_only_overrides_distribution():
    override = json.loads((CONFIGS / "multi_gpu_train.json").read_text())
    base = json.loads((CONFIGS / "train.json").read_text())
    assert "loss" not in override and "network_def" not in override
    assert {k.split("#")[0] for k in override} <= set(base) | {"finalize"}


# ------------------------------------------------------------------------------------------------------------ weights
@pytest.mark.parametrize("variant", sorted(WEIGHTS))
def test_shipped_weights_load_safely_and_predict(variant):
    check_shipped_weights(BUNDLE, (72, 56, 40), Path(WEIGHTS[variant]).relative_to("models"))


def test_the_three_weights_differ():
    states = {v: torch.load(BUNDLE / w, weights_only=True) for v, w in WEIGHTS.items()}
    keys = sorted(states["combined"])
    assert all(sorted(s) == keys for s in states.values())
    for a, b in (
        ("combined", "unsupervised"),
        ("combined", "weakly_supervised"),
        ("unsupervised", "weakly_supervised"),
    ):
        assert any(not torch.equal(states[a][k], states[b][k]) for k in keys), f"{a} and {b} weights are identical"


# --------------------------------------------------------------------------------------------------------- demo data
def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def _subjects() -> list[tuple[Path, Path]]:
    return [
        (img, DATA / split / "labels" / img.name)
        for split in ("train", "val", "test")
        for img in sorted((DATA / split / "images").glob("*.nii.gz"))
    ]


def test_demo_data_labels_are_one_hot_and_on_the_image_grid():
    subjects = _subjects()
    assert len(subjects) == 10 + 4 + 4
    for img_path, lab_path in subjects:
        img, img_affine = _load(img_path)
        lab, lab_affine = _load(lab_path)
        assert img.dtype == np.uint8 and img.shape == (72, 56, 40), img_path
        assert lab.dtype == np.uint8 and lab.shape == (72, 56, 40, len(ORGANS)), lab_path
        assert np.allclose(img_affine, lab_affine) and np.allclose(np.diag(img_affine)[:3], 4.0)
        assert set(np.unique(lab).tolist()) <= {0, 1}
        assert lab.sum(-1).max() == 1, f"{lab_path}: organs overlap"
        # the same organ set in every subject, none empty
        counts = lab.reshape(-1, len(ORGANS)).sum(0)
        assert np.all(counts > 0), f"{lab_path}: empty organ channel {counts}"


def test_demo_data_labels_are_aligned_with_the_images():
    """Organ intensities (soft-tissue window) stay those of the real scan after warping: labels moved with images."""
    ref_img, _ = _load(DATA / "test" / "images" / "subject_000.nii.gz")
    ref_lab, _ = _load(DATA / "test" / "labels" / "subject_000.nii.gz")
    ref_counts = ref_lab.reshape(-1, len(ORGANS)).sum(0)
    ref_means = [ref_img[ref_lab[..., k] > 0].mean() for k in range(len(ORGANS))]
    # liver (~60 HU) is brighter than the stomach content, and every organ sits in the soft-tissue range
    assert 90 < ref_means[0] < 160 and ref_means[0] > ref_means[2]
    for img_path, lab_path in _subjects():
        img, _ = _load(img_path)
        lab, _ = _load(lab_path)
        counts = lab.reshape(-1, len(ORGANS)).sum(0)
        assert np.all(np.abs(counts / ref_counts - 1) < 0.35), f"{lab_path}: organ volumes {counts} vs {ref_counts}"
        for k in (0, 1):  # liver and spleen: large homogeneous organs; a misaligned label would catch fat / air
            mean = img[lab[..., k] > 0].mean()
            assert abs(mean - ref_means[k]) < 15, f"{img_path}: {ORGANS[k]} mean {mean:.1f} vs {ref_means[k]:.1f}"
            outside = img[(lab.sum(-1) == 0)].mean()
            assert mean > outside + 20


def test_test_subject_000_is_the_real_scan_and_training_subjects_are_not():
    manifest = json.loads((DATA / "manifest.json").read_text())
    assert manifest["subjects"]["test"][0]["seed"] is None
    seeds = {s["seed"] for split in ("train", "val") for s in manifest["subjects"][split]}
    test_seeds = {s["seed"] for s in manifest["subjects"]["test"][1:]}
    assert None not in seeds and not seeds & test_seeds
    real, _ = _load(DATA / "test" / "images" / "subject_000.nii.gz")
    for img_path, _ in _subjects():
        if img_path.parent.parent.name != "test":
            assert not np.array_equal(_load(img_path)[0], real)


def test_manifest_matches_the_shipped_files():
    manifest = json.loads((DATA / "manifest.json").read_text())
    assert manifest["labels"] == list(ORGANS)
    assert manifest["source"]["organ_ids"] == {"liver": 5, "spleen": 1, "stomach": 6, "pancreas": 7}
    shipped = {
        str(f.relative_to(DATA)).replace(os.sep, "/")
        for f in DATA.rglob("*")
        if f.is_file() and f.name != "manifest.json"
    }
    assert shipped == set(manifest["files"])
    bad = [name for name, sha in manifest["files"].items() if sha256_file(DATA / name) != sha]
    assert not bad, f"files differ from the manifest: {bad}"


def test_test_and_slab_pairs_load_through_the_unpaired_dataset():
    pairs = json.loads((DATA / "test" / "pairs.json").read_text())
    assert len(pairs) == 12 and len({(p["moving"], p["fixed"]) for p in pairs}) == 12
    ds = UnpairedDataset(DATA / "test", labeled=True, shuffle=False, sample_label="all")
    assert len(ds) == 2
    slab = {k: _load(DATA / "slab" / f"{k}.nii.gz")[0] for k in PAIR_KEYS}
    assert slab["moving"].shape == slab["fixed"].shape == (72, 56, 8)
    assert slab["fixed_label"].shape == (72, 56, 8, 4)
    # liver, spleen and stomach are present in both real patients' slabs
    assert np.all(slab["fixed_label"][..., :3].reshape(-1, 3).sum(0) > 500)
    assert np.all(slab["moving_label"][..., :3].reshape(-1, 3).sum(0) > 500)


def test_organ_ids_are_read_from_totalsegmentator_class_map():
    make = load_bundle_script(BUNDLE, "make_demo_data")
    src = 'class_map = {\n  "total": {1: "spleen", 5: "liver", 6: "stomach", 7: "pancreas"},\n  "other": {}}\n'
    assert make.organ_ids(src) == {"liver": 5, "spleen": 1, "stomach": 6, "pancreas": 7}
    with pytest.raises(ValueError, match="has no \\['pancreas'\\]"):
        make.organ_ids(src.replace('7: "pancreas"', '7: "duodenum"'))
    with pytest.raises(ValueError, match="no literal `class_map"):
        make.organ_ids("x = 1\n")


def test_make_demo_data_rejects_a_wrong_source(tmp_path):
    make = load_bundle_script(BUNDLE, "make_demo_data")
    with pytest.raises(ValueError, match="TotalSegmentator 2.18.0 sdist"):
        make.load_source(tmp_path)


def _ts_source() -> Path | None:
    for candidate in (
        os.environ.get("TOTALSEGMENTATOR_SDIST"),
        REPO_ROOT / "downloads" / "ts" / "totalsegmentator-2.18.0.tar.gz",
        REPO_ROOT.parent / "downloads" / "ts_sdist" / "totalsegmentator-2.18.0.tar.gz",
    ):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.mark.slow
def test_make_demo_data_reproduces_the_shipped_files():
    source = _ts_source()
    if source is None:
        pytest.skip("TotalSegmentator 2.18.0 sdist not found (set TOTALSEGMENTATOR_SDIST)")
    assert load_bundle_script(BUNDLE, "make_demo_data").check(source, DATA, verbose=True)


# ------------------------------------------------------------------------------------------- original data (Learn2Reg)
def _fake_abdct(root: Path, n: int = 7) -> Path:
    """DeepReg's abdct layout: datasets_deepreg_demo-abdct/dataset/{images,labels}/<id>.nii.gz, labels 0-13."""
    data = root / "datasets_deepreg_demo-abdct" / "dataset"
    rng = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    for i in range(1, n + 1):
        img = rng.integers(-1000, 1000, (8, 8, 6)).astype(np.int16)
        lab = np.zeros((8, 8, 6), np.uint8)
        lab[1:3, 1:3, 1:3], lab[4:6, 4:6, 2:4], lab[0, 7, 5] = 6, 1, 11  # liver, spleen, pancreas
        nib.save(nib.Nifti1Image(img, np.diag([2.0, 2.0, 2.0, 1.0])), str(data / "images" / f"{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.diag([2.0, 2.0, 2.0, 1.0])), str(data / "labels" / f"{i}.nii.gz"))
    return root


def test_prepare_learn2reg_abdomen_on_a_fake_copy(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_learn2reg_abdomen")
    src = _fake_abdct(tmp_path / "abdct")
    counts = prep.prepare(str(src), str(tmp_path / "all"))
    assert counts == {"train": 6, "val": 0, "test": 1}  # DeepReg's int(7 * 0.1) = 0, int(7 * 0.15) = 1
    lab = np.asarray(nib.load(str(tmp_path / "all" / "train" / "labels" / "1.nii.gz")).dataobj)
    assert lab.shape == (8, 8, 6, 13) and lab.dtype == np.uint8
    assert lab[..., 5].sum() == 8 and lab[..., 0].sum() == 8 and lab[..., 10].sum() == 1
    demo = prep.prepare(str(src), str(tmp_path / "demo4"), label_set="demo4", ratio_val=0.3)
    assert demo == {"train": 4, "val": 2, "test": 1}
    lab4 = np.asarray(nib.load(str(tmp_path / "demo4" / "val" / "labels" / "5.nii.gz")).dataobj)
    assert lab4.shape == (8, 8, 6, 4) and lab4.reshape(-1, 4).sum(0).tolist() == [8, 8, 0, 1]
    ds = UnpairedDataset(tmp_path / "demo4" / "train", labeled=True)
    assert len(ds) == 2
    with pytest.raises(FileExistsError, match="--overwrite"):
        prep.prepare(str(src), str(tmp_path / "all"))


def test_prepare_learn2reg_abdomen_names_bad_input(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_learn2reg_abdomen")
    src = _fake_abdct(tmp_path / "abdct", n=2)
    bad = src / "datasets_deepreg_demo-abdct" / "dataset" / "labels" / "2.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 6), 20, np.uint8), np.eye(4)), str(bad))
    with pytest.raises(ValueError, match="2.nii.gz: expected label values 0-13"):
        prep.prepare(str(src), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="images/ and labels/"):
        prep.prepare(str(tmp_path), str(tmp_path / "out2"))
    with pytest.raises(ValueError, match="label_set"):
        prep.prepare(str(src), str(tmp_path / "out3"), label_set="13")


# ---------------------------------------------------------------------------------------------------------- results
def test_metadata_eval_metrics_come_from_the_results_file():
    results = json.loads((BUNDLE / "docs" / "results" / "results.json").read_text())
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["eval_metrics"] == results["eval_metrics"]
    assert set(results["test"]["summary"]) == {"before", *WEIGHTS}
    assert (BUNDLE / "docs" / "results" / "held_out_test.png").is_file()
    assert "results/held_out_test.png" in (BUNDLE / "docs" / "README.md").read_text()


def test_evaluate_script_on_the_slab_pair_reproduces_the_generator_baseline():
    ev = load_bundle_script(BUNDLE, "evaluate")
    from monai_reg_ext.bundle import load_bundle
    from monai_reg_ext.evaluation import network

    pairs = ev.load_pairs(DATA / "slab", None)
    res = ev.evaluate_set(pairs, {"combined": network(load_bundle(BUNDLE))}, ev.SLAB_MEAN_ORGANS)
    manifest = json.loads((DATA / "manifest.json").read_text())
    before = res["summary"]["before"]
    assert np.nanmean([before[f"dice_{o}"]["mean"] for o in ORGANS]) == pytest.approx(
        manifest["slab"]["prealignment_mean_dice"], abs=1e-3
    )
    assert pairs[0].fixed_image.shape == (1, 1, 72, 56, 8) and "folding_fraction" not in before
    assert 0.0 <= res["summary"]["combined"]["folding_fraction"]["mean"] < 0.01


# ------------------------------------------------------------------------------------------------------------ smoke
def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    runs, size = tmp_path / "runs", [32, 24, 16]
    # one variant's training (with the config's own batch size), evaluated through another variant's configs
    train_configs = _config_names("weakly_supervised")
    model_path = run_bundle_training(BUNDLE, tiny_data, runs, train_configs, spatial_size=size, batch_size=None)
    eval_configs = [*_config_names("unsupervised"), "evaluate.json"]
    metrics = run_bundle_evaluation(
        BUNDLE, tiny_data, runs, model_path, eval_configs, eval_split="val", spatial_size=size
    )
    assert "val_mean_dice" in metrics
    summary = run_bundle_inference(BUNDLE, tmp_path / "inference", tiny_data / "pairs.json")
    assert "dice_label3_after" in summary  # four organ channels


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    configs, overrides = ["train.json", "unsupervised.json"], {"spatial_size": [32, 24, 16], "batch_size": None}
    run_two_process_training(BUNDLE, configs, tiny_data, tmp_path / "runs", **overrides)  # the config's batch size
