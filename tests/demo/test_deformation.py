from __future__ import annotations

import numpy as np
import torch

from monai_reg_ext.demo.deformation import coarse_random_field, random_velocity, scaled_velocity_ddf
from monai_reg_ext.spatial import dvf_to_ddf


def test_random_velocity_and_scaled_ddf():
    v = random_velocity((12, 10, 8), 2.0, seed=3)
    assert v.shape == (1, 3, 12, 10, 8) and v.dtype == torch.float64
    assert float(v.norm(dim=1).max()) == 1.0
    assert torch.equal(v, random_velocity((12, 10, 8), 2.0, seed=3))  # deterministic
    ddf, velocity = scaled_velocity_ddf((12, 10, 8), 1.5, 2.0, seed=3)
    assert abs(float(ddf.norm(dim=1).max()) - 1.5) < 0.05  # one secant step
    assert torch.equal(ddf, dvf_to_ddf(velocity))
    assert torch.allclose(velocity / velocity.norm(dim=1).max(), v)


def test_coarse_random_field():
    b = coarse_random_field(np.random.default_rng(0), (9, 7, 5))
    assert b.shape == (9, 7, 5) and abs(float(b.mean())) < 1e-12
    assert np.array_equal(b, coarse_random_field(np.random.default_rng(0), (9, 7, 5)))
