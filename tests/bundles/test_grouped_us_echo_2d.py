"""The grouped_us_echo_2d bundle: data, metadata, network I/O, cycle consistency helper, and train / evaluate /
inference through the real configs (2D, real echocardiography cine)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run, verify_metadata, verify_net_in_out

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "grouped_us_echo_2d"
CONFIGS = BUNDLE / "configs"
DATA = BUNDLE / "data"
SCHEMA = ROOT.parent / "shared" / "reference" / "monai_meta_schema_20240725.json"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"echo_{name}", BUNDLE / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training groups of 4 frames and one validation group of 3 frames of the shipped data, and a pairs file."""
    root = tmp_path_factory.mktemp("echo")
    for split, n_groups, n_frames in (("train", 2, 4), ("val", 1, 3)):
        groups = sorted((DATA / split / "images").iterdir())[:n_groups]
        for group in groups:
            for frame in sorted(group.glob("*.nii.gz"))[:n_frames]:
                dst = root / split / "images" / group.name / frame.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(frame, dst)
    pairs = [{"moving": str(DATA / "example" / "moving.nii.gz"), "fixed": str(DATA / "example" / "fixed.nii.gz")}]
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def test_data_layout_shapes_and_manifest():
    manifest = json.loads((DATA / "manifest.json").read_text())
    assert manifest["source"]["file"] == "color3d_jpeg_baseline.dcm"
    spacing = manifest["grid"]["spacing_mm"]
    counts = {}
    for split in ("train", "val", "test"):
        groups = sorted(p for p in (DATA / split / "images").iterdir() if p.is_dir())
        counts[split] = len(groups)
        for group in groups:
            frames = sorted(group.glob("*.nii.gz"))
            assert len(frames) == manifest["parameters"]["group_size"]
            img = nib.load(frames[0])
            assert img.shape == (96, 128) and img.get_data_dtype() == np.uint8
            np.testing.assert_allclose(img.header.get_zooms()[:2], spacing, rtol=1e-5)
    assert counts == {"train": 6, "val": 2, "test": 2}
    # groups are disjoint time ranges: no frame appears in two splits
    names = [f.name for f in DATA.glob("*/images/*/*.nii.gz")]
    assert len(names) == len(set(names)) == 120
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((DATA / rel).read_bytes()).hexdigest() == digest, rel


def test_metadata_is_valid():
    if not SCHEMA.is_file():
        pytest.skip(f"MONAI's metadata schema is not at {SCHEMA} (it cannot be downloaded here)")
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_network_in_out():
    verify_net_in_out(
        net_id="backbone_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
    )


def test_shipped_weights_load_safely():
    state = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    from monai_reg_ext.bundle import load_bundle

    model = load_bundle(BUNDLE)
    assert model.spatial_size == (96, 128)


def test_cycle_helper_known_cases():
    ev = _load_script("evaluate_echo")
    zero = torch.zeros(1, 2, 16, 20)
    assert float(ev.cycle_residual([zero, zero, zero])) == 0.0
    # a constant shift and its opposite cancel exactly; shifts along different axes add up
    shift = torch.zeros(1, 2, 16, 20)
    shift[:, 0] = 1.5
    assert float(ev.cycle_residual([shift, -shift])) == pytest.approx(0.0, abs=1e-6)
    other = torch.zeros(1, 2, 16, 20)
    other[:, 1] = -2.0
    composed = ev.compose_cycle([shift, other])
    torch.testing.assert_close(composed, shift + other)
    # order matters for non-constant fields: compose_cycle follows warp_image's pull semantics
    from monai_reg_ext import warp_image

    ramp = torch.zeros(1, 2, 16, 20)
    ramp[:, 1] = torch.linspace(0, 2, 20)
    img = torch.rand(1, 1, 16, 20, generator=torch.Generator().manual_seed(0))
    chained = warp_image(warp_image(img, ramp), shift)
    mask = torch.zeros(16, 20, dtype=torch.bool)
    mask[3:-3, 3:-3] = True
    once = warp_image(img, ev.compose_cycle([ramp, shift]))
    assert float((once - chained)[..., mask].abs().max()) < 0.05


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    common = {"bundle_root": str(BUNDLE), "dataset_dir": str(tiny_data), "output_dir": str(tmp_path / "runs")}
    run(
        "training",
        config_file=str(CONFIGS / "train.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        max_epochs=1,
        val_interval=1,
        num_workers=0,
        batch_size=2,
        **common,
    )
    model_path = tmp_path / "runs" / "model.pt"
    assert model_path.is_file()
    assert torch.load(model_path, weights_only=True)
    run(
        "evaluating",
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        eval_split="val",
        ckpt_path=str(model_path),
        **common,
    )
    metrics = (tmp_path / "runs" / "eval" / "metrics.csv").read_text()
    assert "val_lncc" in metrics and "val_folding_fraction" in metrics


def test_inference_config(tiny_data, tmp_path):
    """inference.json -> monai_reg_ext.cli.predict on a 2D NIfTI pair (the shipped example, frames 96 -> 102)."""
    out = tmp_path / "inference"
    run(
        "inference",
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
        pairs_file=str(tiny_data / "pairs.json"),
        output_dir=str(out),
        device="$torch.device('cpu')",
    )
    assert (out / "pair_000" / "ddf.nii.gz").is_file() and (out / "summary.csv").is_file()
    assert "folding_fraction" in (out / "summary.csv").read_text()
