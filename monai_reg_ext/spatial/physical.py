"""Voxel <-> physical (mm) conversion of displacement fields.

The world frame is the one of the image affine as MONAI and nibabel read it (RAS for NIfTI). ITK files use LPS:
``monai_reg_ext.io`` converts when writing and reading DDF files. See ``docs/conventions.md``.
"""

from __future__ import annotations

import numpy as np
import torch

from .warp import check_ddf

__all__ = ["ddf_voxel_to_mm", "ddf_mm_to_voxel"]


def _linear_part(affine: torch.Tensor | np.ndarray, ndim: int, like: torch.Tensor) -> torch.Tensor:
    aff = torch.as_tensor(np.asarray(affine) if not isinstance(affine, torch.Tensor) else affine)
    aff = aff.to(device=like.device, dtype=like.dtype)
    if aff.shape[-2:] != (ndim + 1, ndim + 1) or aff.ndim not in (2, 3):
        raise ValueError(
            f"affine must be ({ndim + 1}, {ndim + 1}) or (B, {ndim + 1}, {ndim + 1}) for a {ndim}-D DDF, "
            f"got {tuple(aff.shape)}."
        )
    lin = aff[..., :ndim, :ndim]
    return lin if lin.ndim == 3 else lin.unsqueeze(0).expand(like.shape[0], ndim, ndim)


def ddf_voxel_to_mm(ddf: torch.Tensor, affine: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Convert a voxel DDF into world displacements: ``d_world = R @ d_voxel``.

    Args:
        ddf: ``(B, D, *S)`` in fixed-grid voxels, channel ``k`` along array axis ``k``.
        affine: the fixed image's voxel-to-world matrix, ``(D+1, D+1)`` or ``(B, D+1, D+1)`` (RAS for NIfTI).

    Returns:
        ``(B, D, *S)`` in mm; channel ``i`` is the displacement along world axis ``i``.
    """
    ndim = check_ddf(ddf)
    lin = _linear_part(affine, ndim, ddf)
    return torch.einsum("bij,bj...->bi...", lin, ddf)


def ddf_mm_to_voxel(ddf_mm: torch.Tensor, affine: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Inverse of :func:`ddf_voxel_to_mm`: ``d_voxel = R^-1 @ d_world``.

    Args:
        ddf_mm: ``(B, D, *S)`` world displacements in mm (channel ``i`` = world axis ``i``).
        affine: the fixed image's voxel-to-world matrix, ``(D+1, D+1)`` or ``(B, D+1, D+1)``.

    Returns:
        ``(B, D, *S)`` in fixed-grid voxels.
    """
    ndim = check_ddf(ddf_mm, "ddf_mm")
    lin = _linear_part(affine, ndim, ddf_mm)
    return torch.einsum("bij,bj...->bi...", torch.linalg.inv(lin), ddf_mm)
