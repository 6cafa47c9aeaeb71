"""The universal_3d bundle: synthetic-only training data, train / evaluate / inference smoke through its configs."""

from __future__ import annotations

import torch

from tests.helpers import (
    BUNDLES_DIR,
    load_bundle_script,
    parse_bundle_config,
    run_bundle_evaluation,
    run_bundle_inference,
    run_bundle_training,
)

BUNDLE = BUNDLES_DIR / "universal_3d"
TINY = {"spatial_size": [16, 16, 16], "train_size": [16, 16, 16], "epoch_length": 2, "num_val_pairs": 1}


def _threads() -> dict:
    """Keep this process's torch thread count (the configs set one thread for the background CPU training)."""
    return {"num_threads": torch.get_num_threads()}


def test_training_data_is_synthetic_one_hot_and_reproducible():
    parser = parse_bundle_config(BUNDLE, overrides={**TINY, "num_val_pairs": 2})
    dataset = parser.get_parsed_content("train#dataset")
    assert len(dataset) == 2 and all(item == {} for item in dataset.data)  # no files: every pair is generated
    item = dataset[0]
    assert item["moving_image"].shape == item["fixed_image"].shape == (1, 16, 16, 16)
    assert item["moving_label"].shape == (12, 16, 16, 16) and item["ddf"].shape == (3, 16, 16, 16)
    assert torch.all(item["fixed_label"].sum(0) == 1)  # one-hot
    assert float(item["moving_image"].min()) >= 0 and float(item["moving_image"].max()) <= 1
    first = parser.get_parsed_content("validate#data")
    again = parse_bundle_config(BUNDLE, overrides={**TINY, "num_val_pairs": 2}).get_parsed_content("validate#data")
    assert [p["pair_id"] for p in first] == ["synthetic_100000", "synthetic_100001"]
    for a, b in zip(first, again):
        assert torch.equal(a["fixed_image"], b["fixed_image"]) and torch.equal(a["moving_label"], b["moving_label"])


def test_train_evaluate_and_infer_through_the_configs(tmp_path):
    runs = tmp_path / "runs"
    model = run_bundle_training(BUNDLE, BUNDLE / "data", runs, **TINY, **_threads())
    assert (runs / "checkpoint_epoch=1.pt").is_file()
    metrics = run_bundle_evaluation(
        BUNDLE, BUNDLE / "data", runs, model, spatial_size=[16, 16, 16], num_test_pairs=2, **_threads()
    )
    assert "val_mean_dice" in metrics and "val_sd_log_jacobian" in metrics
    maker = load_bundle_script(BUNDLE, "make_example")
    pairs = maker.write_pair(tmp_path / "pair", seed=1, spatial_size=(24, 20, 16))
    summary = run_bundle_inference(BUNDLE, tmp_path / "inference", pairs)  # the shipped weights, 64^3 grid
    assert "dice_label0_after" in summary and "dice_label3_after" in summary
