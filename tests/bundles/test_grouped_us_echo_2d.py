"""The grouped_us_echo_2d bundle: data, shipped weights, cycle consistency helper, and train / evaluate / inference
through the real configs (2D, real echocardiography cine); metadata and network gates: ``test_bundle_gates.py``."""

from __future__ import annotations

import hashlib
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.helpers import (
    BUNDLES_DIR,
    check_shipped_weights,
    load_bundle_script,
    run_bundle_evaluation,
    run_bundle_inference,
    run_bundle_training,
    write_example_pairs,
)

BUNDLE = BUNDLES_DIR / "grouped_us_echo_2d"
DATA = BUNDLE / "data"


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
    write_example_pairs(DATA / "example", root / "pairs.json", keys=("moving", "fixed"))
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


def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (96, 128))


def test_cycle_helper_known_cases():
    ev = load_bundle_script(BUNDLE, "evaluate")
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
    runs = tmp_path / "runs"
    model_path = run_bundle_training(BUNDLE, tiny_data, runs, batch_size=2)
    metrics = run_bundle_evaluation(BUNDLE, tiny_data, runs, model_path, eval_split="val")
    assert "val_lncc" in metrics and "val_folding_fraction" in metrics


def test_inference_config(tiny_data, tmp_path):
    """inference.json -> monai_reg_ext.cli.predict on a 2D NIfTI pair (the shipped example, frames 96 -> 102)."""
    summary = run_bundle_inference(BUNDLE, tmp_path / "inference", tiny_data / "pairs.json")
    assert "folding_fraction" in summary
