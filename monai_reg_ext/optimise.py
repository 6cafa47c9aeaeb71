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

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Literal, Union

import torch
import torch.nn.functional as F

from .losses import BendingEnergyLoss, LocalNormalizedCrossCorrelationLoss
from .spatial import affine_to_ddf, compose_ddf, dvf_to_ddf, gaussian_smooth, resize_ddf, warp_image

__all__ = ["OptimisationResult", "register_by_optimisation", "instance_optimise", "TRANSFORMS"]

Transform = Literal["affine", "ddf", "dvf", "bspline"]
TRANSFORMS: tuple[str, ...] = ("affine", "ddf", "dvf", "bspline")
"""Transformation models: ``affine`` (matrix), ``ddf`` (dense displacement), ``dvf`` (dense stationary velocity,
scaling and squaring), ``bspline`` (displacement on a control grid, first-order B-spline = linear interpolation)."""

ImageLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Regulariser = Callable[[torch.Tensor], torch.Tensor]
IntOrSeq = Union[int, Sequence[int]]
Callback = Callable[[int, int, float, torch.Tensor], None]

_DEFAULT_LR = {"affine": 0.01, "ddf": 0.1, "dvf": 0.1, "bspline": 0.1}
_DEFAULT_REG_WEIGHT = 2.0
_MIN_LEVEL_SIZE = 8


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


