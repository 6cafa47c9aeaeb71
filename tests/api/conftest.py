from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import make_tiny_bundle


@pytest.fixture
def tiny_bundle(tmp_path):
    """A bundle folder with a tiny LocalNet whose output layer is random (so the DDF is not zero)."""
    return make_tiny_bundle(tmp_path / "bundle", random_output=True)


@pytest.fixture
def pair_files(tmp_path):
    """A moving and a fixed NIfTI (different shapes and oblique, anisotropic affines) with one-hot labels."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (20, 18, 14)], indexing="ij"))
    fixed = np.exp(-((grid**2).sum(0)) * 3).astype(np.float32) + 0.01 * rng.random((20, 18, 14)).astype(np.float32)
    grid_m = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (22, 20, 16)], indexing="ij"))
    moving = np.exp(-(((grid_m - 0.1) ** 2).sum(0)) * 3).astype(np.float32)
    fixed_aff = np.diag([1.5, 1.2, 2.0, 1.0])
    fixed_aff[:3, 3] = [-15, -10, -14]
    moving_aff = np.diag([1.4, 1.1, 1.8, 1.0])
    moving_aff[:3, 3] = [-15, -11, -14]
    out = {}
    for name, arr, aff in (("moving", moving, moving_aff), ("fixed", fixed, fixed_aff)):
        nib.save(nib.Nifti1Image(arr, aff), tmp_path / f"{name}.nii.gz")
        lab = np.stack([arr > 0.5, (arr > 0.2) & (arr <= 0.5)], -1).astype(np.uint8)
        nib.save(nib.Nifti1Image(lab, aff), tmp_path / f"{name}_label.nii.gz")
        out[name] = tmp_path / f"{name}.nii.gz"
        out[f"{name}_label"] = tmp_path / f"{name}_label.nii.gz"
        out[f"{name}_affine"] = aff
    return out
