"""Deformation-quality metrics from the Jacobian determinant: folding fraction and SDlogJ."""

from __future__ import annotations

import torch

from ..spatial import jacobian_determinant
from ._utils import as_float_tensor, masked_mean, prepare_mask

__all__ = ["folding_fraction", "sd_log_jacobian", "jacobian_metrics", "LOG_JACOBIAN_CLIP"]

LOG_JACOBIAN_CLIP = 1e-9
"""Lower clip applied to the Jacobian determinant before the log in :func:`sd_log_jacobian`."""


def _jacobian(ddf: torch.Tensor) -> torch.Tensor:
    ddf = as_float_tensor(ddf, "ddf")
    return jacobian_determinant(ddf)  # (B, *S); checks the shape itself


def folding_fraction(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of voxels where the deformation folds (Jacobian determinant ``<= 0``).

    The Jacobian determinant of ``x -> x + ddf(x)`` comes from
    :func:`monai_reg_ext.jacobian_determinant` (unit-free, so the voxel DDF needs no spacing).

    Args:
        ddf: ``(B, D, *spatial)`` DDF in voxels of the fixed grid.
        mask: optional region ``(*S)``, ``(B, *S)`` or ``(B, 1, *S)``; values ``> 0.5`` are inside.

    Returns:
        ``(B,)`` fraction in ``[0, 1]`` (``nan`` for an empty mask). ``0`` for the identity.
    """
    jac = _jacobian(ddf)
    return _folding(jac, _mask(mask, jac))


def _mask(mask: torch.Tensor | None, jac: torch.Tensor) -> torch.Tensor | None:
    return None if mask is None else prepare_mask(mask, jac.shape[0], tuple(jac.shape[1:]), jac.device)


def _folding(jac: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    return masked_mean((jac <= 0).to(jac.dtype), m)


def _sd_log(jac: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    log_j = torch.log(jac.clamp_min(LOG_JACOBIAN_CLIP))
    mean = masked_mean(log_j, m)
    var = masked_mean((log_j - mean.reshape(-1, *([1] * (log_j.ndim - 1)))) ** 2, m)
    return var.sqrt()


def sd_log_jacobian(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Standard deviation of the log Jacobian determinant (SDlogJ), a smoothness measure.

    ``std(log(clip(J, 1e-9)))`` over the voxels (inside ``mask`` if given). The clip keeps folded voxels
    (``J <= 0``), whose log is undefined, finite: each counts as ``log(1e-9) ≈ -20.7``, so foldings raise SDlogJ
    strongly instead of giving ``nan``. The standard deviation is the population one (divides by ``N``).

    Args:
        ddf: ``(B, D, *spatial)`` DDF in voxels of the fixed grid.
        mask: optional region ``(*S)``, ``(B, *S)`` or ``(B, 1, *S)``; values ``> 0.5`` are inside.

    Returns:
        ``(B,)`` SDlogJ (unit-free). ``0`` for the identity and for any uniform scaling or rigid motion.
    """
    jac = _jacobian(ddf)
    return _sd_log(jac, _mask(mask, jac))


def jacobian_metrics(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """:func:`folding_fraction` and :func:`sd_log_jacobian` from one Jacobian determinant (half the cost of calling
    both): ``{"folding_fraction": (B,), "sd_log_jacobian": (B,)}``, same arguments and values."""
    jac = _jacobian(ddf)
    m = _mask(mask, jac)
    return {"folding_fraction": _folding(jac, m), "sd_log_jacobian": _sd_log(jac, m)}