def _check_inputs(moving: torch.Tensor, fixed: torch.Tensor, init_ddf: torch.Tensor | None) -> int:
    for name, x in (("moving", moving), ("fixed", fixed)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor (B, C, *S), got {type(x).__name__}.")
        if x.ndim not in (4, 5):
            raise ValueError(
                f"{name}: expected shape (B, C, H, W) or (B, C, H, W, Z) (4 or 5 dims), got {tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}.")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving: expected the shape of fixed {tuple(fixed.shape)}, got {tuple(moving.shape)}.")
    ndim = fixed.ndim - 2
    if init_ddf is not None:
        expected = (fixed.shape[0], ndim, *fixed.shape[2:])
        if not isinstance(init_ddf, torch.Tensor) or tuple(init_ddf.shape) != expected:
            got = tuple(init_ddf.shape) if isinstance(init_ddf, torch.Tensor) else type(init_ddf).__name__
            raise ValueError(f"init_ddf: expected shape (B, D, *S) = {expected}, got {got}.")
    return ndim


# ----------------------------------------------------------------------------------------------------- resampling
def _level_size(size: Sequence[int], factor: int) -> tuple[int, ...]:
    """Grid of a level downsampled by ``factor``, same field of view (``align_corners``), at least 8 voxels."""
    return tuple(max(int(round((s - 1) / factor)) + 1, min(s, _MIN_LEVEL_SIZE)) for s in size)


def _downsample(x: torch.Tensor, size: tuple[int, ...], factor: int) -> torch.Tensor:
    if tuple(x.shape[2:]) == size:
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(gaussian_smooth(x, [factor / 2.0] * (x.ndim - 2)), size=size, mode=mode, align_corners=True)


def _interpolate(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Linear resampling of a field to ``size`` (same field of view), values unchanged."""
    if tuple(x.shape[2:]) == size:
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=True)


def _control_size(size: tuple[int, ...], spacing: int) -> tuple[int, ...]:
    return tuple(max(int(math.ceil((s - 1) / spacing)) + 1, 2) for s in size)


# ------------------------------------------------------------------------------------------------------- affine
def _centring(size: Sequence[int], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``c`` and half-extent ``h`` of a grid: normalised coordinates are ``q = (p - c) / h`` in ``[-1, 1]``."""
    c = torch.tensor([(s - 1) / 2.0 for s in size], device=device, dtype=dtype)
    h = torch.tensor([max((s - 1) / 2.0, 0.5) for s in size], device=device, dtype=dtype)
    return c, h


def _theta_from_normalised(a_n: torch.Tensor, t_n: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Voxel ``theta`` (origin at voxel 0) of ``q' = A_n q + t_n`` in normalised coordinates of a grid of ``size``.

    ``p' = c + H (A_n H^-1 (p - c) + t_n)``, so ``A = H A_n H^-1`` and ``t = c - A c + H t_n``.
    """
    c, h = _centring(size, a_n.device, a_n.dtype)
    a = h.view(1, -1, 1) * a_n / h.view(1, 1, -1)
    t = c - torch.einsum("bij,j->bi", a, c) + h * t_n
    return torch.cat([a, t.unsqueeze(-1)], dim=-1)


# -------------------------------------------------------------------------------------------------------- models
class _Model:
    """Parameters of one transformation model and their DDF on a level grid (level voxels)."""

    def __init__(self, transform: str, batch: int, ndim: int, device, dtype, spacing: int) -> None:
        self.transform, self.batch, self.ndim, self.spacing = transform, batch, ndim, spacing
        self.device, self.dtype = device, dtype
        self.size: tuple[int, ...] | None = None
        self.params: list[torch.Tensor] = []
        if transform == "affine":
            eye = torch.eye(ndim, device=device, dtype=dtype).expand(batch, ndim, ndim).clone()
            self.params = [eye.requires_grad_(True), torch.zeros(batch, ndim, device=device, dtype=dtype)]
            self.params[1].requires_grad_(True)

    def start_level(self, size: tuple[int, ...], previous_ddf: torch.Tensor | None) -> None:
        """Set the level grid; non-affine parameters start from ``previous_ddf`` (residual, previous level voxels)."""
        if self.transform == "affine":
            self.size = size
            return
        prev = None if previous_ddf is None else resize_ddf(previous_ddf.detach(), size)
        if self.transform == "bspline":
            ctrl = _control_size(size, self.spacing)
            value = torch.zeros(self.batch, self.ndim, *ctrl, device=self.device, dtype=self.dtype)
            if prev is not None:
                value = _interpolate(prev, ctrl).clone()
        else:  # ddf, dvf: dense on the level grid (a DVF is carried over as a velocity, see residual())
            value = torch.zeros(self.batch, self.ndim, *size, device=self.device, dtype=self.dtype)
            if prev is not None:
                value = prev.clone()
        self.size = size
        self.params = [value.requires_grad_(True)]

    def carry(self) -> torch.Tensor:
        """What the next level starts from: the velocity for a DVF, else the residual displacement."""
        if self.transform == "dvf":
            return self.params[0].detach()
        return self.residual().detach()

    def residual(self) -> torch.Tensor:
        """The optimised displacement ``(B, D, *level)`` in level voxels (without any initial DDF)."""
        assert self.size is not None
        if self.transform == "affine":
            theta = _theta_from_normalised(self.params[0], self.params[1], self.size)
            return affine_to_ddf(theta, self.size)
        if self.transform == "bspline":
            return _interpolate(self.params[0], self.size)
        if self.transform == "dvf":
            return dvf_to_ddf(self.params[0])
        return self.params[0]

    def theta(self, size: Sequence[int]) -> torch.Tensor | None:
        if self.transform != "affine":
            return None
        return _theta_from_normalised(self.params[0], self.params[1], size).detach()


def _total(model: _Model, init: torch.Tensor | None) -> torch.Tensor:
    res = model.residual()
    if init is None:
        return res
    if model.transform == "dvf":  # keep the composition diffeomorphic: the initial DDF first, then the residual
        return compose_ddf(init, res)
    return init + res


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
    lr: float | None = None,
    control_point_spacing: int = 4,
    init_ddf: torch.Tensor | None = None,
    tolerance: float = 1e-5,
    window: int = 10,
    callback: Callback | None = None,
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
        image_loss: ``(warped, fixed) -> scalar`` to minimise; default
            ``LocalNormalizedCrossCorrelationLoss(spatial_dims=D, kernel_size=7)``.
        regulariser: ``ddf -> scalar``; default :class:`~monai_reg_ext.losses.BendingEnergyLoss` (voxels) for the
            non-affine models, none for ``"affine"``.
        reg_weight: weight of the regulariser; default 2.0 (0 for ``"affine"``).
        levels: downsampling factors, coarse to fine (``(4, 2, 1)``), or one factor (``1``: full resolution only).
        iterations: Adam iterations per level (one int is used at every level).
        lr: Adam learning rate; default 0.01 for ``"affine"`` (normalised units), 0.1 (level voxels) otherwise.
        control_point_spacing: control-point spacing in level voxels (``"bspline"`` only), ``>= 1``.
        init_ddf: starting displacement ``(B, D, *S)`` in fixed voxels; the model optimises a residual added to it
            (composed after it for ``"dvf"``), starting from zero. None: the identity.
        tolerance: a level stops when ``|L[i - window] - L[i]| <= tolerance * |L[i - window]|``; 0 disables.
        window: iterations over which the relative change is measured.
        callback: called as ``callback(level, iteration, loss, ddf)`` at every iteration (before its step) and once
            after the last step of the finest level (``iteration`` = the number of steps run there), with the loss
            of the current parameters and their DDF ``(B, D, *level)`` (detached, level voxels). For monitoring;
            it must not modify ``ddf``.

    Returns:
        :class:`OptimisationResult`. At the finest level the best parameters seen are kept, so
        ``final_loss <= initial_loss``.

    Raises:
        ValueError: on bad shapes or options (the message gives expected vs got).
    """
    ndim = _check_inputs(moving, fixed, init_ddf)
    if transform not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, got {transform!r}.")
    factors = _as_tuple(levels, "levels")
    if any(f < 1 for f in factors):
        raise ValueError(f"levels: expected downsampling factors >= 1, got {factors}.")
    n_iter = _as_tuple(iterations, "iterations", len(factors))
    if any(n < 0 for n in n_iter):
        raise ValueError(f"iterations: expected values >= 0, got {n_iter}.")
    if int(control_point_spacing) < 1:
        raise ValueError(f"control_point_spacing: expected an int >= 1, got {control_point_spacing}.")
    if tolerance < 0 or int(window) < 1:
        raise ValueError(f"tolerance, window: expected tolerance >= 0 and window >= 1, got {tolerance}, {window}.")
    if image_loss is None:
        image_loss = LocalNormalizedCrossCorrelationLoss(spatial_dims=ndim, kernel_size=7)
    if reg_weight is None:
        reg_weight = 0.0 if transform == "affine" else _DEFAULT_REG_WEIGHT
    if reg_weight < 0:
        raise ValueError(f"reg_weight: expected >= 0, got {reg_weight}.")
    if regulariser is None and transform != "affine":
        regulariser = BendingEnergyLoss()
    if lr is None:
        lr = _DEFAULT_LR[transform]
    if lr <= 0:
        raise ValueError(f"lr: expected > 0, got {lr}.")

    start = time.perf_counter()
    size = tuple(int(s) for s in fixed.shape[2:])
    moving, fixed = moving.detach(), fixed.detach()
    init = None if init_ddf is None else init_ddf.detach().to(device=fixed.device, dtype=fixed.dtype)
    model = _Model(transform, fixed.shape[0], ndim, fixed.device, fixed.dtype, int(control_point_spacing))
    curve: list[float] = []
    done: list[int] = []
    carried: torch.Tensor | None = None
    best_ddf: torch.Tensor | None = None
    best_theta: torch.Tensor | None = None
    initial_loss = final_loss = float("nan")
    for li, (factor, n) in enumerate(zip(factors, n_iter)):
        last = li == len(factors) - 1
        lsize = size if factor == 1 else _level_size(size, factor)
        with torch.no_grad():
            mov_l, fix_l = _downsample(moving, lsize, factor), _downsample(fixed, lsize, factor)
            init_l = None if init is None else resize_ddf(init, lsize)
        model.start_level(lsize, carried)
        optimiser = torch.optim.Adam(model.params, lr=float(lr))

        def objective(mov_l=mov_l, fix_l=fix_l, init_l=init_l) -> tuple[torch.Tensor, torch.Tensor]:
            ddf = _total(model, init_l)
            loss = image_loss(warp_image(mov_l, ddf), fix_l)
            if regulariser is not None and reg_weight > 0:
                loss = loss + reg_weight * regulariser(ddf)
            return loss, ddf

        level_curve: list[float] = []
        for _ in range(n):
            optimiser.zero_grad(set_to_none=True)
            loss, ddf = objective()
            value = float(loss.detach())
            level_curve.append(value)
            if callback is not None:
                callback(li, len(level_curve) - 1, value, ddf.detach())
            if last and (best_ddf is None or value < final_loss):
                final_loss, best_ddf, best_theta = value, ddf.detach().clone(), model.theta(size)
            loss.backward()
            optimiser.step()
            k = len(level_curve) - 1 - int(window)
            if tolerance > 0 and k >= 0 and abs(level_curve[k] - value) <= tolerance * abs(level_curve[k]):
                break
        if last:  # score the parameters after the last step too, and keep the best
            with torch.no_grad():
                loss, ddf = objective()
            value = float(loss)
            if callback is not None:
                callback(li, len(level_curve), value, ddf.detach())
            if best_ddf is None or value < final_loss:
                final_loss, best_ddf, best_theta = value, ddf.detach().clone(), model.theta(size)
            initial_loss = level_curve[0] if level_curve else value
        curve.extend(level_curve)
        done.append(len(level_curve))
        carried = model.carry()
    assert best_ddf is not None
    if tuple(best_ddf.shape[2:]) != size:  # the finest level is coarser than the image (levels without 1)
        best_ddf = resize_ddf(best_ddf, size)
    if best_theta is not None and tuple(model.size or ()) != size:  # exact affine field on the full grid
        best_ddf = affine_to_ddf(best_theta, size) + (0 if init is None else init)
    if fixed.device.type == "cuda":
        torch.cuda.synchronize(fixed.device)
    return OptimisationResult(
        ddf=best_ddf.detach(),
        theta=best_theta,
        loss_curve=curve,
        level_iterations=done,
        iterations=sum(done),
        seconds=time.perf_counter() - start,
        initial_loss=initial_loss,
        final_loss=final_loss,
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
