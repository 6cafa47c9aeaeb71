"""monai_reg_ext.demo.chest_ct: CT reading, lung masks, vessel keypoints and the breathing motion model."""

from __future__ import annotations

import tarfile

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.demo import chest_ct
from monai_reg_ext.metrics import landmark_tre
from monai_reg_ext.spatial import compose_ddf

SPACING = 4.5


def _phantom(shape=(40, 32, 40)):
    """Body (soft tissue, 40 HU) in air, two box lungs at -850 HU with a vessel (40 HU) in each, axis 2 cranial."""
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[4:-4, 4:-4, :] = 40.0
    lungs = np.zeros(shape, bool)
    lungs[7:18, 8:24, 6:34] = True
    lungs[22:33, 8:24, 6:34] = True
    hu[lungs] = -850.0
    hu[12, 15:17, 8:32] = 40.0  # a vessel running cranio-caudally in the first lung
    return hu, lungs


def test_load_ct_reads_nifti_as_ras(tmp_path):
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.diag([1.5, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 30.0]
    nib.save(nib.Nifti1Image(arr, affine), tmp_path / "ct.nii.gz")
    hu, aff = chest_ct.load_ct(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(hu, arr)
    np.testing.assert_allclose(aff, affine, atol=1e-5)


def test_load_ct_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        chest_ct.load_ct(tmp_path / "missing.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    with pytest.raises(ValueError, match="3-D"):
        chest_ct.load_ct(tmp_path / "v.nii.gz")


def test_resample_identity_and_translation():
    vol = np.random.default_rng(0).normal(size=(10, 12, 14)).astype(np.float32)
    aff = np.eye(4)
    np.testing.assert_allclose(chest_ct.resample(vol, aff, aff, vol.shape, antialias=False), vol, atol=1e-5)
    shifted = aff.copy()
    shifted[0, 3] = 1.0  # destination voxel i is source voxel i + 1
    out = chest_ct.resample(vol, aff, shifted, vol.shape, antialias=False)
    np.testing.assert_allclose(out[:-1], vol[1:], atol=1e-5)
    assert np.all(out[-1] == chest_ct.AIR_HU)


def test_lung_mask_finds_the_two_lungs_with_vessels_filled():
    hu, lungs = _phantom()
    mask = chest_ct.lung_mask(hu)
    assert mask[12, 15, 20]  # the vessel voxel is inside the lung mask
    dice = 2 * (mask & lungs).sum() / (mask.sum() + lungs.sum())
    assert dice > 0.99
    assert not mask[0, 0, 0] and not mask[20, 2, 20]  # outside air, not lungs


def test_lung_mask_error_without_air():
    with pytest.raises(ValueError, match="no air"):
        chest_ct.lung_mask(np.zeros((8, 8, 8), np.float32))


def test_vessel_keypoints_at_a_branching_inside_the_lung():
    shape = (48, 48, 48)
    hu = np.full(shape, -850.0, dtype=np.float32)
    lungs = np.ones(shape, bool)
    for k in range(8, 24):  # trunk along axis 2 up to the bifurcation at (24, 24, 24)
        hu[23:26, 23:26, k] = 40.0
    for t in range(0, 14):  # two branches
        hu[23 + t : 26 + t, 23:26, 24 + t] = 40.0
        hu[23 - t : 26 - t, 23:26, 24 + t] = 40.0
    pts, scores = chest_ct.vessel_keypoints(hu, lungs, spacing=2.0, max_points=5, margin_mm=0.0)
    assert len(pts) >= 1 and np.all(np.diff(scores) <= 0)
    assert np.all(hu[tuple(np.round(pts).astype(int).T)] > -500)  # on the vessel
    dist = np.linalg.norm(pts - np.array([24.0, 24.0, 24.0]), axis=1)
    assert dist.min() < 6.0  # one of the strongest points is at the bifurcation (or a branch end)


def test_breathing_motion_known_displacements():
    hu, lungs = _phantom()
    body = hu > -400
    body |= lungs
    params = chest_ct.BreathingParams(
        diaphragm_right=18.0, diaphragm_left=18.0, anteroposterior=4.5, lateral=0.0, apex_power=1.0, wall_fraction=0.0
    )
    m, inner = chest_ct.breathing_motion(lungs, body, SPACING, params)
    assert m.shape == (3, *lungs.shape)
    # lung base (z = 6): full diaphragm amplitude cranially (18 mm = 4 voxels); apex (z = 33): none
    assert m[2, 12, 12, 6] == pytest.approx(4.0, abs=0.05)
    assert abs(m[2, 12, 12, 33]) < 0.05
    # halfway up, linear decay (apex_power 1)
    assert m[2, 12, 12, 20] == pytest.approx(4.0 * (33 - 20) / 27, abs=0.05)
    # sliding: the chest wall beside the lung base does not move cranio-caudally (wall_fraction 0)
    assert abs(m[2, 4, 12, 8]) < 0.05
    # organs below the lung base move with the diaphragm
    assert m[2, 12, 12, 2] == pytest.approx(4.0, abs=0.05)
    # anterior wall (body's most anterior voxel, y = 27) moves posteriorly by 4.5 mm x (0.5 + 0.5 w)
    assert m[1, 12, 27, 6] == pytest.approx(-1.0, abs=0.02)
    assert m[1, 12, 4, 6] == pytest.approx(0.0, abs=0.02)  # the back stays
    assert inner[12, 12, 20] > 0.99 and inner[5, 12, 20] < 0.5


def test_breathing_motion_errors():
    with pytest.raises(ValueError, match="empty"):
        chest_ct.breathing_motion(np.zeros((8, 8, 8), bool), np.ones((8, 8, 8), bool), 4.5, chest_ct.BreathingParams())
    with pytest.raises(ValueError, match="shapes"):
        chest_ct.breathing_motion(np.ones((8, 8, 8), bool), np.ones((8, 8, 9), bool), 4.5, chest_ct.BreathingParams())


def test_invert_ddf_inverse_composes_to_identity():
    ddf = chest_ct.smooth_random_field((24, 24, 24), 2.0, 5.0, seed=1)
    inv = chest_ct.invert_ddf(ddf, 30)
    res = compose_ddf(first=torch.as_tensor(ddf)[None], second=torch.as_tensor(inv)[None])
    assert float(res.norm(dim=1)[0, 4:-4, 4:-4, 4:-4].max()) < 1e-3
    assert np.linalg.norm(ddf, axis=0).max() == pytest.approx(2.0, rel=1e-6)


def test_expiration_image_density_follows_volume_change():
    hu, lungs = _phantom()
    hu[12, 15:17, 8:32] = -850.0  # uniform lungs
    body = (hu > -400) | lungs
    aff = np.eye(4) * SPACING
    aff[3, 3] = 1.0
    params = chest_ct.BreathingParams(18.0, 18.0, 0.0, 0.0, 1.0, 0.0)
    m, _ = chest_ct.breathing_motion(lungs, body, SPACING, params)
    out = chest_ct.expiration_image(hu, aff, aff, hu.shape, m, lungs)
    jac = out["jacobian"][12, 12, 20]  # uniform compression: 1 - 4 / 27
    assert jac == pytest.approx(1 - 4.0 / 27.0, abs=0.01)
    y = np.array([12.0, 12.0, 20.0]) + m[:, 12, 12, 20]  # where the lung voxel (12, 12, 20) lies on expiration
    exp_hu = chest_ct.sample_field(out["image"][None], y[None])[0, 0]
    assert exp_hu == pytest.approx(150.0 / jac - 1000.0, abs=3.0)  # denser: about -824 HU instead of -850
    assert out["inverse_residual"] < 0.05
    assert out["lungs"].sum() < lungs.sum()  # the lungs shrink


def test_identity_tre_equals_landmark_distance():
    fixed = np.array([[10.0, 10.0, 10.0], [20.0, 15.0, 12.5]])
    ddf = np.zeros((3, 32, 32, 32))
    ddf[2] = 2.0
    moving = fixed + chest_ct.sample_field(ddf, fixed)
    aff = np.diag([SPACING] * 3 + [1.0])
    tre0 = landmark_tre(moving, fixed, torch.zeros(1, 3, 32, 32, 32, dtype=torch.float64), fixed_affine=aff)
    np.testing.assert_allclose(tre0.numpy(), [9.0, 9.0])  # 2 voxels x 4.5 mm
    tre = landmark_tre(moving, fixed, torch.as_tensor(ddf)[None], fixed_affine=aff)
    np.testing.assert_allclose(tre.numpy(), [0.0, 0.0], atol=1e-9)


def test_locate_chest_cts_folders_and_tarball(tmp_path):
    ts = tmp_path / "ts" / "totalsegmentator-2.18.0" / "tests" / "reference_files" / "aorta_report"
    ts.mkdir(parents=True)
    (ts / "example_ct.nii.gz").write_bytes(b"ts")
    pr = tmp_path / "pr" / "data"
    pr.mkdir(parents=True)
    for n in ("lung1_image.nrrd", "lung2_image.nrrd"):
        (pr / n).write_bytes(n.encode())
    found = chest_ct.locate_chest_cts(tmp_path / "ts", tmp_path / "pr", tmp_path / "work")
    assert found["ts_chest"].read_bytes() == b"ts" and found["pyrad_lung2"].name == "lung2_image.nrrd"
    tarball = tmp_path / "ts.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(tmp_path / "ts" / "totalsegmentator-2.18.0", arcname="totalsegmentator-2.18.0")
    found = chest_ct.locate_chest_cts(tarball, pr, tmp_path / "work")
    assert found["ts_chest"].read_bytes() == b"ts"
    with pytest.raises(FileNotFoundError, match="pyradiomics"):
        chest_ct.locate_chest_cts(tarball, tmp_path / "ts", tmp_path / "work")
