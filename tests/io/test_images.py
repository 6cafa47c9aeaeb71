from __future__ import annotations

import numpy as np
import pytest

from monai_reg_ext.io import load_image, save_image

AFFINE3 = np.array([[0.0, 0.0, -2.5, 10.0], [1.5, 0.0, 0.0, -4.0], [0.0, 0.8, 0.0, 3.0], [0, 0, 0, 1]])
AFFINE2 = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 2.0], [0, 0, 1]])


@pytest.mark.parametrize(
    "array, affine, dims",
    [
        (np.random.rand(4, 5, 6), AFFINE3, None),
        (np.random.rand(2, 4, 5, 6), AFFINE3, None),
        (np.random.rand(4, 5), AFFINE2, None),
        (np.random.rand(3, 4, 5), AFFINE2, 2),
    ],
)
def test_round_trip(tmp_path, array, affine, dims):
    path = save_image(tmp_path / "im.nii.gz", array, affine)
    data, aff = load_image(path, spatial_dims=dims)
    expected = array if array.ndim == affine.shape[0] else array[None]
    np.testing.assert_allclose(data.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(aff.numpy(), affine, atol=1e-6)


def test_no_silent_overwrite_and_dtype(tmp_path):
    path = save_image(tmp_path / "lab.nii.gz", np.ones((3, 3, 3)) > 0, AFFINE3)
    with pytest.raises(FileExistsError, match="lab.nii.gz"):
        save_image(path, np.zeros((3, 3, 3)), AFFINE3)
    save_image(path, np.zeros((3, 3, 3)), AFFINE3, dtype=np.uint8, overwrite=True)
    assert load_image(path)[0].max().item() == 0


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_image(tmp_path / "missing.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.nii.gz"):
        load_image(tmp_path / "junk.nii.gz")
    with pytest.raises(ValueError, match="spatial dims"):
        save_image(tmp_path / "x.nii.gz", np.zeros((2, 2, 3, 4, 5)), AFFINE3)
