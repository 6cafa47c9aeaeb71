"""Per-pair figures of a registration: Dice per label before and after, folding, SDlogJ, landmark TRE (mm)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from monai.data import MetaTensor

from ..io import read_landmarks
from ..metrics import jacobian_metrics, label_dice, landmark_tre
from .result import RegistrationResult

__all__ = ["label_metrics", "deformation_metrics", "landmark_metrics"]

logger = logging.getLogger(__name__)


def label_metrics(moving_label: MetaTensor, fixed_label: MetaTensor | None, warped_label: torch.Tensor) -> dict:
    """``dice_label{i}_before`` / ``_after`` of the moving label on the fixed grid ``(L, *S)`` before and after warping.

    Raises:
        ValueError: when the two labels have different numbers of channels.
    """
    if fixed_label is None:
        return {}
    fix_lab = fixed_label.as_tensor()[None]
    mov = moving_label.as_tensor() if isinstance(moving_label, MetaTensor) else moving_label
    if fix_lab.shape[1] != mov.shape[0]:
        raise ValueError(f"labels: moving_label has {mov.shape[0]} channels but fixed_label has {fix_lab.shape[1]}.")
    before = label_dice(mov[None], fix_lab)[0]
    after = label_dice(warped_label[None].float(), fix_lab)[0]
    out = {}
    for i, (b, a) in enumerate(zip(before.tolist(), after.tolist())):
        out[f"dice_label{i}_before"] = b
        out[f"dice_label{i}_after"] = a
    return out


def deformation_metrics(ddf: torch.Tensor) -> dict:
    """Folding fraction and SDlogJ of a DDF ``(D, *S)`` (voxels), from one Jacobian determinant."""
    found = jacobian_metrics(ddf[None])
    return {k: float(found[k][0]) for k in ("folding_fraction", "sd_log_jacobian")}


def landmark_metrics(
    result: RegistrationResult, moving_landmarks, fixed_landmarks, moving_affine, space: str, moving_shape
) -> dict:
    """Mean landmark TRE (mm) before and after, and the median after; points are read from files or arrays.

    Moving points are mapped into the fixed voxel frame through world coordinates, since the DDF refers to the moving
    image on the fixed grid.
    """
    # points outside their image are refused (ValueError naming the file and the point)
    fixed_pts = read_landmarks(
        fixed_landmarks, space=space, affine=result.fixed_affine, spatial_shape=tuple(result.fixed.shape[1:])
    )
    moving_pts = read_landmarks(moving_landmarks, space=space, affine=moving_affine, spatial_shape=moving_shape)
    if len(fixed_pts) != len(moving_pts):
        raise ValueError(
            f"landmarks: {fixed_landmarks} has {len(fixed_pts)} points but {moving_landmarks} has {len(moving_pts)}."
        )
    # The DDF refers to the moving image resampled onto the fixed grid in world coordinates (moving_on_fixed), so
    # the moving landmarks are expressed as voxel indices of that grid: world = A_moving m, index = A_fixed^-1 world.
    a_fix = np.asarray(result.fixed_affine, dtype=np.float64)
    a_mov = np.asarray(moving_affine, dtype=np.float64)
    moving_h = np.concatenate([np.asarray(moving_pts, np.float64), np.ones((len(moving_pts), 1))], axis=1)
    moving_on_fixed = (np.linalg.inv(a_fix) @ a_mov @ moving_h.T).T[:, :-1]
    before = landmark_tre(moving_on_fixed, fixed_pts, torch.zeros_like(result.ddf)[None], a_fix)
    after = landmark_tre(moving_on_fixed, fixed_pts, result.ddf[None], a_fix)
    return {
        "tre_mm_before": float(before.mean()),
        "tre_mm_after": float(after.mean()),
        "tre_mm_after_median": float(after.median()),
    }
