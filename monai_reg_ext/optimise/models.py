"""Transformation models optimised by :func:`~monai_reg_ext.optimise.register_by_optimisation`.

- ``"affine"``: ``theta`` optimised in normalised coordinates centred on the grid (``[-1, 1]`` along each axis, better
  conditioned than voxel indices), returned in the project's convention (voxel indices, origin at voxel 0).
- ``"ddf"``: a dense displacement per voxel of the level grid.
- ``"dvf"``: a dense stationary velocity, integrated by scaling and squaring (:func:`~monai_reg_ext.dvf_to_ddf`).
- ``"bspline"``: displacements on a control grid every ``spacing`` level voxels, upsampled by linear interpolation
  (a first-order B-spline).

Every DDF is ``(B, D, *S)`` in voxels of the current level grid (``docs/conventions.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..spatial import affine_to_ddf, compose_ddf, dvf_to_ddf, resize_ddf
from .pyramid import control_size, interpolate

__all__ = ["TRANSFORMS", "TransformModel", "theta_from_normalised", "total_ddf"]

TRANSFORMS: tuple[str, ...] = ("affine", "ddf", "dvf", "bspline")
"""Transformation models: ``affine`` (matrix), ``ddf`` (dense displacement), ``dvf`` (dense stationary velocity,
scaling and squaring), ``bspline`` (displacement on a control grid, first-order B-spline = linear interpolation)."""


def _centring(size: Sequence[int], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``c`` and half-extent ``h`` of a grid: normalised coordinates are ``q = (p - c) / h`` in ``[-1, 1]``."""
    c = torch.tensor([(s - 1) / 2.0 for s in size], device=device, dtype=dtype)
    h = torch.tensor([max((s - 1) / 2.0, 0.5) for s in size], device=device, dtype=dtype)
    return c, h


def theta_from_normalised(a_n: torch.Tensor, t_n: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Voxel ``theta`` ``(B, D, D + 1)`` (origin at voxel 0) of ``q' = A_n q + t_n`` in normalised coordinates.

    ``p' = c + H (A_n H^-1 (p - c) + t_n)``, so ``A = H A_n H^-1`` and ``t = c - A c + H t_n``.

    Args:
        a_n: ``(B, D, D)`` matrix in normalised coordinates.
        t_n: ``(B, D)`` translation in normalised coordinates.
        size: the grid ``(H, W[, Z])``.
    """
    c, h = _centring(size, a_n.device, a_n.dtype)
    a = h.view(1, -1, 1) * a_n / h.view(1, 1, -1)
    t = c - torch.einsum("bij,j->bi", a, c) + h * t_n
    return torch.cat([a, t.unsqueeze(-1)], dim=-1)


class TransformModel:
    """Parameters of one transformation model and their DDF on a level grid (level voxels).

    Args:
        transform: one of :data:`TRANSFORMS`.
        batch: batch size ``B``.
        ndim: number of spatial dims ``D``.
        device, dtype: of the parameters.
        spacing: control-point spacing in level voxels (``"bspline"`` only).
    """

    def __init__(self, transform: str, batch: int, ndim: int, device, dtype, spacing: int) -> None:
        self.transform, self.batch, self.ndim, self.spacing = transform, batch, ndim, spacing
        self.device, self.dtype = device, dtype
        self.size: tuple[int, ...] | None = None
        self.params: list[torch.Tensor] = []
        if transform == "affine":
            eye = torch.eye(ndim, device=device, dtype=dtype).expand(batch, ndim, ndim).clone()
            self.params = [eye.requires_grad_(True), torch.zeros(batch, ndim, device=device, dtype=dtype)]
            self.params[1].requires_grad_(True)

    def start_level(self, size: tuple[int, ...], previous: torch.Tensor | None) -> None:
        """Set the level grid; non-affine parameters start from ``previous`` (:meth:`carry` of the last level)."""
        if self.transform == "affine":
            self.size = size
            return
        prev = None if previous is None else resize_ddf(previous.detach(), size)
        if self.transform == "bspline":
            ctrl = control_size(size, self.spacing)
            value = torch.zeros(self.batch, self.ndim, *ctrl, device=self.device, dtype=self.dtype)
            if prev is not None:
                value = interpolate(prev, ctrl).clone()
        else:  # ddf, dvf: dense on the level grid (a DVF is carried over as a velocity, see carry())
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
            return affine_to_ddf(theta_from_normalised(self.params[0], self.params[1], self.size), self.size)
        if self.transform == "bspline":
            return interpolate(self.params[0], self.size)
        if self.transform == "dvf":
            return dvf_to_ddf(self.params[0])
        return self.params[0]

    def theta(self, size: Sequence[int]) -> torch.Tensor | None:
        """The affine ``(B, D, D + 1)`` on voxel indices of a grid of ``size`` (None for non-affine models)."""
        if self.transform != "affine":
            return None
        return theta_from_normalised(self.params[0], self.params[1], size).detach()


def total_ddf(model: TransformModel, init: torch.Tensor | None) -> torch.Tensor:
    """The model's displacement on top of ``init`` ``(B, D, *level)``: added, or composed after it for ``"dvf"``."""
    res = model.residual()
    if init is None:
        return res
    if model.transform == "dvf":  # keep the composition diffeomorphic: the initial DDF first, then the residual
        return compose_ddf(init, res)
    return init + res
