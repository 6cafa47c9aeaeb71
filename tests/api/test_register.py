from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.api import register
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.io import load_ddf
from tests.helpers import make_tiny_bundle


def test_register_outputs_carry_fixed_affine(tiny_bundle, pair_files, tmp_path):
    result = register(
        pair_files["moving"],
        pair_files["fixed"],
        bundle=tiny_bundle,
        moving_label=pair_files["moving_label"],
        fixed_label=pair_files["fixed_label"],
        device="cpu",
    )
    assert result.ddf.shape == (3, 20, 18, 14)
    assert result.ddf.abs().max() > 1e-3  # the random output layer moves things
    paths = result.save(tmp_path / "out")
    for key in ("warped_image", "warped_label", "ddf"):
        img = nib.load(str(paths[key]))
        np.testing.assert_allclose(img.affine, pair_files["fixed_affine"], atol=1e-4)
        assert img.shape[:3] == (20, 18, 14)
    lab = np.asarray(nib.load(str(paths["warped_label"])).dataobj)
    assert lab.shape == (20, 18, 14, 2) and set(np.unique(lab)) <= {0, 1}
    ddf, affine = load_ddf(paths["ddf"])
    torch.testing.assert_close(ddf, result.ddf.float(), atol=1e-4, rtol=1e-4)
    for k in ("dice_label0_before", "dice_label0_after", "folding_fraction", "sd_log_jacobian"):
        assert k in result.metrics
    assert (tmp_path / "out" / "registration.png").stat().st_size > 1000


def test_save_refuses_to_overwrite(tiny_bundle, pair_files, tmp_path):
    result = register(pair_files["moving"], pair_files["fixed"], bundle=tiny_bundle, device="cpu")
    result.save(tmp_path / "out", figure=False)
    before = (tmp_path / "out" / "ddf.nii.gz").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="ddf.nii.gz"):
        result.save(tmp_path / "out", figure=False)
    assert (tmp_path / "out" / "ddf.nii.gz").stat().st_mtime_ns == before
    result.save(tmp_path / "out", figure=False, overwrite=True)


def test_identity_network_on_same_grid_returns_moving(pair_files):
    class Zero(torch.nn.Module):
        def forward(self, moving, fixed):
            return {"ddf": torch.zeros(moving.shape[0], 3, *fixed.shape[2:])}

    result = register(pair_files["fixed"], pair_files["fixed"], network=Zero(), spatial_size=(8, 8, 8))
    fixed = np.asarray(nib.load(str(pair_files["fixed"])).dataobj)
    np.testing.assert_allclose(result.warped_image[0].numpy(), fixed, atol=1e-5)
    assert result.metrics["folding_fraction"] == 0.0


def test_arrays_and_bad_inputs(tiny_bundle, tmp_path):
    model = load_bundle(tiny_bundle)
    img = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    result = register(img, img, bundle=model)
    assert result.ddf.shape == (3, 12, 12, 12)
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        register(tmp_path / "nope.nii.gz", img, bundle=model)
    with pytest.raises(ValueError, match="directory"):
        register(tmp_path, img, bundle=model)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        register(bad, img, bundle=model)
    with pytest.raises(ValueError, match="3-D image"):
        register(img[0], img, bundle=model)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        register(img, img, bundle=model, moving_label=img * 3, fixed_label=img)


