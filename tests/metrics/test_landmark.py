from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext.metrics import landmark_tre, sample_ddf

AFFINE = np.array([[0.0, 0.0, -2.5, 10.0], [1.5, 0.0, 0.0, -4.0], [0.0, 0.8, 0.0, 3.0], [0, 0, 0, 1]])
FIXED = np.array([[1.0, 2.0, 3.0], [4.5, 0.0, 7.25], [9.0, 9.0, 0.0]])


def test_identity_ddf_gives_landmark_distance_in_mm():
    ddf = torch.zeros(1, 3, 10, 11, 12)
    moving = FIXED + np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    tre = landmark_tre(moving, FIXED, ddf, fixed_affine=AFFINE)
    expected = np.linalg.norm((moving - FIXED) @ AFFINE[:3, :3].T, axis=1)  # [1.5, 1.6, |(-2.5, 1.5, 0.8)|]
    np.testing.assert_allclose(tre.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(expected[:2], [1.5, 1.6])
    # without any affine the distance is in voxels
    np.testing.assert_allclose(landmark_tre(moving, FIXED, ddf).numpy(), np.linalg.norm(moving - FIXED, axis=1))


def test_constant_translation_pull_semantics():
    ddf = torch.zeros(1, 3, 10, 11, 12)
    ddf[:, 0] = 2.0
    ddf[:, 2] = -0.5
    moving = FIXED + np.array([2.0, 0.0, -0.5])  # fixed x corresponds to moving x + ddf(x)
    tre = landmark_tre(moving, FIXED, ddf, fixed_affine=AFFINE)
    assert tre.abs().max().item() < 1e-10
    # the opposite shift is wrong by twice the displacement
    wrong = landmark_tre(FIXED - np.array([2.0, 0.0, -0.5]), FIXED, ddf, moving_affine=AFFINE)
    np.testing.assert_allclose(wrong.numpy(), np.linalg.norm(AFFINE[:3, :3] @ [4.0, 0.0, -1.0]))


def test_linear_interpolation_and_moving_grid_size():
    ddf = torch.zeros(1, 2, 5, 5)
    ddf[0, 0] = torch.arange(5.0)[:, None]  # ddf_0(i, j) = i
    np.testing.assert_allclose(sample_ddf(ddf, torch.tensor([[1.5, 2.0]])).numpy(), [[1.5, 0.0]])
    # moving image with 9x9 voxels covering the same field of view: fixed voxel p -> moving voxel 2 p
    tre = landmark_tre([[6.0, 4.0]], [[1.5, 2.0]], ddf, moving_spatial_size=(9, 9))
    assert tre.item() == pytest.approx(0.0)


def test_errors():
    ddf = torch.zeros(1, 3, 4, 4, 4)
    with pytest.raises(ValueError, match="fixed landmark 1"):
        landmark_tre(np.zeros((2, 3)), [[0, 0, 0], [0, 5, 0]], ddf)
    with pytest.raises(ValueError, match="pair up"):
        landmark_tre(np.zeros((2, 3)), np.zeros((3, 3)), ddf)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        landmark_tre(np.zeros((2, 2)), np.zeros((2, 2)), ddf)
