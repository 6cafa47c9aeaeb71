from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext import warp_image
from monai_reg_ext.io import itk_geometry_from_affine, load_ddf, save_ddf

itk = pytest.importorskip("itk")


def _oblique_affine_3d() -> np.ndarray:
    th = 0.3
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    perm_flip = np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]])
    a = np.eye(4)
    a[:3, :3] = rot @ perm_flip @ np.diag([1.5, 0.8, 2.5])
    a[:3, 3] = [12.0, -30.0, 7.0]
    return a


def _affine_2d() -> np.ndarray:
    th = -0.4
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = np.eye(3)
    a[:2, :2] = rot @ np.array([[0, -1.0], [1, 0]]) @ np.diag([2.0, 0.7])
    a[:2, 2] = [4.0, 7.0]
    return a


@pytest.mark.parametrize("shape, affine", [((5, 6, 7), _oblique_affine_3d()), ((5, 6), _affine_2d())])
def test_round_trip(tmp_path, shape, affine):
    torch.manual_seed(0)
    ddf = torch.randn(len(shape), *shape)
    path = save_ddf(tmp_path / "ddf.nii.gz", ddf[None], affine)
    out, aff = load_ddf(path)
    assert out.shape == ddf.shape and aff.shape == affine.shape
    assert torch.allclose(out, ddf, atol=1e-5)
    np.testing.assert_allclose(aff.numpy(), affine, atol=1e-5)
    with pytest.raises(FileExistsError, match="ddf.nii.gz"):
        save_ddf(path, ddf, affine)
    save_ddf(path, ddf, affine, overwrite=True)


def test_file_is_itk_displacement_field_in_lps_mm(tmp_path):
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [1.0, 2.0, 3.0]
    ddf = torch.zeros(3, 4, 5, 6)
    ddf[0] = 1.0  # +1 voxel along array axis 0 = +2 mm along R = -2 mm along L
    ddf[2] = -0.5  # -0.5 voxel along axis 2 = -2 mm along S
    field = itk.imread(str(save_ddf(tmp_path / "d.nii.gz", ddf, affine)))
    arr = itk.GetArrayFromImage(field)
    assert arr.shape == (6, 5, 4, 3)  # ITK order (z, y, x, vector)
    np.testing.assert_allclose(arr[0, 0, 0], [-2.0, 0.0, -2.0])
    np.testing.assert_allclose(np.asarray(field.GetOrigin()), [-1.0, -2.0, 3.0])
    np.testing.assert_allclose(np.asarray(field.GetSpacing()), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(itk.array_from_matrix(field.GetDirection()), np.diag([-1.0, -1.0, 1.0]))


def test_itk_warp_matches_warp_image(tmp_path):
    """ITK's WarpImageFilter with the written file gives monai_reg_ext.warp_image's result."""
    shape = (20, 24, 16)
    affine = _oblique_affine_3d()
    g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).astype(np.float64)
    moving = np.sin(g[0] / 4) + np.cos(g[1] / 5) * np.sin(g[2] / 3 + 0.5)
    ddf = np.stack([1.5 * np.sin(g[1] / 6), -1.2 * np.cos(g[2] / 5), 0.8 * np.sin(g[0] / 7 + g[1] / 9)])

    ours = warp_image(
        torch.tensor(moving, dtype=torch.float32)[None, None], torch.tensor(ddf, dtype=torch.float32)[None]
    )
    ours = ours[0, 0].numpy()

    field = itk.imread(str(save_ddf(tmp_path / "ddf.nii.gz", ddf, affine)))
    spacing, origin, direction = itk_geometry_from_affine(affine)  # moving image in the same world frame
    image = itk.GetImageFromArray(np.ascontiguousarray(moving.transpose(2, 1, 0).astype(np.float32)))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(itk.matrix_from_array(direction))
    warp = itk.WarpImageFilter[type(image), type(image), type(field)].New(Input=image, DisplacementField=field)
    warp.SetOutputParametersFromImage(field)
    warp.Update()
    theirs = itk.GetArrayFromImage(warp.GetOutput()).transpose(2, 1, 0)

    q = g + ddf  # sampling points; compare where ITK does not hit its zero padding
    inside = np.all([(q[k] >= 1) & (q[k] <= shape[k] - 2) for k in range(3)], axis=0)
    assert inside.mean() > 0.5
    assert np.abs(theirs - ours)[inside].max() < 1e-3


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="ddf"):
        save_ddf(tmp_path / "a.nii.gz", torch.zeros(2, 4, 4, 4), np.eye(4))
    with pytest.raises(ValueError, match="fixed_affine"):
        save_ddf(tmp_path / "a.nii.gz", torch.zeros(3, 4, 4, 4), np.eye(3))
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_ddf(tmp_path / "missing.nii.gz")
    scalar = itk.GetImageFromArray(np.zeros((4, 4, 4), np.float32))
    itk.imwrite(scalar, str(tmp_path / "scalar.nii.gz"))
    with pytest.raises(ValueError, match="scalar.nii.gz"):
        load_ddf(tmp_path / "scalar.nii.gz")
