"""Tests of the deformation regularisers (affine/constant fields, analytic spacing values, MONAI parity)."""

from __future__ import annotations

import warnings

import pytest
import torch
from monai.losses import BendingEnergyLoss as MonaiBendingEnergyLoss
from monai.losses import DiffusionLoss

from monai_reg_ext.losses import BendingEnergyLoss, GradientNormLoss

SIZES = [(6, 7), (5, 6, 7)]
SPACINGS = {2: (0.5, 2.0), 3: (0.5, 2.0, 1.5)}


def _grid(size: tuple[int, ...]) -> torch.Tensor:
    """Voxel index grid ``(D, *size)`` in float64."""
    axes = [torch.arange(s, dtype=torch.float64) for s in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def _affine_ddf(size: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    nd = len(size)
    grid = _grid(size)
    mats = torch.randn(batch, nd, nd, dtype=torch.float64)
    shifts = torch.randn(batch, nd, dtype=torch.float64)
    return torch.einsum("bij,j...->bi...", mats, grid) + shifts.view(batch, nd, *([1] * nd))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("with_spacing", [False, True])
def test_bending_energy_of_affine_is_zero(size, with_spacing):
    torch.manual_seed(0)
    spacing = SPACINGS[len(size)] if with_spacing else None
    ddf = _affine_ddf(size)
    assert BendingEnergyLoss(spacing=spacing)(ddf).item() == pytest.approx(0.0, abs=1e-10)
    assert torch.allclose(BendingEnergyLoss(spacing=spacing, reduction="none")(ddf), torch.zeros(2, dtype=ddf.dtype))


@pytest.mark.parametrize("size", SIZES)
def test_bending_energy_matches_monai_and_unit_spacing(size):
    torch.manual_seed(1)
    ddf = torch.randn(2, len(size), *size, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = MonaiBendingEnergyLoss()(ddf)
    assert BendingEnergyLoss()(ddf).item() == pytest.approx(expected.item(), rel=1e-12)
    unit = BendingEnergyLoss(spacing=[1.0] * len(size))(ddf)
    assert unit.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regulariser_gradients_match_monai(size, dtype):
    """The hand-written adjoint stencils (losses/_stencil.py) give MONAI's autograd gradient, per voxel, also for a
    non-contiguous batch of several samples and the per-sample (``reduction="none"``) weighting."""
    torch.manual_seed(4)
    nd = len(size)
    base = torch.randn(2, nd, *size, dtype=dtype).transpose(0, 1).contiguous().transpose(0, 1)  # non-contiguous
    weights = torch.tensor([0.3, 1.7], dtype=dtype)
    rtol = 1e-10 if dtype == torch.float64 else 1e-4
    for ours, reference in (
        (BendingEnergyLoss(reduction="none"), MonaiBendingEnergyLoss(reduction="none")),
        (GradientNormLoss(reduction="none"), DiffusionLoss(reduction="none")),
    ):
        x = base.clone().requires_grad_(True)
        y = base.clone().requires_grad_(True)
        (ours(x) * weights).sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = reference(y).flatten(1).mean(dim=1)
        (ref * weights).sum().backward()
        scale = y.grad.abs().max()
        assert torch.allclose(x.grad, y.grad, rtol=0, atol=rtol * float(scale)), type(ours).__name__


@pytest.mark.parametrize("size", SIZES)
def test_bending_energy_spacing_analytic(size):
    nd = len(size)
    spacing = SPACINGS[nd]
    grid = _grid(size)
    c = 0.3
    # u_0 = c i^2 (voxels): in mm u_0 = c s_0 i^2 = c x_0^2 / s_0, so d2u_0/dx_0^2 = 2 c / s_0
    ddf = torch.zeros(1, nd, *size, dtype=torch.float64)
    ddf[:, 0] = c * grid[0] ** 2
    expected = (2 * c / spacing[0]) ** 2 / nd
    assert BendingEnergyLoss(spacing=spacing)(ddf).item() == pytest.approx(expected, rel=1e-10)
    assert BendingEnergyLoss()(ddf).item() == pytest.approx((2 * c) ** 2 / nd, rel=1e-10)
    # u_0 = c j^2: d2u_0/dx_1^2 = 2 c s_0 / s_1^2
    ddf = torch.zeros(1, nd, *size, dtype=torch.float64)
    ddf[:, 0] = c * grid[1] ** 2
    expected = (2 * c * spacing[0] / spacing[1] ** 2) ** 2 / nd
    assert BendingEnergyLoss(spacing=spacing)(ddf).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("l1", [False, True])
@pytest.mark.parametrize("with_spacing", [False, True])
def test_gradient_norm_of_constant_is_zero(size, l1, with_spacing):
    spacing = SPACINGS[len(size)] if with_spacing else None
    ddf = torch.ones(3, len(size), *size)
    loss = GradientNormLoss(l1=l1, spacing=spacing, reduction="none")(ddf)
    assert loss.shape == (3,)
    assert torch.equal(loss, torch.zeros(3))
    assert BendingEnergyLoss(spacing=spacing)(ddf).item() == 0.0


@pytest.mark.parametrize("size", SIZES)
def test_gradient_norm_ramp_with_spacing(size):
    nd = len(size)
    spacing = SPACINGS[nd]
    grid = _grid(size)
    a = 0.7
    # ramp of component 0 along its own axis (uniform strain): a per voxel = a per mm, spacing-invariant
    ddf = torch.zeros(1, nd, *size, dtype=torch.float64)
    ddf[:, 0] = a * grid[0]
    for spacing_ in (None, spacing):
        assert GradientNormLoss(spacing=spacing_)(ddf).item() == pytest.approx(a**2 / nd, rel=1e-12)
        assert GradientNormLoss(l1=True, spacing=spacing_)(ddf).item() == pytest.approx(a / nd, rel=1e-12)
    # shear ramp u_0 = a j: du_0/dx_1 = a s_0 / s_1 (mm/mm)
    ddf = torch.zeros(1, nd, *size, dtype=torch.float64)
    ddf[:, 0] = a * grid[1]
    assert GradientNormLoss()(ddf).item() == pytest.approx(a**2 / nd, rel=1e-12)
    expected = (a * spacing[0] / spacing[1]) ** 2 / nd
    assert GradientNormLoss(spacing=spacing)(ddf).item() == pytest.approx(expected, rel=1e-12)
    expected_l1 = a * spacing[0] / spacing[1] / nd
    assert GradientNormLoss(l1=True, spacing=spacing)(ddf).item() == pytest.approx(expected_l1, rel=1e-12)


@pytest.mark.parametrize("size", SIZES)
def test_gradient_norm_matches_monai_diffusion(size):
    torch.manual_seed(2)
    ddf = torch.randn(2, len(size), *size, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = DiffusionLoss()(ddf.clone())
    assert GradientNormLoss()(ddf).item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradcheck():
    torch.manual_seed(3)
    for size in ((4, 3), (3, 4, 3)):
        ddf = torch.randn(1, len(size), *size, dtype=torch.float64, requires_grad=True)
        spacing = SPACINGS[len(size)]
        for loss in (
            BendingEnergyLoss(),
            BendingEnergyLoss(spacing=spacing),
            GradientNormLoss(),
            GradientNormLoss(l1=True),
            GradientNormLoss(spacing=spacing),
        ):
            assert torch.autograd.gradcheck(loss, (ddf,)), loss


def test_no_monai_indexing_warnings():
    ddf = torch.randn(1, 3, 4, 4, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BendingEnergyLoss()(ddf)
        BendingEnergyLoss(spacing=(1.0, 2.0, 3.0))(ddf)
        GradientNormLoss(spacing=(1.0, 2.0, 3.0))(ddf)
    assert not [w for w in caught if "non-tuple" in str(w.message)]


@pytest.mark.parametrize("loss_cls", [BendingEnergyLoss, GradientNormLoss])
def test_errors(loss_cls):
    with pytest.raises(ValueError, match="4 or 5 dims"):
        loss_cls()(torch.rand(1, 1, 5))
    with pytest.raises(ValueError, match="expected 3 DDF channels"):
        loss_cls()(torch.rand(1, 2, 5, 5, 5))
    with pytest.raises(ValueError, match="spatial size > 2"):
        loss_cls()(torch.rand(1, 2, 5, 2))
    with pytest.raises(ValueError, match="expected spacing of length 2"):
        loss_cls(spacing=(1.0, 1.0, 1.0))(torch.rand(1, 2, 5, 5))
    with pytest.raises(ValueError, match="positive"):
        loss_cls(spacing=(1.0, -1.0))


def test_bending_normalize_with_spacing_error():
    with pytest.raises(ValueError, match="normalize"):
        BendingEnergyLoss(spacing=(1.0, 1.0), normalize=True)
