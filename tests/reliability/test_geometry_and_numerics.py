"""Inputs that are valid but unusual: resampled with a warning (never ignored), or handled without NaN."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, ResampleToMatch

from monai_reg_ext import cli
from monai_reg_ext.api import register
from monai_reg_ext.io import load_image, save_ddf
from monai_reg_ext.losses import (
    BendingEnergyLoss,
    GlobalMutualInformationLoss,
    GlobalNCCLoss,
    GradientNormLoss,
    LocalNormalizedCrossCorrelationLoss,
    MultiScaleLabelLoss,
    SumSquaredDifferenceLoss,
)
from monai_reg_ext.metrics import folding_fraction, label_dice, sd_log_jacobian
from monai_reg_ext.spatial import fixed_to_moving_matrix, warp_image, warp_to_grid
from tests.reliability.conftest import SHAPE, blob, write

GEOMETRIES = {
    "spacing": (np.diag([1.5, 1.0, 0.8, 1.0]), "spacing"),
    "orientation": (np.array([[-1.0, 0, 0, 9], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "orientation"),
}


@pytest.mark.parametrize("kind", sorted(GEOMETRIES))
def test_grid_mismatch_warns_and_matches_manual_resampling(kind, files, tmp_path, caplog):
    affine, word = GEOMETRIES[kind]
    moving = write(tmp_path / "moving.nii.gz", blob(center=(3, 4, 6)), affine)
    with caplog.at_level(logging.WARNING, logger="monai_reg_ext"):
        result = register(moving, files["fixed"], bundle=files["bundle"], device="cpu")
    assert any(word in r.getMessage() and "resampled" in r.getMessage() for r in caplog.records), caplog.text
    loader = LoadImage(image_only=True, ensure_channel_first=True)
    fixed = loader(str(files["fixed"]))
    by_hand = ResampleToMatch(mode="bilinear", padding_mode="border")(loader(str(moving)), img_dst=fixed)
    ref = register(MetaTensor(by_hand.as_tensor(), affine=fixed.affine), files["fixed"], bundle=files["bundle"])
    torch.testing.assert_close(result.ddf, ref.ddf)
    # the warped image samples the moving image once, on its own grid (no resample-then-warp double interpolation)
    original = loader(str(moving))
    m = fixed_to_moving_matrix(original.affine, fixed.affine, 3)
    once = warp_to_grid(original.as_tensor()[None], result.ddf[None], m)[0]
    torch.testing.assert_close(result.warped_image.as_tensor(), once, atol=1e-5, rtol=1e-5)
    twice = ref.warped_image.as_tensor()
    assert float((once - twice).abs().mean()) < 0.05 * float(twice.abs().max())
    # not ignored: treating the moving array as if it were on the fixed grid gives another result
    raw = register(
        MetaTensor(loader(str(moving)).as_tensor(), affine=fixed.affine), files["fixed"], bundle=files["bundle"]
    )
    assert not torch.allclose(raw.warped_image.as_tensor(), result.warped_image.as_tensor(), atol=1e-3)


def test_warp_ddf_on_other_grid_warns_and_resamples(files, tmp_path, caplog):
    ddf = torch.zeros(3, *SHAPE)
    ddf[0] = 0.7
    ddf_path = save_ddf(tmp_path / "ddf.nii.gz", ddf, np.eye(4))
    image = write(tmp_path / "image.nii.gz", blob(shape=(12, 10, 8)), np.diag([0.8, 1.0, 1.25, 1.0]))
    with caplog.at_level(logging.WARNING, logger="monai_reg_ext"):
        cli.warp(str(image), str(ddf_path), str(tmp_path / "out.nii.gz"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("resampled onto the DDF" in m and "shape" in m for m in messages), caplog.text
    loader = LoadImage(image_only=True, ensure_channel_first=True)
    ref_grid = MetaTensor(torch.zeros(1, *SHAPE), affine=torch.eye(4, dtype=torch.float64))
    by_hand = ResampleToMatch(mode="bilinear", padding_mode="border")(loader(str(image)), img_dst=ref_grid)
    expected = warp_image(by_hand.as_tensor()[None], ddf[None])[0]
    out, affine = load_image(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(affine.numpy(), np.eye(4), atol=1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_constant_images_register_without_nan(files):
    const = np.full(SHAPE, 7.0, np.float32)
    result = register(const, const, bundle=files["bundle"], device="cpu")
    assert torch.isfinite(result.ddf).all() and torch.isfinite(result.warped_image).all()
    assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics


IMAGE_LOSSES = {
    "lncc": lambda: LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7),
    "gmi": GlobalMutualInformationLoss,
    "gncc": GlobalNCCLoss,
    "ssd": SumSquaredDifferenceLoss,
}


@pytest.mark.parametrize("name", sorted(IMAGE_LOSSES))
@pytest.mark.parametrize(
    "inputs",
    ["constant_vs_constant", "constant_vs_random", "large_intensities", "tiny_image"],
)
def test_image_losses_finite_with_finite_gradient(name, inputs):
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(1, 1, 8, 8, 8, generator=g)
    pred, target = {
        "constant_vs_constant": (torch.full_like(rand, 0.5), torch.full_like(rand, 0.5)),
        "constant_vs_random": (torch.zeros_like(rand), rand),
        "large_intensities": (rand * 1e5 + 1e5, rand.roll(1, 2) * 1e5 + 1e5),
        "tiny_image": (rand[..., :2, :2, :2], rand[..., :2, :2, :2].flip(2)),
    }[inputs]
    pred = pred.clone().requires_grad_(True)
    value = IMAGE_LOSSES[name]()(pred, target)
    value.backward()
    assert torch.isfinite(value), float(value)
    assert torch.isfinite(pred.grad).all()


def test_empty_and_all_background_labels(files, caplog):
    empty = np.zeros(SHAPE, np.float32)
    full = (blob() > 0.5).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="monai_reg_ext"):
        both = register(blob(), blob(), bundle=files["bundle"], moving_label=empty, fixed_label=empty)
    assert "label is empty" in caplog.text
    assert np.isnan(both.metrics["dice_label0_after"])  # undefined, as MONAI's DiceMetric(ignore_empty=True)
    one = register(blob(), blob(), bundle=files["bundle"], moving_label=full, fixed_label=empty)
    assert one.metrics["dice_label0_after"] == 0.0
    z, f = torch.zeros(1, 1, *SHAPE), torch.as_tensor(full)[None, None]
    for loss_type in ("dice", "jaccard", "cross-entropy"):
        for a, b in ((z, z), (z, f), (f, z)):
            pred = a.clone().requires_grad_(True)
            value = MultiScaleLabelLoss(loss_type, scales=[0, 1, 2])(pred, b)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(pred.grad).all(), (loss_type, float(value))
    assert float(MultiScaleLabelLoss("dice", scales=[0, 1])(z, z)) == 0.0
    assert label_dice(z, f).item() == 0.0


def test_deformation_terms_finite_for_extreme_fields():
    for ddf in (torch.zeros(1, 3, 4, 4, 4), torch.randn(1, 3, 4, 4, 4) * 100, torch.zeros(1, 3, 3, 3, 3)):
        for loss in (BendingEnergyLoss(), GradientNormLoss()):
            assert torch.isfinite(loss(ddf))
        assert torch.isfinite(folding_fraction(ddf)).all() and torch.isfinite(sd_log_jacobian(ddf)).all()


def test_large_intensities_register(files):
    img = blob() * 1e6 + 3e6
    result = register(img, np.roll(img, 1, 0), bundle=files["bundle"], device="cpu")
    assert torch.isfinite(result.ddf).all() and torch.isfinite(result.warped_image).all()
