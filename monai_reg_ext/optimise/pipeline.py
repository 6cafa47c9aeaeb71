"""The bundle-free registration pipeline: initial alignment -> affine (12 dof in 3D) -> deformable, coarse to fine.

Each stage is :func:`~monai_reg_ext.optimise.register_by_optimisation`; the deformable stage starts from the affine
field, so the returned DDF includes the affine part. Defaults and the measurements behind them:
``docs/optimisation.md``. Fields follow ``docs/conventions.md`` (``(B, D, *S)`` fixed voxels, pull).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from ..losses import similarity_loss
from ..spatial import affine_to_ddf, identity_grid
from .engine import Callback, OptimisationResult, register_by_optimisation
from .initial import initial_translation

__all__ = [
    "STAGES",
    "SIMILARITY_REG_WEIGHT",
    "MIN_OVERLAP",
    "PipelineResult",
    "register_images",
    "normalise_intensity",
    "overlap_fraction",
]

STAGES: tuple[str, ...] = ("affine", "deformable")
"""Stages of the pipeline, in the order they run."""

SIMILARITY_REG_WEIGHT: dict[str, float] = {"lncc": 2.0, "mi": 2.0, "mind": 2.0, "ngf": 2.0, "ssd": 2.0}
"""Default bending-energy weight of the deformable stage per similarity (``docs/optimisation.md``)."""

Loss = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


@dataclass
class PipelineResult:
    """What :func:`register_images` returns.

    Attributes:
        ddf: ``(B, D, *S_fixed)`` total displacement (affine and deformable) in fixed voxels, pull.
        theta: ``(B, D, D + 1)`` the affine part (initial translation included) on fixed voxel indices, origin at
            voxel 0, or None when no affine stage ran.
        stages: the :class:`~monai_reg_ext.optimise.OptimisationResult` of each stage that ran, by name.
        seconds: wall time per step (``initial``, ``affine``, ``deformable``) and ``total``.
    """

    ddf: torch.Tensor
    theta: torch.Tensor | None = None
    stages: dict[str, OptimisationResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def normalise_intensity(image: torch.Tensor, lower: float = 0.5, upper: float = 99.5) -> torch.Tensor:
    """Scale ``image`` ``(B, C, *S)`` to [0, 1] between its ``lower`` and ``upper`` percentiles (clipped).

    Robust to a few extreme voxels (metal in CT, bright vessels in MR) where a min-max scaling would squeeze the
    tissue intensities into a few percent of the range. Percentiles are taken over at most ~1M voxels (strided).
    """
    out = torch.empty_like(image, dtype=torch.float32)
    for b in range(image.shape[0]):
        flat = image[b].detach().flatten().cpu().numpy()
        sample = flat[:: max(1, flat.size // 1_000_000)]
        lo, hi = np.percentile(sample, [lower, upper])
        if hi <= lo:
            lo, hi = float(sample.min()), float(sample.max())
        scale = 1.0 / (hi - lo) if hi > lo else 0.0
        out[b] = ((image[b].float() - float(lo)) * scale).clamp(0.0, 1.0)
    return out


MIN_OVERLAP = 0.1
"""Smallest fraction of the fixed grid that must sample inside the moving image after the initial alignment."""


def overlap_fraction(ddf: torch.Tensor, moving_size: Sequence[int], fixed_to_moving: torch.Tensor | None) -> float:
    """Fraction of the fixed voxels whose position ``p + ddf(p)`` falls inside the moving grid.

    Args:
        ddf: ``(B, D, *S_fixed)`` fixed voxels.
        moving_size: spatial shape of the moving image.
        fixed_to_moving: ``(D + 1, D + 1)`` fixed voxel -> moving voxel map, or None (same grid).
    """
    ndim = ddf.shape[1]
    points = identity_grid(ddf.shape[2:], device=ddf.device, dtype=torch.float64).unsqueeze(0) + ddf.double()
    if fixed_to_moving is not None:
        m = fixed_to_moving.to(device=ddf.device, dtype=torch.float64)
        m = m if m.ndim == 3 else m.unsqueeze(0)
        points = torch.einsum("bij,bj...->bi...", m[:, :ndim, :ndim], points)
        points = points + m[:, :ndim, ndim].view(-1, ndim, *([1] * ndim))
    upper = torch.tensor([s - 1 for s in moving_size], dtype=torch.float64, device=ddf.device)
    inside = ((points >= -0.5) & (points <= upper.view(1, ndim, *([1] * ndim)) + 0.5)).all(dim=1)
    return float(inside.double().mean())


def _check_overlap(init: torch.Tensor, moving_size: Sequence[int], fixed_to_moving: torch.Tensor | None) -> None:
    fraction = overlap_fraction(init, moving_size, fixed_to_moving)
    if fraction < MIN_OVERLAP:
        raise ValueError(
            f"moving and fixed images do not overlap in world space: after the initial alignment only "
            f"{100 * fraction:.1f} % of the fixed grid lies inside the moving image (expected >= "
            f"{100 * MIN_OVERLAP:.0f} %); check both headers' affines (origin, spacing, orientation)."
        )


_PER_VOXEL = ("lncc", "mind")
"""Similarities computed per voxel, averaged by the engine over the voxels that sample inside the moving image."""


def _loss(similarity: Loss, ndim: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if not isinstance(similarity, str):
        return similarity
    if similarity.strip().lower() in _PER_VOXEL:
        return similarity_loss(similarity, ndim, reduction="none")
    return similarity_loss(similarity, ndim)


def _check_stages(stages: Sequence[str] | str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in stages.split(",")) if isinstance(stages, str) else tuple(stages)
    if not names or any(s not in STAGES for s in names) or len(set(names)) != len(names):
        raise ValueError(f"stages: expected a non-empty subset of {STAGES} (e.g. 'affine,deformable'), got {stages!r}.")
    return tuple(s for s in STAGES if s in names)


def register_images(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    fixed_to_moving: torch.Tensor | None = None,
    stages: Sequence[str] | str = STAGES,
    similarity: Loss = "lncc",
    initialisation: str = "moments",
    affine_levels: Sequence[int] = (4, 2),
    affine_iterations: Sequence[int] = (100, 50),
    affine_lr: float | Sequence[float] | None = None,
    transform: str = "bspline",
    levels: Sequence[int] = (4, 2, 1),
    iterations: Sequence[int] = (100, 50, 20),
    lr: float | Sequence[float] | None = None,
    control_point_spacing: int = 4,
    reg_weight: float | None = None,
    init_ddf: torch.Tensor | None = None,
    tolerance: float = 1e-5,
    callback: Callback | None = None,
    check_overlap: bool = True,
) -> PipelineResult:
    """Register ``moving`` to ``fixed`` without a network: initial alignment, affine, then deformable.

    Args:
        moving: ``(B, 1, *S_moving)`` intensities scaled to [0, 1] (:func:`normalise_intensity`); on the fixed grid
            when ``fixed_to_moving`` is None, else on its own grid.
        fixed: ``(B, 1, *S_fixed)`` scaled the same way.
        fixed_to_moving: ``(D + 1, D + 1)`` map from fixed voxel indices to moving voxel indices
            (``inv(A_moving) @ A_fixed``) or None.
        stages: ``("affine", "deformable")``, ``"affine"`` or ``"deformable"`` (a comma-separated string works too).
        similarity: ``"lncc"`` (mono-modal, default), ``"mi"`` (Parzen-window mutual information), ``"mind"``
            (MIND-SSC descriptors), ``"ngf"``, ``"ssd"``, or a loss ``(warped, fixed) -> scalar``.
        initialisation: ``"moments"`` (centres of mass), ``"centres"`` (grid centres) or ``"none"``; used when
            ``init_ddf`` is None.
        affine_levels, affine_iterations: schedule of the affine stage (downsampling factors, Adam steps).
        affine_lr: Adam learning rate of the affine stage (normalised units), one value or one per level.
        transform: deformable model, ``"bspline"`` (control points), ``"ddf"`` (dense) or ``"dvf"``
            (diffeomorphic, stationary velocity).
        levels, iterations: schedule of the deformable stage.
        lr: Adam learning rate of the deformable stage (level voxels), one value or one per level; default 0.1.
        control_point_spacing: control points every this many level voxels (``"bspline"``).
        reg_weight: bending-energy weight; default :data:`SIMILARITY_REG_WEIGHT` of the similarity.
        init_ddf: ``(B, D, *S_fixed)`` starting field (e.g. a network's prediction) in fixed voxels; replaces the
            initial alignment (the affine stage then refines on top of it).
        tolerance: relative loss change over 10 iterations that ends a level early.
        callback: ``callback(level, iteration, loss, ddf)`` at every iteration of every stage (progress bars).
        check_overlap: refuse a pair whose images overlap on less than :data:`MIN_OVERLAP` of the fixed grid after
            the initial alignment (in world space: images far apart, or a wrong affine in a header).

    Returns:
        :class:`PipelineResult`.

    Raises:
        ValueError: for unknown stages, similarity, transform or bad shapes.
    """
    names = _check_stages(stages)
    if transform not in ("bspline", "ddf", "dvf"):
        raise ValueError(f"transform: expected 'bspline', 'ddf' or 'dvf' for the deformable stage, got {transform!r}.")
    ndim = fixed.ndim - 2
    loss = _loss(similarity, ndim)
    if reg_weight is None:
        reg_weight = SIMILARITY_REG_WEIGHT.get(similarity, 2.0) if isinstance(similarity, str) else 2.0
    start = time.perf_counter()
    result = PipelineResult(ddf=torch.zeros(fixed.shape[0], ndim, *fixed.shape[2:], dtype=fixed.dtype))
    if init_ddf is None:
        shift = initial_translation(moving, fixed, fixed_to_moving, initialisation)  # (B, D) fixed voxels
        init = shift.view(*shift.shape, *([1] * ndim)).expand(-1, -1, *fixed.shape[2:]).contiguous()
    else:
        shift, init = None, init_ddf.to(device=fixed.device, dtype=fixed.dtype)
    if check_overlap:
        _check_overlap(init, moving.shape[2:], fixed_to_moving)
    result.seconds["initial"] = time.perf_counter() - start
    common = {"fixed_to_moving": fixed_to_moving, "tolerance": tolerance, "callback": callback}
    if "affine" in names:
        t0 = time.perf_counter()
        aff = register_by_optimisation(
            moving, fixed, "affine", image_loss=loss, levels=affine_levels, iterations=affine_iterations,
            lr=affine_lr, init_ddf=init, **common,
        )  # fmt: skip
        result.stages["affine"] = aff
        assert aff.theta is not None
        if shift is not None:
            result.theta = aff.theta.clone()
            result.theta[..., -1] += shift
            init = affine_to_ddf(result.theta, fixed.shape[2:])
        else:
            init = aff.ddf
        result.seconds["affine"] = time.perf_counter() - t0
    elif shift is not None and bool(shift.abs().gt(0).any()):
        eye = torch.eye(ndim, dtype=fixed.dtype, device=fixed.device).expand(fixed.shape[0], ndim, ndim)
        result.theta = torch.cat([eye, shift.unsqueeze(-1)], dim=-1)
    if "deformable" in names:
        t0 = time.perf_counter()
        dfm = register_by_optimisation(
            moving, fixed, transform, image_loss=loss, reg_weight=reg_weight, levels=levels, iterations=iterations,
            lr=lr, control_point_spacing=control_point_spacing, init_ddf=init, **common,
        )  # fmt: skip
        result.stages["deformable"] = dfm
        init = dfm.ddf
        result.seconds["deformable"] = time.perf_counter() - t0
    result.ddf = init.detach()
    result.seconds["total"] = time.perf_counter() - start
    return result
