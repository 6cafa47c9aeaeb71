"""The unpaired_ct_abdomen bundle: metadata, the three trainings' configs and weights, the demo data, the loaders, and
train / evaluate / inference through the real configs."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, run, verify_metadata, verify_net_in_out

from monai_reg_ext.data import UnpairedDataset
from monai_reg_ext.data.manifest import sha256_file
from tests.helpers import run_two_process_training

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "unpaired_ct_abdomen"
CONFIGS = BUNDLE / "configs"
DATA = BUNDLE / "data"
SCHEMA = ROOT.parent / "shared" / "reference" / "monai_meta_schema_20240725.json"
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


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"abdomen_{name}", BUNDLE / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config_files(variant: str) -> list[str]:
    files = [str(CONFIGS / "train.json")]
    return files if variant == "combined" else [*files, str(CONFIGS / f"{variant}.json")]


def _parser(variant: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(_config_files(variant))
    parser["bundle_root"] = str(BUNDLE)
    return parser


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training and two validation subjects of the shipped data, plus a pairs file of the example pair."""
    root = tmp_path_factory.mktemp("abdomen")
    for split in ("train", "val"):
        for sub in ("images", "labels"):
            (root / split / sub).mkdir(parents=True)
            for i in range(2):
                name = f"subject_{i:03d}.nii.gz"
                shutil.copy(DATA / split / sub / name, root / split / sub / name)
    example = DATA / "example"
    pairs = [{key: str(example / f"{key}.nii.gz") for key in ("moving", "fixed", "moving_label", "fixed_label")}]
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


# ------------------------------------------------------------------------------------------------ metadata and configs
def test_metadata_is_valid():
    if not SCHEMA.is_file():
        pytest.skip(f"MONAI's metadata schema is not at {SCHEMA} (it cannot be downloaded here)")
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_network_in_out():
    verify_net_in_out(
        net_id="backbone_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json")
    )


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
    from monai_reg_ext.bundle import load_bundle

    state = torch.load(BUNDLE / WEIGHTS[variant], weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_bundle(BUNDLE, weights=BUNDLE / WEIGHTS[variant])
    assert model.spatial_size == (72, 56, 40)


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
    slab = {k: _load(DATA / "slab" / f"{k}.nii.gz")[0] for k in ("moving", "fixed", "moving_label", "fixed_label")}
    assert slab["moving"].shape == slab["fixed"].shape == (72, 56, 8)
    assert slab["fixed_label"].shape == (72, 56, 8, 4)
    # liver, spleen and stomach are present in both real patients' slabs
    assert np.all(slab["fixed_label"][..., :3].reshape(-1, 3).sum(0) > 500)
    assert np.all(slab["moving_label"][..., :3].reshape(-1, 3).sum(0) > 500)


def test_organ_ids_are_read_from_totalsegmentator_class_map():
    make = _script("make_demo_data")
    src = 'class_map = {\n  "total": {1: "spleen", 5: "liver", 6: "stomach", 7: "pancreas"},\n  "other": {}}\n'
    assert make.organ_ids(src) == {"liver": 5, "spleen": 1, "stomach": 6, "pancreas": 7}
    with pytest.raises(ValueError, match="has no \\['pancreas'\\]"):
        make.organ_ids(src.replace('7: "pancreas"', '7: "duodenum"'))
    with pytest.raises(ValueError, match="no literal `class_map"):
        make.organ_ids("x = 1\n")


def test_make_demo_data_rejects_a_wrong_source(tmp_path):
    make = _script("make_demo_data")
    with pytest.raises(ValueError, match="TotalSegmentator 2.18.0 sdist"):
        make.load_source(tmp_path)


def _ts_source() -> Path | None:
    for candidate in (
        os.environ.get("TOTALSEGMENTATOR_SDIST"),
        ROOT / "downloads" / "ts" / "totalsegmentator-2.18.0.tar.gz",
        ROOT.parent / "downloads" / "ts_sdist" / "totalsegmentator-2.18.0.tar.gz",
    ):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.mark.slow
def test_make_demo_data_reproduces_the_shipped_files():
    source = _ts_source()
    if source is None:
        pytest.skip("TotalSegmentator 2.18.0 sdist not found (set TOTALSEGMENTATOR_SDIST)")
    assert _script("make_demo_data").check(source, DATA, verbose=True)


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
    prep = _script("prepare_learn2reg_abdomen")
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
    prep = _script("prepare_learn2reg_abdomen")
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
    ev = _script("evaluate")
    net = ev.build_network(BUNDLE, BUNDLE / "models" / "model.pt")
    res, first = ev.evaluate_set(ev.load_pairs(DATA / "slab", None), {"combined": net}, ev.SLAB_MEAN_ORGANS)
    manifest = json.loads((DATA / "manifest.json").read_text())
    before = res["summary"]["before"]
    assert np.nanmean([before[f"dice_{o}"]["mean"] for o in ORGANS]) == pytest.approx(
        manifest["slab"]["prealignment_mean_dice"], abs=1e-3
    )
    ddf, warped = first["combined"]
    assert ddf.shape == (1, 3, 72, 56, 8) and warped.shape == (1, 1, 72, 56, 8)
    assert 0.0 <= res["summary"]["combined"]["folding_fraction"]["mean"] < 0.01


# ------------------------------------------------------------------------------------------------------------ smoke
def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    common = {"bundle_root": str(BUNDLE), "dataset_dir": str(tiny_data), "output_dir": str(tmp_path / "runs")}
    run(
        "training",
        config_file=_config_files("weakly_supervised"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        spatial_size=[32, 24, 16],
        max_epochs=1,
        val_interval=1,
        num_workers=0,
        **common,
    )
    model_path = tmp_path / "runs" / "model.pt"
    assert torch.load(model_path, weights_only=True)
    run(
        "evaluating",
        config_file=[*_config_files("unsupervised"), str(CONFIGS / "evaluate.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        spatial_size=[32, 24, 16],
        eval_split="val",
        ckpt_path=str(model_path),
        **common,
    )
    metrics = (tmp_path / "runs" / "eval" / "metrics.csv").read_text()
    assert "val_mean_dice" in metrics
    out = tmp_path / "inference"
    run(
        "inference",
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
        pairs_file=str(tiny_data / "pairs.json"),
        output_dir=str(out),
        device="$torch.device('cpu')",
    )
    assert (out / "pair_000" / "ddf.nii.gz").is_file()
    summary = (out / "summary.csv").read_text()
    assert "dice_label3_after" in summary  # four organ channels


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    run_two_process_training(
        BUNDLE,
        ["train.json", "unsupervised.json"],
        tiny_data,
        tmp_path / "runs",
        "--spatial_size",
        "[32,24,16]",
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
    )
