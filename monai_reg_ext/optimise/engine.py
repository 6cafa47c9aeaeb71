"""Registration by direct optimisation, and instance optimisation of a network's DDF.

:func:`register_by_optimisation` registers one pair (or a batch of pairs) without a network, by optimising an affine
matrix, a dense displacement field (DDF), a stationary velocity field (DVF) or a coarse control-point grid with the
toolkit's image losses and regularisers, coarse to fine. :func:`instance_optimise` refines a given DDF (a network's
prediction) the same way ("instance optimisation", as the best Learn2Reg entries do after their network).

Every field follows ``docs/conventions.md``: ``(B, D, *S)`` on the fixed grid, in fixed voxels, channel ``k`` along
array axis ``k``, pull semantics ``warped(x) = moving(x + ddf(x))``; ``theta`` is ``(B, D, D + 1)`` on voxel indices
with the origin at voxel 0. Measured schedules: ``docs/optimisation.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Literal, Union

import torch

from ..losses import BendingEnergyLoss, FastLNCCLoss
from ..spatial import affine_to_ddf, resize_ddf
from .models import TRANSFORMS, TransformModel, total_ddf
from .pyramid import LevelPair, make_level

__all__ = ["OptimisationResult", "register_by_optimisation", "instance_optimise", "TRANSFORMS"]

Transform = Literal["affine", "ddf", "dvf", "bspline"]

ImageLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Regulariser = Callable[[torch.Tensor], torch.Tensor]
IntOrSeq = Union[int, Sequence[int]]
Callback = Callable[[int, int, float, torch.Tensor], None]

_DEFAULT_LR = {"affine": 0.01, "ddf": 0.1, "dvf": 0.1, "bspline": 0.1}
_DEFAULT_REG_WEIGHT = 2.0


@dataclass
class OptimisationResult:
    """What :func:`register_by_optimisation` and :func:`instance_optimise` return.

    Attributes:
        ddf: ``(B, D, *S)`` in voxels of the fixed grid (pull; ``docs/conventions.md``), detached.
        theta: ``(B, D, D + 1)`` affine ``[A | t]`` on voxel indices, origin at voxel 0 (``transform="affine"``
            only, else None). ``ddf == affine_to_ddf(theta, S)`` (plus ``init_ddf`` when one is given).
        loss_curve: total loss (image + weighted regulariser) at every iteration, all levels in order; values of
            different levels are computed on different grids and are not comparable with each other.
        level_iterations: iterations run at each level (fewer than asked when the tolerance stopped a level).
        iterations: total iterations run.
        seconds: wall time of the optimisation.
        initial_loss: loss of the starting transform at the finest level.
        final_loss: loss of the returned transform at the finest level (the best seen there, so ``<= initial_loss``).
    """

    ddf: torch.Tensor
    theta: torch.Tensor | None = None
    loss_curve: list[float] = field(default_factory=list)
    level_iterations: list[int] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    initial_loss: float = float("nan")
    final_loss: float = float("nan")


# --------------------------------------------------------------------------------------------------------- checks
def _as_tuple(value: IntOrSeq, name: str, n: int | None = None) -> tuple[int, ...]:
    values = (value,) if isinstance(value, (int, float)) else tuple(value)
    if not values or any(int(v) != v for v in values):
        raise ValueError(f"{name}: expected an int or a non-empty sequence of ints, got {value!r}.")
    values = tuple(int(v) for v in values)
    if n is not None and len(values) == 1 and n > 1:
        values = values * n
    if n is not None and len(values) != n:
        raise ValueError(f"{name}: expected one value per level ({n}), got {len(values)}: {value!r}.")
    return values


def _check_inputs(
    moving: torch.Tensor, fixed: torch.Tensor, init_ddf: torch.Tensor | None, fixed_to_moving: torch.Tensor | None
) -> int:
    for name, x in (("moving", moving), ("fixed", fixed)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor (B, C, *S), got {type(x).__name__}.")
        if x.ndim not in (4, 5):
            raise ValueError(
                f"{name}: expected shape (B, C, H, W) or (B, C, H, W, Z) (4 or 5 dims), got {tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}.")
    ndim = fixed.ndim - 2
    if fixed_to_moving is None and moving.shape != fixed.shape:
        raise ValueError(f"moving: expected the shape of fixed {tuple(fixed.shape)}, got {tuple(moving.shape)}.")
    if fixed_to_moving is not None:
        if moving.shape[:2] != fixed.shape[:2] or moving.ndim != fixed.ndim:
            raise ValueError(
                f"moving: expected (B, C) = {tuple(fixed.shape[:2])} and {ndim} spatial dims like fixed, "
                f"got {tuple(moving.shape)}."
            )
        if not isinstance(fixed_to_moving, torch.Tensor) or tuple(fixed_to_moving.shape[-2:]) != (ndim + 1, ndim + 1):
            got = tuple(fixed_to_moving.shape) if isinstance(fixed_to_moving, torch.Tensor) else fixed_to_moving
            raise ValueError(f"fixed_to_moving: expected a ({ndim + 1}, {ndim + 1}) matrix, got {got}.")
    if init_ddf is not None:
        expected = (fixed.shape[0], ndim, *fixed.shape[2:])
        if not isinstance(init_ddf, torch.Tensor) or tuple(init_ddf.shape) != expected:
            got = tuple(init_ddf.shape) if isinstance(init_ddf, torch.Tensor) else type(init_ddf).__name__
            raise ValueError(f"init_ddf: expected shape (B, D, *S) = {expected}, got {got}.")
    return ndim


def _check_options(transform: str, levels: IntOrSeq, iterations: IntOrSeq, spacing: int, tolerance: float, window: int):
    if transform not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, got {transform!r}.")
    factors = _as_tuple(levels, "levels")
    if any(f < 1 for f in factors):
        raise ValueError(f"levels: expected downsampling factors >= 1, got {factors}.")
    n_iter = _as_tuple(iterations, "iterations", len(factors))
    if any(n < 0 for n in n_iter):
        raise ValueError(f"iterations: expected values >= 0, got {n_iter}.")
    if int(spacing) < 1:
        raise ValueError(f"control_point_spacing: expected an int >= 1, got {spacing}.")
    if tolerance < 0 or int(window) < 1:
        raise ValueError(f"tolerance, window: expected tolerance >= 0 and window >= 1, got {tolerance}, {window}.")
    return factors, n_iter


@dataclass
class _Objective:
    """Loss of the model's total DDF on one level: ``image_loss(warp(moving, ddf), fixed) + w * regulariser(ddf)``."""

    model: TransformModel
    pair: LevelPair
    init: torch.Tensor | None
    image_loss: ImageLoss
    regulariser: Regulariser | None
    reg_weight: float

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        ddf = total_ddf(self.model, self.init)
        warped, grid = self.pair.warp(ddf)
        loss = self.image_loss(warped, self.pair.fixed)
        if loss.ndim > 0:  # a per-voxel loss map: average over the voxels that sample inside the moving image
            inside = self.pair.inside(ddf, grid).expand_as(loss)
            loss = (loss * inside).sum() / inside.sum().clamp_min(1.0)
        if self.regulariser is not None and self.reg_weight > 0:
            loss = loss + self.reg_weight * self.regulariser(ddf)
        return loss, ddf


