"""The unpaired_mr_brain bundle: shipped weights, and train / evaluate / inference through the real configs (metadata
and network gates: ``test_bundle_gates.py``)."""

from __future__ import annotations

import pytest

from tests.helpers import (
    BUNDLES_DIR,
    check_shipped_weights,
    run_train_evaluate_inference,
    run_two_process_training,
    tiny_dataset_fixture,
)

BUNDLE = BUNDLES_DIR / "unpaired_mr_brain"


#: two training and two validation subjects of the shipped data, plus a pairs file of one test pair
tiny_data = tiny_dataset_fixture(BUNDLE)


def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (64, 80, 64))


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    run_train_evaluate_inference(BUNDLE, tiny_data, tmp_path, spatial_size=[32, 40, 32])


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    run_two_process_training(BUNDLE, ["train.json"], tiny_data, tmp_path / "runs", spatial_size=[32, 40, 32])


def test_robust_overlay_trains_from_the_shipped_weights(tiny_data, tmp_path):
    """``configs/train_robust.json`` (the fine-tuning that made the shipped weights) runs on top of ``train.json``:
    its augmentation chain instantiates and one epoch trains from ``models/model.pt``."""
    import torch

    from tests.helpers import run_bundle_training

    model_path = run_bundle_training(
        BUNDLE,
        tiny_data,
        tmp_path / "robust",
        config_files=("train.json", "train_robust.json"),
        spatial_size=[32, 40, 32],
    )
    trained = torch.load(model_path, weights_only=True)
    shipped = torch.load(BUNDLE / "models" / "model.pt", weights_only=True)
    assert trained.keys() == shipped.keys()
    assert any(not torch.equal(trained[k], shipped[k]) for k in shipped)  # it trained from there
