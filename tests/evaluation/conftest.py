"""Tiny pairs written by the tests: analytic masks, landmarks and a known translation."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

SHAPE = (12, 10, 8)
AFFINE = np.diag([1.5, 2.0, 2.5, 1.0])
BLOB_SHAPE = (24, 24, 24)
BLOB_SPACING = 2.0
SHIFT = np.array([1.5, -1.0, 0.5])  # true pull DDF in voxels: fixed(x) = moving(x + SHIFT)
BLOB_AFFINE = np.array([[2.0, 0, 0, -23.0], [0, 2.0, 0, -20.0], [0, 0, 2.0, -25.0], [0, 0, 0, 1.0]])
TINY_CONFIG = {
    "spatial_size": [16, 16, 16],
    "network_def": {
        "_target_": "monai_reg_ext.networks.RegistrationNet",
        "backbone": "localnet",
        "method": "ddf",
        "spatial_dims": 3,
        "backbone_kwargs": {"num_channel_initial": 4, "extract_levels": [0, 1, 2]},
    },
}


@pytest.fixture
def slab_pair(tmp_path) -> tuple[Path, dict]:
    """Moving mask = fixed mask shifted by 2 voxels along axis 0 (1.5 mm voxels); landmarks shifted likewise; true
    DDF = +2 voxels along axis 0. Returns the folder (with ``pairs.json``) and the entry."""
    fixed = np.zeros(SHAPE, np.float32)
    fixed[3:7, 2:8, 2:6] = 1.0
    moving = np.roll(fixed, 2, axis=0)
    ddf = np.zeros((*SHAPE, 3), np.float32)
    ddf[..., 0] = 2.0
    for name, arr in (("moving", moving), ("fixed", fixed), ("moving_label", moving), ("fixed_label", fixed)):
        nib.save(nib.Nifti1Image(arr, AFFINE), tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(ddf, AFFINE), tmp_path / "ddf.nii.gz")
    (tmp_path / "fixed_landmarks.csv").write_text("4,5,3\n5,4,4\n")
    (tmp_path / "moving_landmarks.csv").write_text("6,5,3\n7,4,4\n")
    item = {k: f"{k}.nii.gz" for k in ("moving", "fixed", "moving_label", "fixed_label", "ddf")}
    item |= {"moving_landmarks": "moving_landmarks.csv", "fixed_landmarks": "fixed_landmarks.csv", "subject": "s1"}
    (tmp_path / "pairs.json").write_text(json.dumps([item]))
    return tmp_path, item


def _blob(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic ellipsoid 'brain' sampled at voxel positions ``points`` (3, *S): image, GM shell, WM core."""
    c = np.array([11.5, 11.5, 11.5])[:, None, None, None]
    r = np.sqrt((((points - c) / np.array([7.0, 6.0, 6.5])[:, None, None, None]) ** 2).sum(0))
    image = np.clip(1.2 - r, 0, 1) * 200 + 20 * (r < 1)
    return image, (r >= 0.6) & (r < 1.0), r < 0.6


@pytest.fixture
def blob_pairs(tmp_path) -> Path:
    """One pair of a 2 mm 'brain' (one-hot GM/WM labels) under the constant translation ``SHIFT``; its pairs.json."""
    folder = tmp_path / "blob"
    folder.mkdir()
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in BLOB_SHAPE], indexing="ij"))
    mov, mgm, mwm = _blob(grid)
    fix, fgm, fwm = _blob(grid + SHIFT[:, None, None, None])
    arrays = {
        "mov.nii.gz": mov.astype(np.float32),
        "fix.nii.gz": fix.astype(np.float32),
        "mov_label.nii.gz": np.stack([mgm, mwm], -1).astype(np.uint8),
        "fix_label.nii.gz": np.stack([fgm, fwm], -1).astype(np.uint8),
        "ddf.nii.gz": np.broadcast_to(SHIFT, (*BLOB_SHAPE, 3)).astype(np.float32),
    }
    for name, arr in arrays.items():
        nib.save(nib.Nifti1Image(arr, BLOB_AFFINE), folder / name)
    entry = {"moving": "mov.nii.gz", "fixed": "fix.nii.gz", "moving_label": "mov_label.nii.gz"}
    entry |= {"fixed_label": "fix_label.nii.gz", "ddf": "ddf.nii.gz"}
    (folder / "pairs.json").write_text(json.dumps([entry]))
    return folder / "pairs.json"


@pytest.fixture
def tiny_bundle(tmp_path) -> Path:
    """A bundle folder with a 3-level LocalNet (random weights, seed 0) on a 16^3 grid."""
    from monai.bundle import ConfigParser

    folder = tmp_path / "bundle"
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps(TINY_CONFIG))
    torch.manual_seed(0)
    net = ConfigParser(TINY_CONFIG).get_parsed_content("network_def", instantiate=True)
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder
