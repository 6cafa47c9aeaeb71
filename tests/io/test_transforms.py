"""ITK affine transform files: round trip, and SimpleITK resampling with the file equals monai-reg's warp."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_reg_ext import affine_to_ddf, warp_image
from monai_reg_ext.io import itk_geometry_from_affine, load_itk_affine, save_itk_affine


def _rotation(ndim: int, angles) -> np.ndarray:
    """A rotation: the product of rotations by ``angles`` (radians) in the planes of successive axis pairs."""
    rot = np.eye(ndim)
    for (a, b), angle in zip([(0, 1), (1, 2), (0, 2)][: 1 if ndim == 2 else 3], angles):
        r = np.eye(ndim)
        r[a, a] = r[b, b] = math.cos(angle)
        r[a, b], r[b, a] = -math.sin(angle), math.sin(angle)
        rot = rot @ r
    return rot


def _world_affine(ndim: int) -> np.ndarray:
    """A non-trivial voxel-to-world RAS affine: spacing (1.5, 2[, 2.5]), an oblique rotation, an origin."""
    aff = np.eye(ndim + 1)
    aff[:ndim, :ndim] = _rotation(ndim, [0.3, -0.2, 0.15]) @ np.diag([1.5, 2.0, 2.5][:ndim])
    aff[:ndim, ndim] = [-40.0, 25.0, 12.5][:ndim]
    return aff


def _voxel_theta(size) -> np.ndarray:
    """10 degrees rotation, 1.1 scale about the grid centre (in voxel indices), then a translation."""
    ndim = len(size)
    centre = (np.asarray(size) - 1) / 2
    lin = 1.1 * _rotation(ndim, [math.radians(10), math.radians(4), 0.0])
    shift = np.asarray([2.0, -1.5, 1.0][:ndim])
    return np.hstack([lin, (centre - lin @ centre + shift)[:, None]])


def _smooth(size, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, 1, *[max(s // 4, 2) for s in size], generator=torch.Generator().manual_seed(seed))
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return torch.nn.functional.interpolate(coarse, size=tuple(size), mode=mode, align_corners=True)[0, 0]


def _to_sitk(array: np.ndarray, affine: np.ndarray):
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.T))  # our (i, j[, k]) -> SimpleITK (..., y, x)
    spacing, origin, direction = itk_geometry_from_affine(affine)
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(origin.tolist())
    img.SetDirection(direction.reshape(-1).tolist())
    return img


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("suffix", [".tfm", ".txt"])
def test_round_trip(tmp_path, ndim, suffix):
    size = (20, 18, 16)[:ndim]
    theta = _voxel_theta(size)
    path = save_itk_affine(tmp_path / f"affine{suffix}", torch.as_tensor(theta), _world_affine(ndim))
    text = path.read_text()
    assert text.startswith("#Insight Transform File V1.0") and f"AffineTransform_double_{ndim}_{ndim}" in text
    back = load_itk_affine(path, _world_affine(ndim), dtype=torch.float64)
    assert back.shape == (ndim, ndim + 1)
    np.testing.assert_allclose(back.numpy(), theta, atol=1e-10)
    with pytest.raises(FileExistsError):
        save_itk_affine(path, theta, _world_affine(ndim))
    save_itk_affine(path, theta[None], _world_affine(ndim), overwrite=True)


@pytest.mark.parametrize(
    "size, moving_size", [((24, 22, 20), (24, 22, 20)), ((24, 22, 20), (17, 30, 15)), ((40, 36), (40, 36))]
)
def test_simpleitk_resample_with_file_equals_warp_image(tmp_path, size, moving_size):
    sitk = pytest.importorskip("SimpleITK")
    ndim = len(size)
    fixed_affine = _world_affine(ndim)
    theta = _voxel_theta(size)
    moving = _smooth(moving_size)
    # a moving grid of another shape covers the same field of view (docs/conventions.md)
    scale = [(f - 1) / (m - 1) for f, m in zip(size, moving_size)]
    moving_affine = fixed_affine @ np.diag([*scale, 1.0])
    path = save_itk_affine(tmp_path / "affine.tfm", theta, fixed_affine)

    ours = warp_image(moving[None, None], affine_to_ddf(torch.as_tensor(theta, dtype=torch.float32)[None], size))[0, 0]
    fixed_sitk = _to_sitk(np.zeros(size, dtype=np.float32), fixed_affine)
    moving_sitk = _to_sitk(moving.numpy().astype(np.float64), moving_affine)
    resampled = sitk.Resample(moving_sitk, fixed_sitk, sitk.ReadTransform(str(path)), sitk.sitkLinear, 0.0)
    theirs = torch.as_tensor(sitk.GetArrayFromImage(resampled).T.astype(np.float32))

    # compare where the sampled point is inside the moving field of view (outside: border vs zero padding)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij")).reshape(ndim, -1)
    sampled = theta[:, :ndim] @ grid + theta[:, ndim:]
    inside = np.all((sampled >= 0) & (sampled <= np.asarray(size)[:, None] - 1), axis=0).reshape(size)
    inside = torch.as_tensor(inside)
    assert inside.float().mean() > 0.5
    value_range = (moving.max() - moving.min()).item()
    diff = (ours - theirs)[inside].abs()
    assert diff.mean() < 1e-4 * value_range and diff.max() < 1e-3 * value_range  # measured: 1e-7, 1e-6
    if moving_size == size:  # the transform moves the image far more than the two resamplings differ
        assert (ours - moving)[inside].abs().mean() > 50 * diff.mean()


def test_reads_other_affine_names_and_centre(tmp_path):
    world = _world_affine(3)
    theta = _voxel_theta((20, 18, 16))
    save_itk_affine(tmp_path / "a.txt", theta, world)
    sitk = pytest.importorskip("SimpleITK")
    tx = sitk.AffineTransform(sitk.ReadTransform(str(tmp_path / "a.txt")))
    matrix, centre = np.asarray(tx.GetMatrix()).reshape(3, 3), np.asarray([10.0, -3.0, 7.0])
    translation = np.asarray(tx.GetTranslation()) - centre + matrix @ centre  # same map about another centre
    centred = sitk.AffineTransform(tx.GetMatrix(), translation.tolist(), centre.tolist())
    sitk.WriteTransform(centred, str(tmp_path / "centred.tfm"))
    np.testing.assert_allclose(
        load_itk_affine(tmp_path / "centred.tfm", world, torch.float64).numpy(), theta, atol=1e-6
    )
    text = (tmp_path / "a.txt").read_text()
    for name in ("MatrixOffsetTransformBase_double_3_3", "AffineTransform_float_3_3"):
        (tmp_path / "b.txt").write_text(text.replace("AffineTransform_double_3_3", name))
        np.testing.assert_allclose(load_itk_affine(tmp_path / "b.txt", world, torch.float64).numpy(), theta, atol=1e-9)


def test_refuses_other_transforms_and_bad_files(tmp_path):
    world = _world_affine(3)
    text = save_itk_affine(tmp_path / "a.tfm", _voxel_theta((8, 8, 8)), world).read_text()
    (tmp_path / "euler.tfm").write_text(text.replace("AffineTransform_double_3_3", "Euler3DTransform_double_3_3"))
    with pytest.raises(ValueError, match=r"euler\.tfm.*Euler3DTransform_double_3_3"):
        load_itk_affine(tmp_path / "euler.tfm", world)
    (tmp_path / "two.tfm").write_text(text + text.replace("#Transform 0", "#Transform 1"))
    with pytest.raises(ValueError, match="2 transforms"):
        load_itk_affine(tmp_path / "two.tfm", world)
    (tmp_path / "short.tfm").write_text(text.replace("Parameters: ", "Parameters: 1 ", 1).replace(" 0 0 0\n", "\n"))
    with pytest.raises(ValueError, match="Parameters"):
        load_itk_affine(tmp_path / "short.tfm", world)
    (tmp_path / "empty.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="empty.txt"):
        load_itk_affine(tmp_path / "empty.txt", world)
    with pytest.raises(FileNotFoundError):
        load_itk_affine(tmp_path / "missing.tfm", world)
    with pytest.raises(ValueError, match="suffix|.tfm or .txt"):
        save_itk_affine(tmp_path / "a.mat", _voxel_theta((8, 8, 8)), world)
    with pytest.raises(ValueError, match="theta"):
        save_itk_affine(tmp_path / "c.tfm", np.eye(3), world)
