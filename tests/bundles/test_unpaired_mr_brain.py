"""The unpaired_mr_brain bundle: metadata, network I/O, and train / evaluate / inference through the real configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from monai.bundle import run, verify_metadata, verify_net_in_out

from tests.helpers import run_two_process_training

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"
CONFIGS = BUNDLE / "configs"
SCHEMA = ROOT.parent / "shared" / "reference" / "monai_meta_schema_20240725.json"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training and two validation subjects of the shipped data, plus a pairs file of one test pair."""
    root = tmp_path_factory.mktemp("brain")
    for split, n in (("train", 2), ("val", 2)):
        for sub in ("images", "labels"):
            (root / split / sub).mkdir(parents=True)
            for i in range(n):
                name = f"subject_{i:03d}.nii.gz"
                shutil.copy(BUNDLE / "data" / split / sub / name, root / split / sub / name)
    example = BUNDLE / "data" / "example"
    names = {"moving": "moving", "fixed": "fixed", "moving_label": "moving_label", "fixed_label": "fixed_label"}
    pairs = [{key: str(example / f"{name}.nii.gz") for key, name in names.items()}]
    (root / "pairs.json").write_text(json.dumps(pairs))
    return root


def test_metadata_is_valid():
    if not SCHEMA.is_file():
        pytest.skip(f"MONAI's metadata schema is not at {SCHEMA} (it cannot be downloaded here)")
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_network_in_out():
    verify_net_in_out(
        net_id="backbone_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json")
    )


def test_shipped_weights_load_safely():
    state = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    from monai_reg_ext.bundle import load_bundle

    model = load_bundle(BUNDLE)
    assert model.spatial_size == (64, 80, 64)


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    common = {"bundle_root": str(BUNDLE), "dataset_dir": str(tiny_data), "output_dir": str(tmp_path / "runs")}
    run(
        "training",
        config_file=str(CONFIGS / "train.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        spatial_size=[32, 40, 32],
        max_epochs=1,
        val_interval=1,
        num_workers=0,
        batch_size=1,
        **common,
    )
    model_path = tmp_path / "runs" / "model.pt"
    assert model_path.is_file()
    assert torch.load(model_path, weights_only=True)
    run(
        "evaluating",
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        spatial_size=[32, 40, 32],
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
    assert (out / "pair_000" / "ddf.nii.gz").is_file() and (out / "summary.csv").is_file()
    summary = (out / "summary.csv").read_text()
    assert "dice_label0_after" in summary


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    run_two_process_training(
        BUNDLE,
        ["train.json"],
        tiny_data,
        tmp_path / "runs",
        "--spatial_size",
        "[32,40,32]",
        "--max_epochs",
        "2",
        "--val_interval",
        "1",
        "--batch_size",
        "1",
    )
