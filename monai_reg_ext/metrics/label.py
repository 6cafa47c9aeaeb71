"""Label-overlap metrics: Dice, HD95 and DeepReg's centroid distance.

Labels are ``(B, L, *spatial)`` with values in ``[0, 1]`` (one channel per label); ``pred_label`` is the warped
moving label ("``pred_fixed_label``") and ``fixed_label`` the fixed label (docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import compute_hausdorff_distance

from ._utils import as_float_tensor, check_label, check_same_shape

__all__ = ["label_dice", "label_hd95", "label_centroid", "centroid_distance"]


def _spacing_tensor(spacing, ndim: int, ref: torch.Tensor) -> torch.Tensor:
    if spacing is None:
        return torch.ones(ndim, dtype=ref.dtype, device=ref.device)
    s = torch.as_tensor(spacing, dtype=ref.dtype, device=ref.device).reshape(-1)
    if s.numel() == 1:
        s = s.expand(ndim)
    if s.numel() != ndim:
        raise ValueError(
            f"spacing: expected a number or {ndim} values (mm per voxel along each array axis), got {s.numel()}."
        )
    return s


def label_dice(pred_label: torch.Tensor, fixed_label: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary Dice per label between the warped moving label and the fixed label.

    Both labels are binarised with ``>= threshold`` (DeepReg's ``label_binary_dice``), then
    ``dice = 2 |P ∩ F| / (|P| + |F|)``.

    When **both** binarised labels are empty the Dice is undefined and the result is ``nan`` (MONAI's
    ``DiceMetric(ignore_empty=True)`` does the same for an empty ground truth); MONAI's metric reductions and
    ``torch.nanmean`` skip such entries. DeepReg returned ``1`` there (because of its smoothing terms). When only one
    is empty the Dice is ``0``.

    Args:
        pred_label: ``(B, L, *spatial)`` warped moving label, values in ``[0, 1]``.
        fixed_label: ``(B, L, *spatial)`` fixed label.
        threshold: binarisation threshold.

    Returns:
        ``(B, L)`` Dice in ``[0, 1]`` (``nan`` where both labels are empty).
    """
    pred = as_float_tensor(pred_label, "pred_label")
    fixed = as_float_tensor(fixed_label, "fixed_label").to(pred.device)
    check_label(pred, "pred_label")
    check_same_shape(pred, fixed, ("pred_label", "fixed_label"))
    p = (pred >= threshold).flatten(2).float()
    f = (fixed >= threshold).flatten(2).float()
    inter = (p * f).sum(-1)
    denom = p.sum(-1) + f.sum(-1)
    return torch.where(denom > 0, 2.0 * inter / denom.clamp_min(1.0), torch.full_like(denom, float("nan")))


def label_hd95(
    pred_label: torch.Tensor,
    fixed_label: torch.Tensor,
    spacing: float | Sequence[float] | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """95th-percentile symmetric Hausdorff distance per label (MONAI's ``compute_hausdorff_distance``).

    The labels are binarised with ``>= threshold``; MONAI's surface-distance implementation is then used with
    ``percentile=95`` and ``include_background=True`` (every channel is a foreground label here).

    Args:
        pred_label: ``(B, L, *spatial)`` warped moving label.
        fixed_label: ``(B, L, *spatial)`` fixed label.
        spacing: voxel size in mm along each array axis (a number or one value per axis); ``None`` gives voxels.
        threshold: binarisation threshold.

    Returns:
        ``(B, L)`` HD95 in mm (or voxels); ``nan`` when the label is empty in either input (MONAI 1.6, which
        also warns about it).
    """
    pred = as_float_tensor(pred_label, "pred_label")
    fixed = as_float_tensor(fixed_label, "fixed_label").to(pred.device)
    check_label(pred, "pred_label")
    check_same_shape(pred, fixed, ("pred_label", "fixed_label"))
    if spacing is not None and not isinstance(spacing, (int, float)):
        spacing = [float(s) for s in spacing]
    return compute_hausdorff_distance(
        (pred >= threshold).float(),
        (fixed >= threshold).float(),
        include_background=True,
        percentile=95,
        spacing=spacing,
    )


def label_centroid(label: torch.Tensor, spacing: float | Sequence[float] | None = None) -> torch.Tensor:
    """Centroid of each (soft) label, weighted by the label values, in voxel-index coordinates.

    Args:
        label: ``(B, L, *spatial)`` with values in ``[0, 1]``.
        spacing: if given, coordinates are multiplied by it (mm from voxel 0 along each array axis).

    Returns:
        ``(B, L, D)`` centroid; channel ``k`` is the coordinate along array axis ``k``. ``nan`` for an empty label
        (DeepReg returned the grid value at ``(0 + eps) / (0 + eps) = 1`` there).
    """
    lab = as_float_tensor(label, "label")
    ndim = check_label(lab, "label")
    axes = [torch.arange(s, dtype=lab.dtype, device=lab.device) for s in lab.shape[2:]]
    total = lab.flatten(2).sum(-1)  # (B, L)
    coords = []
    for k, ax in enumerate(axes):
        shape = [1] * ndim
        shape[k] = -1
        coords.append((lab * ax.reshape(shape)).flatten(2).sum(-1) / total)
    centroid = torch.stack(coords, dim=-1)
    return centroid * _spacing_tensor(spacing, ndim, centroid)


def centroid_distance(
    pred_label: torch.Tensor, fixed_label: torch.Tensor, spacing: float | Sequence[float] | None = None
) -> torch.Tensor:
    """Euclidean distance between the label centroids (DeepReg's ``label_tre`` / ``compute_centroid_distance``).

    The centroids are weighted by the (soft) label values, as in DeepReg. This is a label-based surrogate, not the
    landmark TRE (see :func:`monai_reg_ext.metrics.landmark_tre`).

    Args:
        pred_label: ``(B, L, *spatial)`` warped moving label.
        fixed_label: ``(B, L, *spatial)`` fixed label.
        spacing: voxel size in mm per array axis; ``None`` gives the distance in voxels.

    Returns:
        ``(B, L)`` distance in voxels (or mm); ``nan`` if either label is empty.
    """
    pred = as_float_tensor(pred_label, "pred_label")
    fixed = as_float_tensor(fixed_label, "fixed_label").to(pred.device)
    check_same_shape(pred, fixed, ("pred_label", "fixed_label"))
    diff = label_centroid(pred, spacing) - label_centroid(fixed, spacing)
    return torch.linalg.vector_norm(diff, dim=-1)
