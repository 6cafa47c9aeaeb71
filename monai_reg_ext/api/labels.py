"""Labels as users bring them: one-hot channels in [0, 1], or integer label maps (0..K, or a 0/255 mask).

A label map (one channel, integer values, some above 1) becomes one-hot channels, one per label value present in
either image (0 is background); after warping it is written back as a label map with the same values (argmax of
the warped one-hot channels and the background), as ITK-SNAP and 3D Slicer segmentations are.
"""

from __future__ import annotations

import torch

__all__ = ["is_label_map", "label_values", "to_one_hot", "to_label_map"]


def is_label_map(label: torch.Tensor) -> bool:
    """Whether ``label`` ``(C, *S)`` is an integer label map: one channel, integer values, some outside [0, 1]."""
    if label.shape[0] != 1:
        return False
    lo, hi = float(label.min()), float(label.max())
    if lo >= 0 and hi <= 1:
        return False
    return bool(torch.equal(label, label.round())) and lo >= 0


def label_values(*labels: torch.Tensor) -> tuple[int, ...]:
    """Sorted non-zero values present in any of the label maps ``(1, *S)``."""
    values: set[int] = set()
    for lab in labels:
        values |= {int(v) for v in torch.unique(lab).tolist() if int(v) != 0}
    return tuple(sorted(values))


def to_one_hot(label: torch.Tensor, values: tuple[int, ...]) -> torch.Tensor:
    """One-hot channels ``(len(values), *S)`` (float, 0/1) of a label map ``(1, *S)``, one per value."""
    return torch.cat([(label == v).to(torch.float32) for v in values], dim=0)


def to_label_map(one_hot: torch.Tensor, values: tuple[int, ...]) -> torch.Tensor:
    """Label map ``(1, *S)`` (int32, values from ``values``, 0 background) of warped one-hot channels ``(L, *S)``.

    Each voxel takes the channel with the largest weight, background (``1 - sum``) included.
    """
    background = (1.0 - one_hot.sum(dim=0, keepdim=True)).clamp_min(0.0)
    index = torch.cat([background, one_hot], dim=0).argmax(dim=0, keepdim=True)
    lookup = torch.tensor((0, *values), dtype=torch.int32, device=one_hot.device)
    return lookup[index]
