"""monai_reg_ext.evaluation.pairs: pairs files, native-grid and network-grid loading."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.evaluation import PairSpec, load_pair, preprocess_pair, read_pairs

from .conftest import AFFINE, SHAPE


def test_spec_from_entry_resolves_paths_aliases_and_masks(tmp_path):
    item = {"moving_image": "m.nii.gz", "fixed_image": "/abs/f.nii.gz", "true_ddf": "d.nii.gz", "fov": "fov.nii.gz"}
    item |= {"gland_mask": "g.nii.gz", "subject": "s7"}
    spec = PairSpec.from_entry(item, tmp_path)
    assert spec.moving == str(tmp_path / "m.nii.gz") and spec.fixed == "/abs/f.nii.gz"
    assert spec.true_ddf == str(tmp_path / "d.nii.gz") and spec.name == "f" and spec.subject == "s7"
    assert spec.masks == {"fov": str(tmp_path / "fov.nii.gz"), "gland_mask": str(tmp_path / "g.nii.gz")}
    with pytest.raises(ValueError, match="expected 'moving' and 'fixed'"):
        PairSpec.from_entry({"moving": "m.nii.gz"}, tmp_path)


def test_read_pairs_accepts_a_dict_and_refuses_empty(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"pairs": [{"moving": "a.nii", "fixed": "b.nii", "name": "p0"}]}))
    assert [s.name for s in read_pairs(path)] == ["p0"]
    path.write_text("[]")
    with pytest.raises(ValueError, match="non-empty list"):
        read_pairs(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_pairs(tmp_path / "nope.json")


def test_load_pair_native_grid(slab_pair):
    root, item = slab_pair
    pair = load_pair(PairSpec.from_entry(item, root), binarise=True)
    assert pair.moving_image.shape == (1, 1, *SHAPE) and pair.fixed_label.shape == (1, 1, *SHAPE)
    assert pair.true_ddf.shape == (1, 3, *SHAPE) and float(pair.true_ddf[0, 0].mean()) == 2.0
    np.testing.assert_allclose(pair.moving_landmarks, [[6, 5, 3], [7, 4, 4]])
    np.testing.assert_allclose(pair.spacing, [1.5, 2.0, 2.5])
    assert pair.info == {"subject": "s1"} and pair.name == "fixed"


def test_load_pair_names_the_missing_file_and_refuses_other_grids(slab_pair):
    root, item = slab_pair
    spec = PairSpec.from_entry(item, root)
    (root / "fixed_label.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="fixed_label"):
        load_pair(spec)
    moved = AFFINE.copy()
    moved[0, 3] = 4.0
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), moved), root / "moving.nii.gz")
    with pytest.raises(ValueError, match="share one grid"):
        load_pair(spec)


def test_resample_moving_maps_landmarks_to_the_fixed_grid(slab_pair):
    """A moving image of half the voxel size over the same field: resampled onto the fixed grid in world
    coordinates, its landmarks expressed in fixed voxels."""
    root, item = slab_pair
    fine = AFFINE.copy()
    fine[:3, :3] /= 2.0
    fixed = np.asarray(nib.load(root / "fixed.nii.gz").dataobj)
    big = np.repeat(np.repeat(np.repeat(fixed, 2, 0), 2, 1), 2, 2)
    nib.save(nib.Nifti1Image(big, fine), root / "moving.nii.gz")
    nib.save(nib.Nifti1Image(big, fine), root / "moving_label.nii.gz")
    (root / "moving_landmarks.csv").write_text("8,10,6\n10,8,8\n")
    pair = load_pair(PairSpec.from_entry(item, root), resample_moving=True, dtype=torch.float32)
    assert pair.moving_image.shape == (1, 1, *SHAPE) and pair.moving_label.dtype == torch.float32
    np.testing.assert_allclose(pair.moving_landmarks, [[4, 5, 3], [5, 4, 4]])
    np.testing.assert_allclose(pair.moving_affine, AFFINE)


def test_preprocess_pair_resizes_and_scales(slab_pair):
    root, item = slab_pair
    pair = preprocess_pair(PairSpec.from_entry(item, root), (6, 5, 4), name="p")
    assert pair.name == "p" and pair.fixed_image.shape == (1, 1, 6, 5, 4) and pair.moving_label.shape == (1, 1, 6, 5, 4)
    assert float(pair.fixed_image.min()) == 0.0 and float(pair.fixed_image.max()) == 1.0 and pair.fixed_affine is None