def test_bundle_errors(tiny_bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "missing")
    (tiny_bundle / "models" / "model.pt").rename(tiny_bundle / "models" / "other.pt")
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_bundle(tiny_bundle)
    torch.save({"conv.weight": torch.zeros(3)}, tiny_bundle / "models" / "model.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_bundle(tiny_bundle)


def test_2d_nifti_register_save_and_warp(tmp_path):
    """2D NIfTI images carry a 4x4 affine: outputs must still be written (3x3 for a 2D DDF) and warp must read them."""
    from monai_reg_ext.cli import main

    root = make_tiny_bundle(tmp_path / "b2d", spatial_dims=2)
    rng = np.random.default_rng(0)
    aff = np.diag([0.8, 1.2, 1.0, 1.0])
    for name in ("moving", "fixed"):
        nib.save(nib.Nifti1Image(rng.random((20, 18)).astype(np.float32), aff), str(tmp_path / f"{name}.nii.gz"))
    result = register(tmp_path / "moving.nii.gz", tmp_path / "fixed.nii.gz", bundle=root, device="cpu")
    assert result.fixed_affine.shape == (3, 3)
    paths = result.save(tmp_path / "out")
    assert nib.load(str(paths["warped_image"])).shape[:2] == (20, 18)
    main(
        [
            "warp",
            "--image",
            str(tmp_path / "moving.nii.gz"),
            "--ddf",
            str(paths["ddf"]),
            "--output",
            str(tmp_path / "w.nii.gz"),
        ]
    )
    warped = np.squeeze(np.asarray(nib.load(str(tmp_path / "w.nii.gz")).dataobj))
    np.testing.assert_allclose(warped, result.warped_image[0].numpy(), atol=1e-4)


def test_landmark_tre_across_different_grids(tiny_bundle, pair_files, tmp_path):
    """Moving and fixed on different grids (shapes, spacings, origins): landmarks at the same physical points give
    TRE 0 before registration, and a zero DDF keeps it 0; a known 3 mm offset gives 3 mm."""
    a_fix, a_mov = pair_files["fixed_affine"], pair_files["moving_affine"]
    fixed_vox = np.array([[5.0, 6.0, 4.0], [10.0, 9.0, 7.0], [14.0, 4.0, 9.0]])
    world = (a_fix @ np.c_[fixed_vox, np.ones(3)].T).T
    moving_vox = (np.linalg.inv(a_mov) @ world.T).T[:, :3]
    offset = world.copy()
    offset[:, 0] += 3.0  # 3 mm along the first world axis
    moving_off = (np.linalg.inv(a_mov) @ offset.T).T[:, :3]
    for name, pts in (("fixed", fixed_vox), ("moving", moving_vox), ("moving_off", moving_off)):
        np.savetxt(tmp_path / f"{name}.csv", pts, delimiter=",")
    model = load_bundle(tiny_bundle, device="cpu")
    with torch.no_grad():
        for p in model.network.parameters():
            p.zero_()  # the DDF is exactly 0
    common = dict(bundle=model, fixed_landmarks=tmp_path / "fixed.csv", device="cpu")
    same = register(pair_files["moving"], pair_files["fixed"], moving_landmarks=tmp_path / "moving.csv", **common)
    assert same.metrics["tre_mm_before"] == pytest.approx(0.0, abs=1e-6)
    assert same.metrics["tre_mm_after"] == pytest.approx(0.0, abs=1e-6)
    off = register(pair_files["moving"], pair_files["fixed"], moving_landmarks=tmp_path / "moving_off.csv", **common)
    assert off.metrics["tre_mm_before"] == pytest.approx(3.0, abs=1e-6)
    assert off.metrics["tre_mm_after"] == pytest.approx(3.0, abs=1e-6)


class _Recorder(torch.nn.Module):
    """A zero-DDF network that keeps the images it was given."""

    def forward(self, moving, fixed):
        self.inputs = (moving.clone(), fixed.clone())
        return {"ddf": torch.zeros(moving.shape[0], moving.ndim - 2, *fixed.shape[2:])}


@pytest.mark.parametrize("anti_aliasing", [False, True])
def test_register_feeds_the_network_what_the_training_preprocessing_gives(tmp_path, anti_aliasing):
    """Same grid for moving and fixed: the network's inputs in ``register`` equal the training preprocessing's.

    Both resize with ``align_corners=True`` (the training resize used MONAI's default, ``False``, before: a stretch of
    up to half a network voxel at the borders between training and inference).
    """
    from monai_reg_ext.transforms import registration_preprocessing

    rng = np.random.default_rng(3)
    paths = {}
    for name in ("moving", "fixed"):
        arr = (rng.random((30, 26, 22)) * 200 + 50).astype(np.float32)  # speckle-like noise: aliasing matters
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr, np.diag([1.2, 1.0, 1.5, 1.0])), paths[name])
    rec = _Recorder()
    register(paths["moving"], paths["fixed"], network=rec, spatial_size=(10, 9, 8), anti_aliasing=anti_aliasing)
    train = registration_preprocessing((10, 9, 8), anti_aliasing=anti_aliasing)(
        {"moving_image": str(paths["moving"]), "fixed_image": str(paths["fixed"])}
    )
    for got, key in zip(rec.inputs, ("moving_image", "fixed_image")):
        got = got[0].numpy()
        if not anti_aliasing:  # register min-max scales before the plain resize: the same up to that scaling
            got = (got - got.min()) / (got.max() - got.min())
        np.testing.assert_allclose(got, train[key].numpy(), atol=1e-5, err_msg=key)


def test_bundle_anti_aliasing_setting_is_read_and_checked(tmp_path):
    import json

    root = make_tiny_bundle(tmp_path / "b")
    assert load_bundle(root).anti_aliasing is False
    cfg_path = root / "configs" / "inference.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["anti_aliasing"] = True
    cfg_path.write_text(json.dumps(cfg))
    assert load_bundle(root).anti_aliasing is True
    cfg["anti_aliasing"] = "yes"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="anti_aliasing"):
        load_bundle(root)
