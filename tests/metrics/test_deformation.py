from __future__ import annotations

import pytest
import torch

from monai_reg_ext.metrics import folding_fraction, jacobian_metrics, sd_log_jacobian
from monai_reg_ext.spatial import identity_grid


def test_identity():
    ddf = torch.zeros(2, 3, 8, 9, 10)
    assert torch.equal(folding_fraction(ddf), torch.zeros(2))
    assert torch.allclose(sd_log_jacobian(ddf), torch.zeros(2))


def test_pure_scaling_has_zero_sdlogj():
    grid = identity_grid((8, 9, 10))
    ddf = (0.3 * grid)[None]  # x -> 1.3 x
    assert sd_log_jacobian(ddf).item() == pytest.approx(0.0, abs=1e-5)
    assert folding_fraction(ddf).item() == 0.0


def test_fold_detected_and_mask():
    grid = identity_grid((10, 10))
    ddf = torch.zeros(1, 2, 10, 10)
    ddf[0, 0, 3:7] = -2.0 * grid[0, 3:7]  # x -> -x on rows 3..6: J = -1 there
    frac = folding_fraction(ddf)
    assert 0.0 < frac.item() < 1.0
    assert sd_log_jacobian(ddf).item() > 1.0
    mask = torch.zeros(10, 10)
    mask[4:6] = 1
    assert folding_fraction(ddf, mask=mask).item() == 1.0
    mask_out = torch.zeros(1, 1, 10, 10)
    mask_out[..., 8:, :] = 1
    assert folding_fraction(ddf, mask=mask_out).item() == 0.0
    with pytest.raises(ValueError, match="mask"):
        folding_fraction(ddf, mask=torch.ones(5, 5))


def test_jacobian_metrics_equal_the_two_metrics():
    torch.manual_seed(0)
    ddf = 1.5 * torch.randn(2, 3, 8, 9, 10)  # folds in places
    mask = (torch.rand(2, 8, 9, 10) > 0.3).float()
    for m in (None, mask):
        both = jacobian_metrics(ddf, mask=m)
        assert torch.equal(both["folding_fraction"], folding_fraction(ddf, mask=m))
        assert torch.equal(both["sd_log_jacobian"], sd_log_jacobian(ddf, mask=m))
    assert 0 < float(both["folding_fraction"][0]) < 1
