"""monai_reg_ext.evaluation.scoring: each metric against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from monai_reg_ext.evaluation import (
    MethodOutput,
    Pair,
    PairSpec,
    ddf_error,
    default_metrics,
    dice,
    dice_argmax,
    displacement,
    folding,
    identity,
    image_similarity,
    load_pair,
    score_pair,
    sdlogj,
    tre,
)


@pytest.fixture
def pair(slab_pair) -> Pair:
    root, item = slab_pair
    return load_pair(PairSpec.from_entry(item, root), binarise=True)


def _shift(pair: Pair, voxels: float) -> MethodOutput:
    ddf = torch.zeros(1, 3, *pair.spatial_shape, dtype=torch.float64)
    ddf[:, 0] = voxels
    return MethodOutput(ddf, 0.1)


def test_identity_scores_the_unregistered_labels(pair):
    scores = score_pair(pair, identity()(pair), default_metrics())
    assert scores["dice"] == pytest.approx(2 * 2 / 8)  # 4-voxel slabs overlapping on 2 of 4 rows
    assert scores["tre_mm"] == pytest.approx(2 * 1.5) and scores["tre_max_mm"] == pytest.approx(3.0)
    assert scores["n_landmarks"] == 2 and scores["folding_fraction"] == 0.0 and scores["sd_log_jacobian"] == 0.0


@pytest.mark.parametrize("voxels", [0.0, 0.5, 1.0, 2.0, 3.0])
def test_known_translation_gives_the_analytic_tre_and_error(pair, voxels):
    out = _shift(pair, voxels)
    scores = score_pair(pair, out, [tre(), ddf_error("label"), displacement("max", mm=True, key="d")])
    assert scores["tre_mm"] == pytest.approx(abs(2.0 - voxels) * 1.5, abs=1e-9)  # landmarks 2 voxels apart on axis 0
    assert scores["error_mm"] == pytest.approx(abs(2.0 - voxels) * 1.5, abs=1e-9)
    assert scores["d"] == pytest.approx(voxels * 1.5)


def test_true_translation_aligns_the_labels(pair):
    scores = score_pair(pair, _shift(pair, 2.0), [dice(), dice(mode="nearest", prefix="dn"), folding(percent=True)])
    assert scores["dice"] == pytest.approx(1.0) and scores["dn"] == pytest.approx(1.0)
    assert scores["folding_pct"] == 0.0


def test_dice_names_and_mask(pair):
    pair.masks["half"] = torch.zeros(pair.spatial_shape, dtype=torch.bool)
    pair.masks["half"][:6] = True  # fixed rows 3-5 and moving rows 5 inside: overlap 1 of 3 + 1 rows
    scores = dice(["gland"], mask="half", suffix="_in_half")(pair, identity()(pair))
    assert scores == {"dice_gland_in_half": pytest.approx(2 * 1 / (3 + 1))}
    with pytest.raises(KeyError, match="no mask 'nope'"):
        dice(mask="nope")(pair, identity()(pair))


def test_dice_argmax_of_one_hot_labels(pair):
    lab = pair.fixed_label
    pair.moving_label = torch.cat([lab, 1 - lab], 1)
    pair.fixed_label = torch.cat([lab, 1 - lab], 1)
    assert dice_argmax(["a", "b"])(pair, identity()(pair)) == {"dice_a": 1.0, "dice_b": 1.0}


def test_folding_and_sdlogj_of_a_folding_field(pair):
    ddf = torch.zeros(1, 3, *pair.spatial_shape)
    ddf[0, 0, 6:] = -3.0  # a step of -3 voxels: the Jacobian along axis 0 is negative at the step
    out = MethodOutput(ddf, 0.0)
    scores = score_pair(pair, out, [folding(), sdlogj(key="s"), folding("label", percent=True)])
    assert 0.0 < scores["folding_fraction"] < 0.5 and scores["s"] > 1.0 and math.isfinite(scores["folding_pct"])


def test_image_similarity_uses_the_method_warped_image(pair):
    out = identity()(pair)
    assert image_similarity("ssd")(pair, out)["ssd"] == pytest.approx(4 * 6 * 4 / (12 * 10 * 8))
    lncc = image_similarity("lncc", key="l", kernel_size=3)
    assert lncc(pair, _shift(pair, 2.0))["l"] > lncc(pair, out)["l"]
    own = MethodOutput(torch.zeros(1, 3, *pair.spatial_shape), 0.0, warped_image=pair.fixed_image)
    assert image_similarity("ssd")(pair, own)["ssd"] == 0.0
    assert image_similarity("mi")(pair, own)["mi"] > image_similarity("mi")(pair, out)["mi"]
    with pytest.raises(ValueError, match="kind must be"):
        image_similarity("ncc")


def test_metrics_without_their_inputs_return_nothing(pair):
    pair.moving_landmarks = pair.true_ddf = pair.moving_label = None
    assert score_pair(pair, identity()(pair), [dice(), tre(), ddf_error()]) == {}
