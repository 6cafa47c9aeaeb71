from __future__ import annotations

import math

import pytest
import torch

from monai_reg_ext.metrics import centroid_distance, label_centroid, label_dice, label_hd95


def _cube(shape=(12, 12, 12), lo=(3, 3, 3), size=4) -> torch.Tensor:
    x = torch.zeros(1, 1, *shape)
    x[(0, 0, *[slice(a, a + size) for a in lo])] = 1
    return x


def test_dice_identical_disjoint_and_empty():
    a = _cube()
    b = _cube(lo=(8, 8, 8), size=3)
    assert label_dice(a, a).item() == 1.0
    assert label_dice(a, b).item() == 0.0
    empty = torch.zeros_like(a)
    assert math.isnan(label_dice(empty, empty).item())
    assert label_dice(a, empty).item() == 0.0


def test_dice_per_label_and_threshold():
    a = torch.cat([_cube(), _cube(lo=(0, 0, 0), size=2)], 1)  # (1, 2, ...)
    b = a.clone()
    b[0, 1] = 0
    b[0, 1, 0, 0, :2] = 1  # half of the 2x2x2 cube
    d = label_dice(a * 0.6, b)  # 0.6 >= 0.5 -> binarised to 1
    assert d.shape == (1, 2)
    assert d[0, 0].item() == 1.0
    assert d[0, 1].item() == pytest.approx(2 * 2 / (8 + 2))


def test_dice_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        label_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_hd95_shifted_cube_in_mm():
    a = _cube(shape=(16, 16, 16), lo=(4, 4, 4), size=6)
    b = torch.roll(a, shifts=2, dims=2)  # shift by 2 voxels along array axis 0
    assert label_hd95(a, b).item() == pytest.approx(2.0)
    assert label_hd95(a, b, spacing=(1.5, 1.0, 3.0)).item() == pytest.approx(3.0)


def test_centroid_all_ones_is_grid_centre():
    c = label_centroid(torch.ones(1, 1, 4, 5, 6))
    assert torch.allclose(c, torch.tensor([[[1.5, 2.0, 2.5]]]))
    assert torch.allclose(label_centroid(torch.ones(1, 1, 4, 5, 6), spacing=2.0), 2 * c)


def test_centroid_distance():
    a = _cube()
    assert centroid_distance(a, a).item() == 0.0
    b = torch.roll(a, shifts=(1, 2), dims=(2, 4))
    assert centroid_distance(a, b).item() == pytest.approx(math.sqrt(5))
    assert centroid_distance(a, b, spacing=(2.0, 1.0, 0.5)).item() == pytest.approx(math.sqrt(4 + 1))
    assert math.isnan(centroid_distance(a, torch.zeros_like(a)).item())
