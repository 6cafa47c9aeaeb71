"""The level pyramid of optimisation-based registration: level grids, smoothing, and sampling the moving image.

A level with downsampling factor ``f`` has ``round((S - 1) / f) + 1`` voxels per axis (at least 8, same field of view,
``align_corners=True``). Images are Gaussian-smoothed with sigma ``f / 2`` voxels before they are resampled.

The moving image is either on the fixed grid (``fixed_to_moving=None``: the identity map) or on a grid of its own,
related to the fixed grid by the ``(D + 1, D + 1)`` matrix ``fixed_to_moving`` that maps fixed voxel indices to moving
voxel indices (through world coordinates: ``inv(A_moving) @ A_fixed``). Then a DDF ``u`` on the fixed grid (fixed
voxels) samples the moving image at the moving voxel ``M (p + u(p))``, so nothing of the moving image is cropped to
the fixed field of view. Both cases sample with ``grid_sample`` on coordinates precomputed per level (bilinear, border
padding, ``align_corners=True``: the values of :func:`~monai_reg_ext.warp_image` on the same grid, without rebuilding
the identity grid at every iteration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..spatial import gaussian_smooth, identity_grid

__all__ = [
    "MIN_LEVEL_SIZE",
    "INSIDE_TOLERANCE",
    "level_size",
    "downsample",
    "interpolate",
    "control_size",
    "LevelPair",
    "make_level",
]

MIN_LEVEL_SIZE = 8
"""Smallest number of voxels per axis of a level (an image axis shorter than this is kept as it is)."""

INSIDE_TOLERANCE = 1e-5
"""Slack of :meth:`LevelPair.inside` on normalised coordinates (about 1e-5 (n - 1) / 2 voxels: rounding only)."""


def level_size(size: Sequence[int], factor: int) -> tuple[int, ...]:
    """Grid of a level downsampled by ``factor``, same field of view (``align_corners``), at least 8 voxels."""
    return tuple(max(int(round((s - 1) / factor)) + 1, min(s, MIN_LEVEL_SIZE)) for s in size)


def downsample(x: torch.Tensor, size: tuple[int, ...], factor: int) -> torch.Tensor:
    """Gaussian-smooth ``x`` ``(B, C, *S)`` (sigma ``factor / 2`` voxels) and resample it to ``size`` (linear)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(gaussian_smooth(x, [factor / 2.0] * (x.ndim - 2)), size=size, mode=mode, align_corners=True)


