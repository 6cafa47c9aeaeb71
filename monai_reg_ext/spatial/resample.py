"""World-coordinate geometry between two grids: what differs, the voxel map between them, resampling, and warping
a moving image that lies on a grid of its own.

Affines are voxel-to-world (RAS, nibabel/MONAI convention), ``(D + 1, D + 1)``. The map from fixed voxel indices to
moving voxel indices is ``fixed_to_moving = inv(A_moving) @ A_fixed``. A DDF ``u`` on the fixed grid (fixed voxels,
``docs/conventions.md``) samples the moving image at the moving voxel ``fixed_to_moving @ (p + u(p))``: the same
result as resampling the moving image onto the fixed grid first and then warping it, except that nothing of the
moving image outside the fixed field of view is lost.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .warp import check_ddf, identity_grid

__all__ = ["affine_nd", "grid_differences", "resample_to_grid", "fixed_to_moving_matrix", "sample_at", "warp_to_grid"]

logger = logging.getLogger(__name__)


def affine_nd(affine, ndim: int) -> np.ndarray:
    """The ``(ndim + 1, ndim + 1)`` float64 affine of ``ndim`` spatial axes (2D images may carry a 4x4 affine)."""
    from monai.data.utils import to_affine_nd

    return np.asarray(to_affine_nd(ndim, np.asarray(affine, dtype=np.float64)), dtype=np.float64)


def grid_differences(img, reference) -> list[str]:
    """What differs between the grids of two ``MetaTensor`` ``(C, *S)``: ``shape``, ``spacing``, ``orientation``,
    ``origin`` (empty when they match)."""
    nd = img.ndim - 1
    a, b = affine_nd(img.affine, nd), affine_nd(reference.affine, nd)
    diffs = []
    if tuple(img.shape[1:]) != tuple(reference.shape[1:]):
        diffs.append(f"shape {tuple(img.shape[1:])} vs {tuple(reference.shape[1:])}")
    sa, sb = np.linalg.norm(a[:nd, :nd], axis=0), np.linalg.norm(b[:nd, :nd], axis=0)
    if not np.allclose(sa, sb, atol=1e-4):
        diffs.append(f"spacing {np.round(sa, 4).tolist()} vs {np.round(sb, 4).tolist()}")
    if not np.allclose(a[:nd, :nd] / sa, b[:nd, :nd] / sb, atol=1e-4):
        diffs.append("orientation")
    if not np.allclose(a[:nd, nd], b[:nd, nd], atol=1e-4):
        diffs.append("origin")
    if not diffs and not np.allclose(a, b, atol=1e-4):
        diffs.append("affine")
    return diffs


def resample_to_grid(img, reference, name: str, reference_name: str = "fixed image", mode: str = "bilinear"):
    """Resample the ``MetaTensor`` ``img`` ``(C, *S)`` onto the grid of ``reference`` in world coordinates.

    Skipped when the grids already match; otherwise a warning says what differs (shape, spacing, orientation,
    origin). Values outside ``img`` repeat its border.
    """
    from monai.transforms import ResampleToMatch

    diffs = grid_differences(img, reference)
    if not diffs:
        return img
    logger.warning(
        "%s: grid differs from the %s (%s): resampled onto the %s grid in world coordinates (%s).",
        name,
        reference_name,
        ", ".join(diffs),
        reference_name,
        mode,
    )
    return ResampleToMatch(mode=mode, padding_mode="border")(img, img_dst=reference)


def fixed_to_moving_matrix(moving_affine, fixed_affine, ndim: int) -> torch.Tensor:
    """``inv(A_moving) @ A_fixed`` as a float64 tensor ``(D + 1, D + 1)``: fixed voxel indices -> moving voxel indices.

    Raises:
        ValueError: when the moving affine is singular.
    """
    a_mov, a_fix = affine_nd(moving_affine, ndim), affine_nd(fixed_affine, ndim)
    if abs(np.linalg.det(a_mov[:ndim, :ndim])) < 1e-12:
        raise ValueError(f"moving image: its affine is singular (determinant 0): {a_mov.tolist()}.")
    return torch.as_tensor(np.linalg.inv(a_mov) @ a_fix, dtype=torch.float64)


def sample_at(image: torch.Tensor, points: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"):
    """Sample ``image`` ``(B, C, *S_in)`` at voxel positions ``points`` ``(B, D, *S_out)`` (indices of ``image``).

    Returns ``(B, C, *S_out)`` (``align_corners=True``: index ``i`` is the centre of voxel ``i``).
    """
    ndim = points.shape[1]
    size = image.shape[2:]
    scale = torch.tensor([2.0 / max(int(s) - 1, 1) for s in size], device=points.device, dtype=points.dtype)
    grid = points * scale.view(1, ndim, *([1] * ndim)) - 1.0
    grid = grid.permute(0, *range(2, ndim + 2), 1).flip(-1)  # (B, *S, D), x (last array axis) first
    src = image.to(points.dtype) if image.is_floating_point() else image.to(points.dtype)
    return F.grid_sample(src, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def warp_to_grid(
    image: torch.Tensor,
    ddf: torch.Tensor,
    fixed_to_moving: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Warp a moving image on its own grid onto the fixed grid: ``warped(p) = moving(M (p + ddf(p)))``.

    Args:
        image: moving image ``(B, C, *S_moving)``.
        ddf: ``(B, D, *S_fixed)`` in fixed voxels (pull, ``docs/conventions.md``).
        fixed_to_moving: ``M`` ``(D + 1, D + 1)`` (or ``(B, D + 1, D + 1)``), see :func:`fixed_to_moving_matrix`.
        mode: ``"bilinear"`` or ``"nearest"`` (labels).
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.

    Returns:
        ``(B, C, *S_fixed)`` in the dtype of ``image`` (float for integer images).
    """
    ndim = check_ddf(ddf)
    m = fixed_to_moving.to(device=ddf.device, dtype=ddf.dtype)
    m = m.expand(ddf.shape[0], ndim + 1, ndim + 1) if m.ndim == 2 else m
    points = identity_grid(ddf.shape[2:], device=ddf.device, dtype=ddf.dtype).unsqueeze(0) + ddf
    points = torch.einsum("bij,bj...->bi...", m[:, :ndim, :ndim], points)
    points = points + m[:, :ndim, ndim].view(ddf.shape[0], ndim, *([1] * ndim))
    out = sample_at(image, points, mode=mode, padding_mode=padding_mode)
    return out.to(image.dtype) if image.is_floating_point() else out
