"""Image dissimilarity restricted to where the fixed image has signal (e.g. inside an ultrasound field of view).

Ultrasound is zero outside its fan or cone. A similarity over the whole grid then scores the moving image (an MR, say)
against a flat black region and rewards copying the field-of-view edge into the warped image. Setting the prediction
to the fixed image's value wherever the fixed image is at or below ``threshold`` makes both images identical (and
constant) there, so that region adds no dissimilarity and no gradient.

That region then gives the network no evidence at all, and a smoothness regulariser alone lets the displacement
found inside the field of view spread outside it: whatever lies outside (the rest of the brain, say) gets deformed for
no reason. :class:`OutsideFixedDisplacementLoss` is the prior "no evidence, no motion": the mean squared displacement
where the fixed image has no signal.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["FixedMaskedLoss", "OutsideFixedDisplacementLoss", "mask_to_fixed"]


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


class OutsideFixedDisplacementLoss(nn.Module):
    """Mean squared displacement ``|ddf|^2`` (voxels^2) over the voxels where the fixed image is ``<= threshold``.

    A prior for fields of view smaller than the volume (ultrasound cones, slabs): outside the fixed image's signal
    there is no evidence for any motion, so the DDF should stay near zero there; a smoothness regulariser (e.g.
    bending energy) makes the transition at the field-of-view edge gradual. It is the ``outside_fov`` term of
    :class:`~monai_reg_ext.losses.RegistrationLoss`::

        "outside_fov": {"_target_": "monai_reg_ext.losses.OutsideFixedDisplacementLoss", "threshold": 0.0}

    Args:
        threshold: fixed-image intensity at or below which a voxel is outside the field of view.
    """

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, ddf: torch.Tensor, fixed_image: torch.Tensor) -> torch.Tensor:
        """Per-batch-item loss ``(B,)``: the mean of ``|ddf|^2`` outside the field of view (0 without such voxels).

        Args:
            ddf: ``(B, D, *S)`` displacement in voxels.
            fixed_image: ``(B, C, *S)``; a voxel is outside when every channel is ``<= threshold``.

        Raises:
            ValueError: when the batch or spatial shapes differ.
        """
        if ddf.shape[0] != fixed_image.shape[0] or ddf.shape[2:] != fixed_image.shape[2:]:
            raise ValueError(
                "OutsideFixedDisplacementLoss: expected ddf (B, D, *S) and fixed image (B, C, *S) with the same B and "
                f"S, got {tuple(ddf.shape)} and {tuple(fixed_image.shape)}."
            )
        outside = (fixed_image <= self.threshold).all(dim=1).to(ddf.dtype)  # (B, *S)
        squared = (ddf**2).sum(dim=1)
        dims = tuple(range(1, outside.ndim))
        return (squared * outside).sum(dim=dims) / outside.sum(dim=dims).clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