def interpolate(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Linear resampling of a field ``(B, C, *S)`` to ``size`` (same field of view), values unchanged."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=True)


def control_size(size: tuple[int, ...], spacing: int) -> tuple[int, ...]:
    """Control grid with a point every ``spacing`` voxels of a grid of ``size`` (at least 2 points per axis)."""
    return tuple(max(int(math.ceil((s - 1) / spacing)) + 1, 2) for s in size)


def _axis_scale(full: Sequence[int], level: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Full-grid voxels per level voxel along each axis, ``(D,)``."""
    return torch.tensor(
        [(f - 1) / (lv - 1) if lv > 1 else 1.0 for f, lv in zip(full, level)], dtype=like.dtype, device=like.device
    )


@dataclass
class LevelPair:
    """The two images of one level and how a DDF on the fixed level grid samples the moving one.

    Attributes:
        moving: moving image ``(B, C, *S_moving_level)`` (on the fixed level grid when ``matrix`` is None).
        fixed: fixed image ``(B, C, *S_level)``.
        matrix: ``(B, D, D + 1)`` fixed-level voxel -> moving-level voxel map, or None (same grid: the identity).
        grid_matrix: ``(B, D, D)``: a displacement (level voxels, array axes) -> its change of the ``grid_sample``
            coordinates (normalised to ``[-1, 1]`` over the moving level grid, last array axis first).
        grid_base: ``(B, *S_level, D)``: the ``grid_sample`` coordinates of the zero DDF (``matrix`` applied to the
            identity grid, normalised, last array axis first).
    """

    moving: torch.Tensor
    fixed: torch.Tensor
    matrix: torch.Tensor | None
    grid_matrix: torch.Tensor
    grid_base: torch.Tensor

    @property
    def size(self) -> tuple[int, ...]:
        """Spatial shape of the fixed level grid."""
        return tuple(int(s) for s in self.fixed.shape[2:])

    def sampling_grid(self, ddf: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` coordinates ``(B, *S_level, D)`` of ``M (p + ddf(p))`` (``ddf`` in level voxels): one small
        matrix product per voxel on top of the precomputed zero-DDF grid."""
        b, nd = ddf.shape[:2]
        flat = ddf.movedim(1, -1).reshape(b, -1, nd)
        moved = torch.bmm(flat, self.grid_matrix.transpose(1, 2).to(ddf.dtype))
        return self.grid_base.to(ddf.dtype) + moved.view(self.grid_base.shape)

    def inside(self, ddf: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, *S_level)`` 1.0 where ``p + ddf(p)`` samples inside the moving image, else 0.0 (no gradient).

        Inside means every ``grid_sample`` coordinate in ``[-1, 1]``, with :data:`INSIDE_TOLERANCE` for rounding (the
        last voxel of the identity map lands on ``1 + 1e-7``). ``grid``: :meth:`sampling_grid` of ``ddf`` when the
        caller has it already (as :meth:`warp` returns it), else computed here."""
        with torch.no_grad():
            grid = (self.sampling_grid(ddf.detach()) if grid is None else grid.detach()).abs()
            return (grid <= 1.0 + INSIDE_TOLERANCE).all(dim=-1).unsqueeze(1).to(ddf.dtype)

    def warp(self, ddf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The moving image ``(B, C, *S_level)`` at ``M (p + ddf(p))``, bilinear, border padding (as
        :func:`~monai_reg_ext.warp_image` on the same grid), and the sampling grid it used (for :meth:`inside`);
        ``ddf`` ``(B, D, *S_level)`` in level voxels."""
        grid, moving = self.sampling_grid(ddf), self.moving.to(ddf.dtype)
        return F.grid_sample(moving, grid, mode="bilinear", padding_mode="border", align_corners=True), grid


def make_level(
    moving: torch.Tensor, fixed: torch.Tensor, factor: int, fixed_to_moving: torch.Tensor | None = None
) -> LevelPair:
    """Build the level ``factor`` of a pair (full resolution for ``factor == 1``).

    Args:
        moving: ``(B, C, *S_moving)``; on the fixed grid (same shape) when ``fixed_to_moving`` is None.
        fixed: ``(B, C, *S_fixed)``.
        factor: downsampling factor ``>= 1``.
        fixed_to_moving: ``(D + 1, D + 1)`` or ``(B, D + 1, D + 1)`` map from full-resolution fixed voxel indices to
            moving voxel indices, or None.
    """
    fsize = tuple(int(s) for s in fixed.shape[2:])
    lsize = fsize if factor == 1 else level_size(fsize, factor)
    with torch.no_grad():
        fix_l = downsample(fixed, lsize, factor)
        ndim, batch = len(fsize), fixed.shape[0]
        if fixed_to_moving is None:  # the same grid: the identity map
            mov_l, mlsize, matrix = downsample(moving, lsize, factor), lsize, None
            lin = torch.eye(ndim, device=fixed.device, dtype=fixed.dtype).expand(batch, ndim, ndim)
            trans = torch.zeros(batch, ndim, device=fixed.device, dtype=fixed.dtype)
        else:
            msize = tuple(int(s) for s in moving.shape[2:])
            mlsize = msize if factor == 1 else level_size(msize, factor)
            mov_l = downsample(moving, mlsize, factor)
            m = fixed_to_moving.to(device=fixed.device, dtype=fixed.dtype)
            m = m.expand(batch, ndim + 1, ndim + 1) if m.ndim == 2 else m
            s_f, s_m = _axis_scale(fsize, lsize, fixed), _axis_scale(msize, mlsize, fixed)
            # q_level = diag(1/s_m) M diag(s_f) [p_level; 1]
            lin = m[:, :ndim, :ndim] * s_f.view(1, 1, ndim) / s_m.view(1, ndim, 1)
            trans = m[:, :ndim, ndim] / s_m.view(1, ndim)
            matrix = torch.cat([lin, trans.unsqueeze(-1)], dim=-1)
        ident = identity_grid(lsize, device=fixed.device, dtype=fixed.dtype).unsqueeze(0)
        base = torch.einsum("bij,bj...->bi...", lin, ident.expand(batch, *ident.shape[1:]))
        base = base + trans.view(*trans.shape, *([1] * ndim))  # moving-level voxels of the zero DDF
        # grid_sample's coordinates: 2 / (n - 1) per moving-level voxel, -1 at voxel 0, last array axis first
        norm = torch.tensor([2.0 / max(s - 1, 1) for s in mlsize], device=fixed.device, dtype=fixed.dtype)
        grid_matrix = (lin * norm.view(1, ndim, 1)).flip(1)
        grid_base = (base * norm.view(1, ndim, *([1] * ndim)) - 1.0).flip(1).movedim(1, -1).contiguous()
        return LevelPair(mov_l, fix_l, matrix=matrix, grid_matrix=grid_matrix, grid_base=grid_base)
