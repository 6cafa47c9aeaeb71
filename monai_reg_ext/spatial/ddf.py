"""Algebra of dense displacement fields: integration, affine fields, composition, resizing, Jacobians.

Every field here follows ``docs/conventions.md``: ``(B, D, *spatial)`` on the fixed grid, in voxels, channel ``k``
along array axis ``k``, pull semantics ``warped(x) = moving(x + ddf(x))``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF

from .warp import check_ddf, identity_grid, warp_image

__all__ = ["dvf_to_ddf", "affine_to_ddf", "compose_ddf", "resize_ddf", "jacobian_determinant"]


def dvf_to_ddf(dvf: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
    """Integrate a stationary velocity field by scaling and squaring (MONAI's ``DVF2DDF``).

    ``ddf = dvf / 2**num_steps``, then ``num_steps`` times ``ddf = ddf + warp(ddf, ddf)`` (border padding).

    Args:
        dvf: velocity field ``(B, D, *S)`` in voxels of the fixed grid.
        num_steps: number of squaring steps (DeepReg and VoxelMorph use 7); must be >= 0.

    Returns:
        Diffeomorphic DDF ``(B, D, *S)`` in voxels (``dvf_to_ddf(0) == 0``).
    """
    check_ddf(dvf, "dvf")
    if int(num_steps) < 0:
        raise ValueError(f"dvf_to_ddf: num_steps must be >= 0, got {num_steps}.")
    if num_steps == 0:
        return dvf.clone()
    with warnings.catch_warnings():  # MONAI's Warp warns on each construction without its C++ extension
        warnings.simplefilter("ignore")
        integrate = DVF2DDF(num_steps=int(num_steps), mode="bilinear", padding_mode="border")
    return integrate(dvf)


def affine_to_ddf(theta: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """DDF of an affine map given in voxel-index coordinates with the origin at voxel 0.

    The fixed voxel ``p`` samples the moving image at ``A p + t``, so ``ddf(p) = A p + t - p`` (MONAI ``GlobalNet`` /
    ``AffineTransform(normalized=False)`` convention; see ``docs/conventions.md``).

    Args:
        theta: ``(B, D, D + 1)`` = ``[A | t]``, translation ``t`` in voxels. The identity is ``[I | 0]``.
        spatial_size: fixed grid shape ``(H, W[, Z])``.

    Returns:
        DDF ``(B, D, *spatial_size)`` in voxels.
    """
    ndim = len(spatial_size)
    if theta.ndim != 3 or tuple(theta.shape[1:]) != (ndim, ndim + 1):
        raise ValueError(
            f"affine_to_ddf: theta must be (B, {ndim}, {ndim + 1}) for a {ndim}-D spatial_size {tuple(spatial_size)}, "
            f"got {tuple(theta.shape)}."
        )
    grid = identity_grid(spatial_size, device=theta.device, dtype=theta.dtype)  # (D, *S)
    homogeneous = torch.cat([grid, torch.ones_like(grid[:1])], dim=0).reshape(ndim + 1, -1)  # (D+1, N)
    mapped = torch.einsum("bij,jn->bin", theta, homogeneous)  # (B, D, N)
    return mapped.reshape(theta.shape[0], ndim, *spatial_size) - grid.unsqueeze(0)


def compose_ddf(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Compose two DDFs: ``warp_image(warp_image(img, first), second) ~= warp_image(img, compose_ddf(first, second))``.

    With pull semantics, ``composed(x) = second(x) + first(x + second(x))``: ``first`` is resampled through ``second``
    (linear interpolation, border padding).

    Args:
        first: DDF applied first to the moving image, ``(B, D, *S)``.
        second: DDF applied to the result, ``(B, D, *S)`` (same grid).

    Returns:
        The composed DDF ``(B, D, *S)`` in voxels.
    """
    check_ddf(first, "first")
    check_ddf(second, "second")
    if first.shape != second.shape:
        raise ValueError(
            f"compose_ddf: both fields must share shape (B, D, *S); got first {tuple(first.shape)}, "
            f"second {tuple(second.shape)}."
        )
    return second + warp_image(first, second, mode="bilinear", padding_mode="border")


def resize_ddf(ddf: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """Resample a DDF to another grid covering the same field of view, rescaling its values to the new voxel size.

    With ``align_corners=True`` the factor along axis ``k`` is ``(new_k - 1) / (old_k - 1)``, so a displacement of
    one old voxel spacing stays the same physical length.

    Args:
        ddf: ``(B, D, *S_old)`` in voxels of the old grid.
        spatial_size: the new grid shape ``S_new`` (same number of dims).

    Returns:
        ``(B, D, *S_new)`` in voxels of the new grid.
    """
    ndim = check_ddf(ddf)
    spatial_size = tuple(int(s) for s in spatial_size)
    if len(spatial_size) != ndim:
        raise ValueError(f"resize_ddf: spatial_size must have {ndim} entries, got {spatial_size}.")
    old = ddf.shape[2:]
    if tuple(old) == spatial_size:
        return ddf
    mode = "bilinear" if ndim == 2 else "trilinear"
    out = F.interpolate(ddf, size=spatial_size, mode=mode, align_corners=True)
    factors = [(n - 1) / (o - 1) if o > 1 and n > 1 else 1.0 for n, o in zip(spatial_size, old)]
    scale = torch.tensor(factors, device=ddf.device, dtype=ddf.dtype).view(1, ndim, *([1] * ndim))
    return out * scale


def jacobian_determinant(ddf: torch.Tensor, spacing: Sequence[float] | None = None) -> torch.Tensor:
    """Determinant of the Jacobian of the map ``x -> x + ddf(x)``.

    Derivatives are central differences inside the grid and one-sided at its faces (``torch.gradient``), so the
    result has the full grid size. Values ``<= 0`` mark folding.

    Args:
        ddf: ``(B, D, *S)``. In voxels when ``spacing`` is None (the determinant of a voxel field does not depend on
            the spacing). With ``spacing``, ``ddf`` holds displacements in mm along the array axes and the
            derivatives are taken per mm.
        spacing: voxel size along each array axis (mm), only to read a DDF given in mm.

    Returns:
        ``(B, *S)``; 1 for the identity, ``prod(s_k)`` for a pure scaling by ``s_k``.
    """
    ndim = check_ddf(ddf)
    if spacing is None:
        spacing = [1.0] * ndim
    spacing = [float(s) for s in spacing]
    if len(spacing) != ndim or min(spacing) <= 0:
        raise ValueError(f"jacobian_determinant: spacing must be {ndim} positive numbers, got {spacing}.")
    dims = tuple(range(1, ndim + 1))
    rows = []
    for k in range(ndim):
        if min(ddf.shape[2:]) < 2:
            raise ValueError(f"jacobian_determinant: every spatial size must be >= 2, got {tuple(ddf.shape[2:])}.")
        grads = torch.gradient(ddf[:, k], spacing=spacing, dim=dims, edge_order=1)
        rows.append(torch.stack(grads, dim=-1))  # (B, *S, D): d u_k / d x_j
    jac = torch.stack(rows, dim=-2)  # (B, *S, D, D)
    jac = jac + torch.eye(ndim, device=ddf.device, dtype=ddf.dtype)
    return torch.linalg.det(jac)
