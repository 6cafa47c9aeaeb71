"""Tests of monai_reg_ext.optimise: registration by optimisation and instance optimisation."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from monai_reg_ext.losses import BendingEnergyLoss, LocalNormalizedCrossCorrelationLoss
from monai_reg_ext.optimise import OptimisationResult, instance_optimise, register_by_optimisation
from monai_reg_ext.spatial import affine_to_ddf, warp_image

SIZES = {2: (32, 32), 3: (24, 24, 24)}
SHIFT = (2.0, -1.0, 1.0)
MARGIN = 6


def _texture(size: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Smooth random texture ``(1, 1, *size)`` in [0, 1] (noise blurred by a separable box filter, twice)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, *size, generator=g, dtype=torch.float64)
    ndim = len(size)
    pool = torch.nn.functional.avg_pool2d if ndim == 2 else torch.nn.functional.avg_pool3d
    for _ in range(2):
        x = pool(torch.nn.functional.pad(x, [2] * (2 * ndim), mode="replicate"), 5, stride=1)
    x = (x - x.min()) / (x.max() - x.min())
    return x.to(dtype)


def _interior(t: torch.Tensor) -> torch.Tensor:
    return t[(slice(None), slice(None), *[slice(MARGIN, -MARGIN)] * (t.ndim - 2))]


def _translation_pair(ndim: int, dtype=torch.float32):
    size = SIZES[ndim]
    moving = _texture(size, dtype=dtype)
    shift = torch.tensor(SHIFT[:ndim], dtype=dtype).view(1, ndim, *[1] * ndim)
    ddf_true = shift.expand(1, ndim, *size).clone()
    return moving, warp_image(moving, ddf_true), ddf_true


def _loss(moving, fixed, ddf, reg_weight=2.0):
    ndim = fixed.ndim - 2
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=ndim, kernel_size=7)
    return float(lncc(warp_image(moving, ddf), fixed) + reg_weight * BendingEnergyLoss()(ddf))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize(
    "transform, kwargs",
    [
        ("bspline", {}),
        ("ddf", {"levels": (2, 1), "iterations": (100, 50), "reg_weight": 0.5}),
    ],
)
def test_recovers_integer_translation(ndim, transform, kwargs):
    moving, fixed, ddf_true = _translation_pair(ndim)
    result = register_by_optimisation(moving, fixed, transform=transform, **kwargs)
    assert isinstance(result, OptimisationResult)
    assert result.ddf.shape == ddf_true.shape and result.theta is None
    err = (_interior(result.ddf) - _interior(ddf_true)).abs().max()
    assert err < 0.3, f"{transform} {ndim}D: max interior error {float(err):.3f} voxel"
    assert result.iterations == sum(result.level_iterations) == len(result.loss_curve)
    assert result.seconds > 0


def _random_affine(ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Theta (1, D, D+1) in voxels: rotation 0.08 rad (axes 0, 1), scales 1.05/0.97/1.02, shift about the centre."""
    size = SIZES[ndim]
    c, s = math.cos(0.08), math.sin(0.08)
    a = torch.eye(ndim, dtype=torch.float64)
    a[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    a = a @ torch.diag(torch.tensor([1.05, 0.97, 1.02][:ndim], dtype=torch.float64))
    centre = torch.tensor([(n - 1) / 2 for n in size], dtype=torch.float64)
    t = centre - a @ centre + torch.tensor([1.5, -1.0, 0.5][:ndim], dtype=torch.float64)
    return torch.cat([a, t[:, None]], 1)[None].float(), a


@pytest.mark.parametrize("ndim", [2, 3])
def test_recovers_affine(ndim):
    size = SIZES[ndim]
    moving = _texture(size, seed=1)
    theta_true, _ = _random_affine(ndim)
    fixed = warp_image(moving, affine_to_ddf(theta_true, size))
    result = register_by_optimisation(moving, fixed, transform="affine", levels=(2, 1), iterations=(100, 50))
    assert result.theta is not None and result.theta.shape == (1, ndim, ndim + 1)
    assert (result.theta[0, :, :ndim] - theta_true[0, :, :ndim]).abs().max() < 0.05
    assert (result.theta[0, :, ndim] - theta_true[0, :, ndim]).abs().max() < 0.5
    torch.testing.assert_close(result.ddf, affine_to_ddf(result.theta, size), atol=1e-4, rtol=0)


def test_loss_curve_decreases_single_level():
    moving, fixed, _ = _translation_pair(2)
    result = register_by_optimisation(moving, fixed, transform="bspline", levels=1, iterations=60, tolerance=0)
    curve = result.loss_curve
    assert result.level_iterations == [60] and len(curve) == 60
    assert sum(curve[-10:]) / 10 < sum(curve[:10]) / 10
    assert result.final_loss <= min(curve) + 1e-6 and result.initial_loss == curve[0]


@pytest.mark.parametrize("transform", ["bspline", "ddf", "dvf"])
def test_instance_optimisation_does_not_worsen_its_loss(transform):
    moving, fixed, ddf_true = _translation_pair(3)
    ddf_init = 0.5 * ddf_true  # a "network" that got half of the way
    before = _loss(moving, fixed, ddf_init)
    result = instance_optimise(moving, fixed, ddf_init, iterations=15, transform=transform)
    after = _loss(moving, fixed, result.ddf)
    assert result.initial_loss == pytest.approx(before, abs=1e-5)
    assert result.final_loss <= result.initial_loss
    assert after <= before + 1e-6
    assert after < before - 1e-3  # and it does improve this pair


def test_instance_optimisation_with_a_large_learning_rate_never_ends_worse():
    moving, fixed, ddf_true = _translation_pair(2)
    before = _loss(moving, fixed, ddf_true)  # already optimal: any step can only make it worse
    result = instance_optimise(moving, fixed, ddf_true, iterations=5, lr=2.0)
    assert _loss(moving, fixed, result.ddf) <= before + 1e-6


def test_zero_iterations_returns_the_initial_ddf_and_callback_sees_every_iteration():
    moving, fixed, ddf_true = _translation_pair(2)
    same = instance_optimise(moving, fixed, ddf_true, iterations=0)
    torch.testing.assert_close(same.ddf, ddf_true)
    assert same.iterations == 0 and same.final_loss == same.initial_loss
    seen = []
    instance_optimise(moving, fixed, ddf_true, iterations=4, callback=lambda lv, it, loss, ddf: seen.append((lv, it)))
    assert seen == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]


