"""Headers are checked against the file before any voxel is allocated (forged or truncated NIfTI)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from monai_reg_ext.io import load_input
from monai_reg_ext.io.inputs import check_nifti_size


def _forged(path, shape):
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 89)  # a 93-byte payload
    return path


def test_header_claiming_more_than_the_file_holds(tmp_path):
    path = _forged(tmp_path / "forged.nii", (1000, 1000, 1000))
    with pytest.raises(
        ValueError, match=r"moving: .*forged.nii.*truncated or its header is wrong.*\(1000, 1000, 1000\)"
    ):
        load_input(path, "moving", 3)


def test_header_over_the_voxel_limit(tmp_path):
    path = _forged(tmp_path / "huge.nii", (2000, 2000, 2000))
    with pytest.raises(ValueError, match="over the limit"):
        load_input(path, "fixed", 3)


def test_truncated_gzip_and_valid_files(tmp_path):
    good = tmp_path / "good.nii"
    nib.save(nib.Nifti1Image(np.random.rand(10, 11, 12).astype(np.float32), np.eye(4)), good)
    nib.save(nib.Nifti1Image(np.random.rand(10, 11, 12).astype(np.float32), np.eye(4)), tmp_path / "good.nii.gz")
    check_nifti_size(good, "x")
    check_nifti_size(tmp_path / "good.nii.gz", "x")
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(gzip.compress(good.read_bytes()[:-100]))
    with pytest.raises(ValueError, match="cut.nii.gz.*truncated"):
        load_input(bad, "fixed", 3)
