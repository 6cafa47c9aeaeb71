"""random_smooth_ddf: shape, determinism, exact maximum displacement, smoothness, positive Jacobian."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext import jacobian_determinant
from monai_reg_ext.spatial import random_smooth_ddf


@pytest.mark.parametrize("size", [(16, 16, 16), (16, 12, 10), (24, 20)])
@pytest.mark.parametrize("diffeomorphic", [True, False])
def test_shape_determinism_and_max(size, diffeomorphic):
    a = random_smooth_ddf(size, 2.5, 4.0, seed=3, diffeomorphic=diffeomorphic, batch_size=2)
    b = random_smooth_ddf(size, 2.5, 4.0, seed=3, diffeomorphic=diffeomorphic, batch_size=2)
    c = random_smooth_ddf(size, 2.5, 4.0, seed=4, diffeomorphic=diffeomorphic, batch_size=2)
    assert a.shape == (2, len(size), *size) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(a.norm(dim=1).flatten(1).amax(1), torch.full((2,), 2.5), rtol=1e-5, atol=1e-5)
    assert not torch.equal(a[0], a[1])  # independent batch elements


def test_generator_and_zero():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(
        random_smooth_ddf((8, 8), 1.0, 2.0, generator=g1), random_smooth_ddf((8, 8), 1.0, 2.0, generator=g2)
    )
    assert not random_smooth_ddf((8, 8, 8), 0.0, 2.0, seed=0).any()


@pytest.mark.parametrize("seed", range(3))
def test_diffeomorphic_positive_jacobian(seed):
    ddf = random_smooth_ddf((16, 16, 16), 4.0, 2.0, seed=seed, diffeomorphic=True)
    assert float(jacobian_determinant(ddf).min()) > 0


def test_smoothness_controls_roughness():
    def roughness(ddf):
        return float((ddf[..., 1:] - ddf[..., :-1]).abs().mean())

    assert roughness(random_smooth_ddf((16, 16, 16), 2.0, 1.0, seed=0)) > roughness(
        random_smooth_ddf((16, 16, 16), 2.0, 6.0, seed=0)
    )


@pytest.mark.parametrize(
    "args, match",
    [
        (((16,), 1.0, 1.0), "spatial_size"),
        (((8, 8), -1.0, 1.0), "max_displacement"),
        (((8, 8), 1.0, 0.0), "smoothness"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        random_smooth_ddf(*args)
