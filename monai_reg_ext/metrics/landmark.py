"""Landmark target registration error (TRE) in mm, with the DDF's pull semantics.

Semantics (docs/conventions.md): the DDF lives on the fixed grid and pulls, ``warped(x) = moving(x + ddf(x))``.
So the fixed-image point ``x`` (voxel index of the fixed grid) **corresponds to** the moving-image point
``x + ddf(x)``. The TRE of a landmark pair ``(f_i, m_i)`` is therefore

    ``TRE_i = || A_mov · (f_i + ddf(f_i)) - A_mov · m_i ||``  (mm)

with ``ddf(f_i)`` sampled by linear interpolation at non-integer ``f_i`` and ``A_mov`` the moving image's
voxel-to-world affine (NIfTI/MONAI RAS, as nibabel reads it). No inversion of the DDF is needed: one maps the
*fixed* landmarks into the moving image, never the moving landmarks into the fixed one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["landmark_tre", "sample_ddf"]


def _points(x, name: str, ndim: int | None, dtype, device) -> torch.Tensor:
    p = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, torch.Tensor) else x)
    p = p.to(device=device, dtype=dtype)
    if p.ndim != 2 or (ndim is not None and p.shape[1] != ndim):
        exp = "D" if ndim is None else str(ndim)
        raise ValueError(f"{name}: expected an array of shape (N, {exp}) (voxel indices), got {tuple(p.shape)}.")
    return p


def _affine(a, ndim: int, name: str, dtype, device) -> torch.Tensor:
    if a is None:
        return torch.eye(ndim + 1, dtype=dtype, device=device)
    a = torch.as_tensor(np.asarray(a, dtype=np.float64) if not isinstance(a, torch.Tensor) else a)
    if hasattr(a, "as_tensor"):
        a = a.as_tensor()
    a = a.to(device=device, dtype=dtype)
    if a.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"{name}: expected a ({ndim + 1}, {ndim + 1}) voxel-to-world affine, got {tuple(a.shape)}.")
    return a


def sample_ddf(ddf: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Sample a DDF at (non-integer) voxel points by linear interpolation (``align_corners=True``).

    Args:
        ddf: ``(1, D, *spatial)`` or ``(D, *spatial)`` DDF in voxels.
        points: ``(N, D)`` voxel indices of the DDF grid.

    Returns:
        ``(N, D)`` displacement at each point (voxels). Points outside the grid take the nearest border value.
    """
    if ddf.ndim == points.shape[1] + 1:
        ddf = ddf[None]
    ndim = ddf.ndim - 2
    size = torch.as_tensor(ddf.shape[2:], dtype=points.dtype, device=points.device)
    norm = 2.0 * points / (size - 1).clamp_min(1) - 1.0  # (N, D), array-axis order
    grid = norm.flip(-1).reshape(1, -1, *([1] * (ndim - 1)), ndim)  # grid_sample wants (x=last axis, ...)
    out = F.grid_sample(ddf.to(points.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(ndim, -1).T


def landmark_tre(
    moving_landmarks,
    fixed_landmarks,
    ddf: torch.Tensor,
    fixed_affine=None,
    moving_affine=None,
    moving_spatial_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Target registration error of corresponding landmarks, in mm.

    The fixed landmark ``f_i`` (voxel index on the fixed grid, i.e. the DDF grid) is moved through the DDF to
    ``p_i = f_i + ddf(f_i)`` (pull convention: fixed point ``x`` corresponds to moving point ``x + ddf(x)``;
    ``ddf`` is sampled by linear interpolation). ``p_i`` is in fixed-grid voxel units; when the moving image has a
    different array shape it is mapped to the moving grid as ``warp_image`` does, assuming both images cover the same
    field of view: ``q_i = p_i * (S_mov - 1) / (S_fix - 1)``. Then ``q_i`` and the moving landmark ``m_i`` (voxel
    index on the moving grid) are mapped to world mm by the moving affine and compared.

    Args:
        moving_landmarks: ``(N, D)`` voxel indices in the moving image (see :func:`monai_reg_ext.io.read_landmarks`).
        fixed_landmarks: ``(N, D)`` voxel indices in the fixed image, same order as ``moving_landmarks``.
        ddf: ``(1, D, *S_fix)`` or ``(D, *S_fix)`` DDF in voxels of the fixed grid.
        fixed_affine: ``(D+1, D+1)`` fixed voxel-to-world (RAS mm) affine; only used as the moving affine when
            ``moving_affine`` is ``None`` (moving and fixed on the same grid).
        moving_affine: ``(D+1, D+1)`` moving voxel-to-world (RAS mm) affine. If both affines are ``None`` the
            result is in voxels.
        moving_spatial_size: the moving image's array shape when it differs from the DDF's.

    Returns:
        ``(N,)`` float64 TRE per landmark (mm), on the DDF's device.

    Raises:
        ValueError: for mismatched shapes, or a fixed landmark outside the fixed grid (naming its index).
    """
    if not isinstance(ddf, torch.Tensor):
        ddf = torch.as_tensor(np.asarray(ddf))
    if hasattr(ddf, "as_tensor"):
        ddf = ddf.as_tensor()
    if ddf.ndim in (3, 4) and ddf.shape[0] == ddf.ndim - 1:
        ddf = ddf[None]
    ndim = ddf.ndim - 2
    if ndim not in (2, 3) or ddf.shape[0] != 1 or ddf.shape[1] != ndim:
        raise ValueError(
            f"ddf: expected shape (1, D, *spatial) or (D, *spatial) with D in (2, 3), got {tuple(ddf.shape)}."
        )
    dtype, device = torch.float64, ddf.device
    fixed = _points(fixed_landmarks, "fixed_landmarks", ndim, dtype, device)
    moving = _points(moving_landmarks, "moving_landmarks", ndim, dtype, device)
    if fixed.shape != moving.shape:
        raise ValueError(
            f"moving_landmarks and fixed_landmarks must pair up, got {tuple(moving.shape)} and {tuple(fixed.shape)}."
        )
    fix_size = torch.as_tensor(ddf.shape[2:], dtype=dtype, device=device)
    outside = ((fixed < -1e-6) | (fixed > fix_size - 1 + 1e-6)).any(dim=1)
    if outside.any():
        i = int(torch.nonzero(outside)[0])
        raise ValueError(
            f"fixed landmark {i} at voxel {fixed[i].tolist()} is outside the fixed grid "
            f"of shape {tuple(ddf.shape[2:])}."
        )
    a_mov = _affine(moving_affine if moving_affine is not None else fixed_affine, ndim, "moving_affine", dtype, device)

    p = fixed + sample_ddf(ddf, fixed)
    if moving_spatial_size is not None:
        mov_size = torch.as_tensor(list(moving_spatial_size), dtype=dtype, device=device)
        if mov_size.numel() != ndim:
            raise ValueError(f"moving_spatial_size: expected {ndim} values, got {mov_size.numel()}.")
        p = p * (mov_size - 1) / (fix_size - 1).clamp_min(1)
    diff = (p - moving) @ a_mov[:ndim, :ndim].T  # the translation cancels
    return torch.linalg.vector_norm(diff, dim=1)
