from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext import ddf_mm_to_voxel, ddf_voxel_to_mm


def test_voxel_to_mm_uses_spacing_and_direction():
    affine = np.diag([2.0, 3.0, 0.5, 1.0])
    affine[:3, :3] = affine[:3, :3] @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])  # permuted and flipped axes
    affine[:3, 3] = [10, -5, 7]  # the origin does not matter for displacements
    ddf = torch.zeros(1, 3, 2, 2, 2)
    ddf[:, 0] = 1.0  # one voxel along array axis 0
    mm = ddf_voxel_to_mm(ddf, affine)
    torch.testing.assert_close(mm[0, :, 0, 0, 0], torch.tensor([0.0, 3.0, 0.0]))


@pytest.mark.parametrize("ndim", [2, 3])
def test_round_trip(ndim):
    rng = np.random.default_rng(0)
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] = rng.normal(size=(ndim, ndim)) + 2 * np.eye(ndim)
    ddf = torch.randn(2, ndim, *([4] * ndim), dtype=torch.float64)
    back = ddf_mm_to_voxel(ddf_voxel_to_mm(ddf, affine), affine)
    torch.testing.assert_close(back, ddf)


def test_bad_affine_shape():
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        ddf_voxel_to_mm(torch.zeros(1, 3, 2, 2, 2), np.eye(3))