def test_tolerance_stops_early():
    moving, fixed, _ = _translation_pair(2)
    kwargs = {"transform": "affine", "levels": 1, "iterations": 400}
    early = register_by_optimisation(moving, fixed, tolerance=1e-3, window=5, **kwargs)
    assert 5 < early.iterations < 400
    assert register_by_optimisation(moving, fixed, tolerance=0, **{**kwargs, "iterations": 30}).iterations == 30


def test_float64_and_dtype_preserved():
    moving, fixed, ddf_true = _translation_pair(2, dtype=torch.float64)
    result = register_by_optimisation(moving, fixed, transform="bspline", levels=(2, 1), iterations=(20, 10))
    assert result.ddf.dtype == torch.float64 and result.ddf.device == fixed.device
    assert result.final_loss <= result.initial_loss
    affine = register_by_optimisation(moving, fixed, transform="affine", levels=1, iterations=5)
    assert affine.theta.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    moving, fixed, ddf_true = _translation_pair(3)
    result = register_by_optimisation(moving.cuda(), fixed.cuda(), transform="bspline", iterations=(20, 10, 5))
    assert result.ddf.is_cuda


def test_batch_of_two_pairs():
    moving, fixed, _ = _translation_pair(2)
    moving2, fixed2 = torch.cat([moving, fixed]), torch.cat([fixed, moving])
    result = register_by_optimisation(moving2, fixed2, transform="bspline", levels=1, iterations=5)
    assert result.ddf.shape == (2, 2, *SIZES[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"moving": torch.rand(1, 1, 8, 8)}, r"expected the shape of fixed"),
        ({"moving": torch.rand(8, 8), "fixed": torch.rand(8, 8)}, r"got \(8, 8\)"),
        ({"moving": torch.ones(1, 1, 16, 16, dtype=torch.long)}, r"floating-point"),
        ({"transform": "rigid"}, r"expected one of .* got 'rigid'"),
        ({"levels": (4, 2), "iterations": (10, 10, 10)}, r"one value per level \(2\), got 3"),
        ({"levels": (0,)}, r"factors >= 1, got \(0,\)"),
        ({"init_ddf": torch.zeros(1, 3, 16, 16)}, r"expected shape .*\(1, 2, 16, 16\), got \(1, 3, 16, 16\)"),
        ({"control_point_spacing": 0}, r"control_point_spacing: expected an int >= 1, got 0"),
        ({"lr": -1.0}, r"lr: expected a value > 0"),
        ({"tolerance": -1.0}, r"tolerance >= 0"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    args = {"moving": torch.rand(1, 1, 16, 16), "fixed": torch.rand(1, 1, 16, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        register_by_optimisation(**args)


def test_instance_optimise_rejects_affine_and_missing_init():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="got 'affine'"):
        instance_optimise(x, x, torch.zeros(1, 2, 16, 16), transform="affine")
    with pytest.raises(ValueError, match="got None"):
        instance_optimise(x, x, None)


class _ZeroNet(torch.nn.Module):
    def forward(self, moving, fixed):
        return {"ddf": torch.zeros(moving.shape[0], 3, *moving.shape[2:], dtype=moving.dtype)}


def test_api_register_with_instance_optimisation():
    from monai_reg_ext.api import register

    moving, fixed, _ = _translation_pair(3)
    kwargs = {"network": _ZeroNet(), "spatial_size": (16, 16, 16), "device": "cpu"}
    alone = register(moving[0, 0].numpy(), fixed[0, 0].numpy(), **kwargs)
    assert "instance_optimisation_seconds" not in alone.metrics
    refined = register(moving[0, 0].numpy(), fixed[0, 0].numpy(), instance_optimisation=10, **kwargs)
    assert refined.metrics["instance_optimisation_seconds"] > 0
    assert refined.metrics["instance_optimisation_loss_final"] < refined.metrics["instance_optimisation_loss_initial"]
    assert refined.ddf.shape == (3, *SIZES[3]) and refined.ddf.abs().max() > 0.1
    with pytest.raises(ValueError, match="instance_optimisation must be an int >= 0, got -1"):
        register(moving[0, 0].numpy(), fixed[0, 0].numpy(), instance_optimisation=-1, **kwargs)


def test_cli_register_passes_instance_optimisation():
    from monai_reg_ext import cli

    assert inspect.signature(cli.register).parameters["instance_optimisation"].default == 0
