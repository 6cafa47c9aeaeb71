"""Image dissimilarity restricted to where the fixed image has signal (e.g. inside an ultrasound field of view).

Ultrasound is zero outside its fan or cone. A similarity over the whole grid then scores the moving image (an MR, say)
against a flat black region and rewards copying the field-of-view edge into the warped image. Setting the prediction
to the fixed image's value wherever the fixed image is at or below ``threshold`` makes both images identical (and
constant) there, so that region adds no dissimilarity and no gradient.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["FixedMaskedLoss", "mask_to_fixed"]


def mask_to_fixed(y_pred: torch.Tensor, y_true: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """``y_pred`` where ``y_true > threshold``, ``y_true`` elsewhere; shapes ``(B, C, *S)``, equal.

    Raises:
        ValueError: when the shapes differ.
    """
    if y_pred.shape != y_true.shape:
        raise ValueError(
            f"mask_to_fixed: expected prediction and fixed image of one shape (B, C, *S), got "
            f"{tuple(y_pred.shape)} and {tuple(y_true.shape)}."
        )
    return torch.where(y_true > threshold, y_pred, y_true)


class FixedMaskedLoss(nn.Module):
    """Wrap an image loss ``(y_pred, y_true) -> loss`` so that only voxels with ``y_true > threshold`` count.

    Example (LNCC inside an ultrasound cone; ``y_true`` is the fixed ultrasound scaled to [0, 1])::

        "image_loss": {"_target_": "monai_reg_ext.losses.FixedMaskedLoss",
                       "loss": {"_target_": "monai_reg_ext.losses.LocalNormalizedCrossCorrelationLoss"},
                       "threshold": 0.0}

    Args:
        loss: the image loss to wrap (e.g. LNCC, SSD, GMI).
        threshold: fixed-image intensity at or below which a voxel is outside the field of view.
    """

    def __init__(self, loss: Callable[..., torch.Tensor], threshold: float = 0.0) -> None:
        super().__init__()
        self.loss = loss
        self.threshold = float(threshold)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """``loss(mask_to_fixed(y_pred, y_true, threshold), y_true)``; shapes ``(B, C, *S)``."""
        return self.loss(mask_to_fixed(y_pred, y_true, self.threshold), y_true)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