@dataclass
class _Best:
    """The best parameters seen at the finest level."""

    loss: float = float("nan")
    ddf: torch.Tensor | None = None
    theta: torch.Tensor | None = None

    def update(self, value: float, ddf: torch.Tensor, model: TransformModel, size: tuple[int, ...]) -> None:
        if self.ddf is None or value < self.loss:
            self.loss, self.ddf, self.theta = value, ddf.detach().clone(), model.theta(size)


def _run_level(
    objective: _Objective,
    n: int,
    lr: float,
    tolerance: float,
    window: int,
    level: int,
    best: _Best | None,
    size: tuple[int, ...],
    callback: Callback | None,
) -> list[float]:
    """Adam on one level; at the finest level (``best`` given) every scored parameter set competes for the best."""
    model = objective.model
    optimiser = torch.optim.Adam(model.params, lr=float(lr))
    curve: list[float] = []
    for _ in range(n):
        optimiser.zero_grad(set_to_none=True)
        loss, ddf = objective()
        value = float(loss.detach())
        curve.append(value)
        if callback is not None:
            callback(level, len(curve) - 1, value, ddf.detach())
        if best is not None:
            best.update(value, ddf, model, size)
        loss.backward()
        optimiser.step()
        k = len(curve) - 1 - int(window)
        if tolerance > 0 and k >= 0 and abs(curve[k] - value) <= tolerance * abs(curve[k]):
            break
    if best is not None:  # score the parameters after the last step too, and keep the best
        with torch.no_grad():
            loss, ddf = objective()
        if callback is not None:
            callback(level, len(curve), float(loss), ddf.detach())
        best.update(float(loss), ddf, model, size)
    return curve


