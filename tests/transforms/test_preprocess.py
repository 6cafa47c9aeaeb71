"""Preprocessing factory: loading, resize / pad-crop, spacing, orientation, intensity, label checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_reg_ext.transforms import CheckLabeld, ResizeLineard, registration_preprocessing
from tests.data.test_fixtures import blob, write_image


@pytest.fixture()
def files(tmp_path):
    img = blob() * 500 + 100
    return {
        "moving_image": str(write_image(tmp_path / "m", img)),
        "fixed_image": str(write_image(tmp_path / "f", img, fmt="mha")),
        "moving_label": str(write_image(tmp_path / "ml", (img > 300).astype(np.float32))),
    }


def test_resize_and_minmax(files):
    out = registration_preprocessing((8, 8, 8))(files)
    for k in ("moving_image", "fixed_image", "moving_label"):
        assert out[k].shape == (1, 8, 8, 8) and isinstance(out[k], MetaTensor)
    assert float(out["moving_image"].min()) == 0.0 and float(out["moving_image"].max()) == pytest.approx(1.0)
    assert tuple(int(v) for v in out["moving_image"].meta["spatial_shape"]) == (12, 10, 8)


def test_pad_crop_percentile_spacing_orientation(files):
    t = registration_preprocessing(
        (10, 10, 10), spacing=(2.0, 2.0, 2.0), orientation="RAS", resize_mode="pad_crop", intensity="percentile"
    )
    out = t(files)
    assert out["moving_image"].shape == (1, 10, 10, 10)
    assert 0 <= float(out["moving_image"].min()) and float(out["moving_image"].max()) <= 1
    np.testing.assert_allclose(np.abs(np.diag(np.asarray(out["moving_image"].affine))[:3]), [2.0, 2.0, 2.0])


def test_different_moving_fixed_sizes(files):
    out = registration_preprocessing(moving_spatial_size=(6, 6, 6), fixed_spatial_size=(8, 4, 4))(files)
    assert out["moving_image"].shape == (1, 6, 6, 6) and out["moving_label"].shape == (1, 6, 6, 6)
    assert out["fixed_image"].shape == (1, 8, 4, 4)


def test_check_label_in_memory():
    d = {"moving_image": torch.zeros(1, 4, 4), "moving_label": torch.full((1, 4, 4), -0.5)}
    with pytest.raises(ValueError, match=r"moving_label.*\[0, 1\]"):
        CheckLabeld()(d)


def test_bad_options():
    with pytest.raises(ValueError, match="resize_mode"):
        registration_preprocessing(resize_mode="zoom")
    with pytest.raises(ValueError, match="intensity"):
        registration_preprocessing(intensity="zscore")


def test_resize_uses_align_corners_true_as_the_networks_and_register():
    """A ramp 0..12 resized from 13 to 7 voxels keeps both ends: 0, 2, ..., 12 (align_corners=True)."""
    ramp = torch.arange(13, dtype=torch.float32)[:, None, None].expand(13, 4, 4)[None]
    out = ResizeLineard(["fixed_image"], (7, 4, 4))({"fixed_image": MetaTensor(ramp.clone())})["fixed_image"]
    np.testing.assert_allclose(out[0, :, 1, 1].numpy(), np.arange(0, 13, 2, dtype=np.float32), atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_anti_aliasing_suppresses_aliased_noise(dims):
    """Downsampling white noise 4x: the low-pass keeps the mean and cuts the aliased variance several-fold."""
    g = torch.Generator().manual_seed(0)
    noise = torch.rand((1,) + (48,) * dims, generator=g)
    label = (noise > 0.5).float()
    sample = {"fixed_image": MetaTensor(noise), "fixed_label": MetaTensor(label)}
    plain = ResizeLineard(["fixed_image", "fixed_label"], (12,) * dims)(dict(sample))
    smooth = ResizeLineard(["fixed_image", "fixed_label"], (12,) * dims, anti_aliasing=True)(dict(sample))
    assert smooth["fixed_image"].shape == (1,) + (12,) * dims
    assert float(smooth["fixed_image"].std()) < 0.5 * float(plain["fixed_image"].std())
    assert float(smooth["fixed_image"].mean()) == pytest.approx(float(noise.mean()), abs=0.02)
    lab = smooth["fixed_label"]
    assert 0.0 <= float(lab.min()) and float(lab.max()) <= 1.0


def test_anti_aliasing_is_a_no_op_when_the_grid_does_not_shrink():
    img = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    out = ResizeLineard(["fixed_image"], (8, 8, 8), anti_aliasing=True)({"fixed_image": MetaTensor(img)})
    np.testing.assert_array_equal(out["fixed_image"].numpy(), img.numpy())
