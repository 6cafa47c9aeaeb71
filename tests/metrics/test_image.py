from __future__ import annotations

import pytest
import torch

from monai_reg_ext.metrics import image_lncc, image_ssd


def test_ssd_deepreg_value():
    a = torch.full((2, 1, 4, 4, 4), 0.6)
    b = torch.full((2, 1, 4, 4, 4), 0.3)
    assert torch.allclose(image_ssd(a, b), torch.full((2,), 0.09))
    assert torch.equal(image_ssd(a, a), torch.zeros(2))


def test_lncc_higher_is_better():
    torch.manual_seed(0)
    a = torch.rand(1, 1, 12, 12, 12)
    noise = torch.rand(1, 1, 12, 12, 12)
    same = image_lncc(a, a, kernel_size=5)
    assert same.item() == pytest.approx(1.0, abs=1e-3)
    # invariant to affine intensity changes away from the zero-padded border
    assert image_lncc(a, 2 * a + 1, kernel_size=5).item() > 0.9
    assert image_lncc(a, noise, kernel_size=5).item() < 0.5
    assert image_lncc(a[..., 0], a[..., 0], kernel_size=3).shape == (1,)