# ---------------------------------------------------------------------------------------------------------- main
def register_by_optimisation(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    transform: Transform = "bspline",
    image_loss: ImageLoss | None = None,
    regulariser: Regulariser | None = None,
    reg_weight: float | None = None,
    levels: IntOrSeq = (4, 2, 1),
    iterations: IntOrSeq = (100, 50, 20),
    lr: float | Sequence[float] | None = None,
    control_point_spacing: int = 4,
    init_ddf: torch.Tensor | None = None,
    tolerance: float = 1e-5,
    window: int = 10,
    callback: Callback | None = None,
    fixed_to_moving: torch.Tensor | None = None,
) -> OptimisationResult:
    """Register ``moving`` to ``fixed`` by optimising a transformation with Adam, coarse to fine.

    At each level (downsampling factor ``f``, coarse to fine) both images are Gaussian-smoothed (sigma ``f / 2``
    voxels) and resampled to ``round((S - 1) / f) + 1`` voxels per axis (at least 8; same field of view,
    ``align_corners=True``); the loss ``image_loss(warp_image(moving, ddf), fixed) + reg_weight * regulariser(ddf)``
    is minimised there, with ``ddf`` in that level's voxels (so the regulariser is in level voxels too). The next
    level starts from the previous result, resampled (:func:`~monai_reg_ext.resize_ddf`).

    Transformation models:

    - ``"affine"``: ``theta`` optimised in normalised coordinates centred on the grid (``[-1, 1]`` along each axis,
      better conditioned than voxel indices), returned as ``theta`` in the project's convention (voxel indices, origin
      at voxel 0), and its DDF via :func:`~monai_reg_ext.affine_to_ddf`. No regulariser by default.
    - ``"ddf"``: a dense displacement per voxel of the level grid.
    - ``"dvf"``: a dense stationary velocity, integrated by scaling and squaring (:func:`~monai_reg_ext.dvf_to_ddf`).
    - ``"bspline"``: displacements on a control grid every ``control_point_spacing`` level voxels, upsampled by
      **linear** (bilinear/trilinear) interpolation, i.e. a first-order B-spline (not the cubic B-spline of elastix).
      The measured winner (``docs/optimisation.md``): spacing 4, levels ``(4, 2, 1)``.

    Args:
        moving: moving image ``(B, C, H, W[, Z])``, float (any device and floating dtype; the fixed one's).
        fixed: fixed image, same shape.
        transform: one of :data:`TRANSFORMS`.
        image_loss: ``(warped, fixed) -> scalar`` to minimise, or a per-voxel map ``(B, C, *S)`` (e.g. a loss with
            ``reduction="none"``), which is then averaged over the fixed voxels that sample inside the moving image
            only (no penalty from the padding outside the moving field of view); default
            :class:`~monai_reg_ext.losses.FastLNCCLoss` ``(spatial_dims=D, kernel_size=7)`` (MONAI's LNCC, faster).
        regulariser: ``ddf -> scalar``; default :class:`~monai_reg_ext.losses.BendingEnergyLoss` (voxels) for the
            non-affine models, none for ``"affine"``.
        reg_weight: weight of the regulariser; default 2.0 (0 for ``"affine"``).
        levels: downsampling factors, coarse to fine (``(4, 2, 1)``), or one factor (``1``: full resolution only).
        iterations: Adam iterations per level (one int is used at every level).
        lr: Adam learning rate, one value or one per level; default 0.01 for ``"affine"`` (normalised units), 0.1
            (level voxels) otherwise.
        control_point_spacing: control-point spacing in level voxels (``"bspline"`` only), ``>= 1``.
        init_ddf: starting displacement ``(B, D, *S)`` in fixed voxels; the model optimises a residual added to it
            (composed after it for ``"dvf"``), starting from zero. None: the identity.
        tolerance: a level stops when ``|L[i - window] - L[i]| <= tolerance * |L[i - window]|``; 0 disables.
        window: iterations over which the relative change is measured.
        callback: called as ``callback(level, iteration, loss, ddf)`` at every iteration (before its step) and once
            after the last step of the finest level (``iteration`` = the number of steps run there), with the loss
            of the current parameters and their DDF ``(B, D, *level)`` (detached, level voxels). For monitoring;
            it must not modify ``ddf``.
        fixed_to_moving: ``(D + 1, D + 1)`` (or ``(B, D + 1, D + 1)``) map from fixed voxel indices to moving voxel
            indices (``inv(A_moving) @ A_fixed``) when the moving image is on a grid of its own (any shape); the
            moving image is then sampled at ``M (p + ddf(p))`` and never cropped to the fixed field of view. None:
            the moving image is on the fixed grid (same shape).

    Returns:
        :class:`OptimisationResult`. At the finest level the best parameters seen are kept, so
        ``final_loss <= initial_loss``.

    Raises:
        ValueError: on bad shapes or options (the message gives expected vs got).
    """
    ndim = _check_inputs(moving, fixed, init_ddf, fixed_to_moving)
    factors, n_iter = _check_options(transform, levels, iterations, control_point_spacing, tolerance, window)
    if image_loss is None:
        image_loss = FastLNCCLoss(spatial_dims=ndim, kernel_size=7)
    if reg_weight is None:
        reg_weight = 0.0 if transform == "affine" else _DEFAULT_REG_WEIGHT
    if reg_weight < 0:
        raise ValueError(f"reg_weight: expected >= 0, got {reg_weight}.")
    if regulariser is None and transform != "affine":
        regulariser = BendingEnergyLoss()
    lr = _DEFAULT_LR[transform] if lr is None else lr
    rates = (float(lr),) * len(factors) if isinstance(lr, (int, float)) else tuple(float(v) for v in lr)
    if len(rates) != len(factors) or any(r <= 0 for r in rates):
        raise ValueError(f"lr: expected a value > 0 or one per level ({len(factors)}), got {lr!r}.")

    start = time.perf_counter()
    size = tuple(int(s) for s in fixed.shape[2:])
    moving, fixed = moving.detach(), fixed.detach()
    init = None if init_ddf is None else init_ddf.detach().to(device=fixed.device, dtype=fixed.dtype)
    model = TransformModel(transform, fixed.shape[0], ndim, fixed.device, fixed.dtype, int(control_point_spacing))
    curve: list[float] = []
    done: list[int] = []
    carried: torch.Tensor | None = None
    best = _Best()
    initial_loss = float("nan")
    for li, (factor, n) in enumerate(zip(factors, n_iter)):
        last = li == len(factors) - 1
        pair = make_level(moving, fixed, factor, fixed_to_moving)
        with torch.no_grad():
            init_l = None if init is None else resize_ddf(init, pair.size)
        model.start_level(pair.size, carried)
        objective = _Objective(model, pair, init_l, image_loss, regulariser, float(reg_weight))
        level_curve = _run_level(objective, n, rates[li], tolerance, window, li, best if last else None, size, callback)
        if last:
            initial_loss = level_curve[0] if level_curve else best.loss
        curve.extend(level_curve)
        done.append(len(level_curve))
        carried = model.carry()
    best_ddf = best.ddf
    assert best_ddf is not None
    if tuple(best_ddf.shape[2:]) != size:  # the finest level is coarser than the image (levels without 1)
        best_ddf = resize_ddf(best_ddf, size)
    if best.theta is not None and tuple(model.size or ()) != size:  # exact affine field on the full grid
        best_ddf = affine_to_ddf(best.theta, size) + (0 if init is None else init)
    if fixed.device.type == "cuda":
        torch.cuda.synchronize(fixed.device)
    return OptimisationResult(
        ddf=best_ddf.detach(),
        theta=best.theta,
        loss_curve=curve,
        level_iterations=done,
        iterations=sum(done),
        seconds=time.perf_counter() - start,
        initial_loss=initial_loss,
        final_loss=best.loss,
    )


