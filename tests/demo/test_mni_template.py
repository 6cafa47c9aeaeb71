"""monai_reg_ext.demo.mni_template: reading the MNI template (folder / wheel) and sampling it on a demo grid.

Runs on a tiny made-up "template" written in the nilearn file names (no nilearn needed).
"""

from __future__ import annotations

import zipfile

import nibabel as nib
import numpy as np
import pytest

from monai_reg_ext.demo.mni_template import (
    MNI_FILES,
    antialias,
    brain_mask,
    load_mni_template,
    sample_volumes,
    target_grid,
    world_to_source_index,
)

AFFINE = np.array([[1.0, 0, 0, -20.0], [0, 1.0, 0, -24.0], [0, 0, 1.0, -18.0], [0, 0, 0, 1.0]])
SHAPE = (40, 48, 36)


def _volumes() -> dict[str, np.ndarray]:
    """A ball of radius 12 voxels: WM core (r < 6), GM shell, T1 0.8 / 0.5 inside, 0 outside; uint8 scale."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"))
    r = np.sqrt(((grid - (np.asarray(SHAPE) // 2)[:, None, None, None]) ** 2).sum(0))
    wm = (r < 6).astype(np.float64)
    gm = ((r >= 6) & (r < 12)).astype(np.float64)
    t1 = 0.8 * wm + 0.5 * gm
    return {"t1": t1, "gm": gm, "wm": wm}


def _write(folder, volumes=None, affine=AFFINE):
    folder.mkdir(parents=True, exist_ok=True)
    for key, vol in (volumes or _volumes()).items():
        nib.save(nib.Nifti1Image(np.round(vol * 255).astype(np.uint8), affine), str(folder / MNI_FILES[key]))
    return folder


def test_load_from_folder_and_wheel_agree(tmp_path):
    src = _write(tmp_path / "src")
    wheel = tmp_path / "nilearn-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in MNI_FILES.values():
            zf.write(src / name, f"nilearn/datasets/data/{name}")
    vol_a, aff_a, hash_a, where_a = load_mni_template(str(src))
    vol_b, aff_b, hash_b, where_b = load_mni_template(str(wheel))
    assert "folder" in where_a and "wheel" in where_b
    assert hash_a == hash_b and set(hash_a) == set(MNI_FILES.values())
    np.testing.assert_array_equal(aff_a, AFFINE)
    for key, ref in _volumes().items():
        np.testing.assert_allclose(vol_a[key], np.round(ref * 255) / 255, atol=1e-12)
        np.testing.assert_array_equal(vol_a[key], vol_b[key])
    # a subset of files (other keys) works too
    vol_c, _, hash_c, _ = load_mni_template(str(src), {"t1": MNI_FILES["t1"]})
    assert set(vol_c) == {"t1"} and len(hash_c) == 1


def test_bad_sources_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="--source"):
        load_mni_template(str(tmp_path / "nowhere"))
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("nilearn/__init__.py", "")
    with pytest.raises(ValueError, match="lacks"):
        load_mni_template(str(wheel))
    vols = _volumes()
    src = _write(tmp_path / "src", vols)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), AFFINE), str(src / MNI_FILES["wm"]))
    with pytest.raises(ValueError, match="shape/affine differ"):
        load_mni_template(str(src))


def test_target_grid_is_centred_on_the_brain():
    vols = _volumes()
    affine, margins = target_grid(vols, AFFINE, (16, 16, 16), 2.0)
    assert np.allclose(np.diag(affine)[:3], 2.0)
    # the ball spans 23 voxels (index 8..31 along axis 0 -> world -12..11 mm): margins equal on both sides
    np.testing.assert_allclose(margins["low_mm"], margins["high_mm"], atol=1e-6)
    mask = brain_mask(vols)
    idx = np.argwhere(mask)
    lo = AFFINE[:3, :3] @ idx.min(0) + AFFINE[:3, 3]
    np.testing.assert_allclose(affine[:3, 3] + margins["low_mm"], lo, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        target_grid(vols, AFFINE, (8, 8, 8), 2.0)


def test_world_to_source_index_and_sampling():
    vols = _volumes()
    tgt = AFFINE.copy()  # same grid: sampling is the identity
    pts = np.array([[0.0, 3.5, 10.0], [1.0, 2.0, 4.0], [7.0, 0.0, 2.0]])
    np.testing.assert_allclose(world_to_source_index(pts, tgt, AFFINE), pts)
    out = sample_volumes(vols, tgt, AFFINE, SHAPE)
    for key in vols:
        np.testing.assert_allclose(out[key], vols[key], atol=1e-12)
    # a constant pull displacement of +2 voxels along axis 0: out[i] = vol[i + 2]
    ddf = np.zeros((3, *SHAPE))
    ddf[0] = 2.0
    shifted = sample_volumes(vols, tgt, AFFINE, SHAPE, ddf)
    np.testing.assert_allclose(shifted["t1"][:-2], vols["t1"][2:], atol=1e-12)
    # a grid of 2 mm samples every other source voxel
    coarse = AFFINE.copy()
    coarse[:3, :3] *= 2.0
    half = sample_volumes(vols, coarse, AFFINE, (20, 24, 18))
    np.testing.assert_allclose(half["wm"], vols["wm"][::2, ::2, ::2], atol=1e-12)


def test_antialias_sigma_follows_the_spacing_ratio():
    vols = {"t1": np.zeros((21, 21, 21))}
    vols["t1"][10, 10, 10] = 1.0
    same = antialias(vols, AFFINE, 1.0)["t1"]
    np.testing.assert_array_equal(same, vols["t1"])  # factor 1: no filtering
    blurred = antialias(vols, AFFINE, 3.0)["t1"]  # sigma (3 - 1) / 2 = 1 voxel
    assert blurred.sum() == pytest.approx(1.0, abs=1e-6)
    profile = blurred[:, 10, 10] / blurred[10, 10, 10]
    assert profile[11] == pytest.approx(np.exp(-0.5), rel=0.02)