def instance_optimise(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    ddf_init: torch.Tensor,
    iterations: IntOrSeq = 50,
    transform: Transform = "bspline",
    image_loss: ImageLoss | None = None,
    regulariser: Regulariser | None = None,
    reg_weight: float | None = None,
    levels: IntOrSeq = 1,
    lr: float | None = None,
    control_point_spacing: int = 4,
    tolerance: float = 0.0,
    window: int = 10,
    callback: Callback | None = None,
) -> OptimisationResult:
    """Refine a DDF (a network's prediction) on one pair: "instance optimisation".

    The DDF is ``ddf_init + residual`` (``"dvf"``: the residual composed after ``ddf_init``), the residual starting
    at zero on a control grid every ``control_point_spacing`` voxels (``"bspline"``, default) or dense (``"ddf"``,
    ``"dvf"``), optimised for ``iterations`` Adam steps at full resolution by default. The loss is the one
    :func:`register_by_optimisation` minimises (image loss of the warped moving image + weighted regulariser of the
    **total** DDF); the best parameters seen are returned, so the loss never ends above its value at ``ddf_init``.

    Args:
        moving, fixed: ``(B, C, H, W[, Z])`` on one grid, e.g. the network's grid and intensities.
        ddf_init: ``(B, D, *S)`` starting DDF in voxels of that grid.
        iterations: Adam steps (per level when ``levels`` has several factors); 0 returns ``ddf_init``.
        transform, image_loss, regulariser, reg_weight, levels, lr, control_point_spacing, tolerance, window, callback:
            as :func:`register_by_optimisation` (``tolerance`` defaults to 0 here: run the asked iterations).

    Returns:
        :class:`OptimisationResult` with the refined ``ddf``.

    Raises:
        ValueError: on bad shapes or options, or ``transform="affine"`` (refine with a deformable model).
    """
    if transform == "affine":
        raise ValueError(
            "instance_optimise: expected a deformable transform ('ddf', 'dvf' or 'bspline'), got 'affine'."
        )
    if ddf_init is None:
        raise ValueError("instance_optimise: expected ddf_init of shape (B, D, *S), got None.")
    return register_by_optimisation(
        moving,
        fixed,
        transform=transform,
        image_loss=image_loss,
        regulariser=regulariser,
        reg_weight=reg_weight,
        levels=levels,
        iterations=iterations,
        lr=lr,
        control_point_spacing=control_point_spacing,
        init_ddf=ddf_init,
        tolerance=tolerance,
        window=window,
        callback=callback,
    )
