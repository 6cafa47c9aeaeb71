"""Image dissimilarity losses (DeepReg's ``ssd`` and ``gncc``; MONAI's LNCC and GMI re-exported).

All losses here are *minimised*: lower is more similar. They take ``(y_pred, y_true)`` in that order, as
``torch.nn`` losses do: ``y_pred`` is the warped moving image (``pred_fixed_image``), ``y_true`` the fixed image.
Images are ``(B, C, *S)`` with ``S`` of length 2 or 3; see ``docs/conventions.md``.

``LocalNormalizedCrossCorrelationLoss`` and ``GlobalMutualInformationLoss`` are MONAI's own classes, re-exported
unchanged so that users find every image loss in one place:

- ``LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=3, kernel_type="rectangular", ...)``: range
  ``[-1, 0]``, ``-1`` for identical images. Set ``spatial_dims=2`` for 2D. DeepReg's ``lncc`` used ``kernel_size=9``.
- ``GlobalMutualInformationLoss(kernel_type="gaussian", num_bins=23, sigma_ratio=0.5, ...)``: the negative mutual
  information, range ``(-inf, 0]`` (``0`` for independent or constant images). Its bins assume intensities in
  ``[0, 1]``.
"""

from __future__ import annotations

import torch
from monai.losses import GlobalMutualInformationLoss, LocalNormalizedCrossCorrelationLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = [
    "SumSquaredDifferenceLoss",
    "GlobalNCCLoss",
    "LocalNormalizedCrossCorrelationLoss",
    "GlobalMutualInformationLoss",
]


def check_pred_target(y_pred: torch.Tensor, y_true: torch.Tensor, name: str = "loss") -> None:
    """Check that ``y_pred`` and ``y_true`` are ``(B, C, *S)`` tensors (2D or 3D) of the same shape.

    Args:
        y_pred: prediction, ``(B, C, H, W[, Z])``.
        y_true: target, same shape as ``y_pred``.
        name: the caller's name, used in the error message.

    Raises:
        ValueError: when a tensor is not 4-d or 5-d, or the two shapes differ (the message gives expected vs got).
    """
    if y_pred.ndim not in (4, 5):
        raise ValueError(
            f"{name}: expected y_pred of shape (B, C, H, W) or (B, C, H, W, Z) (4 or 5 dims), "
            f"got {y_pred.ndim} dims with shape {tuple(y_pred.shape)}."
        )
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: expected y_true with the shape of y_pred {tuple(y_pred.shape)}, got {tuple(y_true.shape)}."
        )


def reduce_per_sample(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a per-sample loss of shape ``(B,)``: ``"mean"`` and ``"sum"`` give a scalar, ``"none"`` keeps ``(B,)``."""
    if reduction == LossReduction.MEAN.value:
        return values.mean()
    if reduction == LossReduction.SUM.value:
        return values.sum()
    return values


class SumSquaredDifferenceLoss(_Loss):
    """DeepReg's ``ssd`` loss: the **mean** of squared intensity differences (despite its name).

    ``loss_b = mean_{c, x} (y_pred[b, c, x] - y_true[b, c, x])^2`` per sample ``b``, then reduced over the batch.

    Sign and range: ``>= 0``; ``0`` if and only if the images are equal. For images in ``[0, 1]`` it is at most 1.
    DeepReg's value: constant images 0.6 and 0.3 give ``0.09``.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch gives a scalar; ``"none"`` gives ``(B,)``.
    """

    def __init__(self, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            y_pred: warped moving image, ``(B, C, H, W[, Z])``.
            y_true: fixed image, same shape.

        Returns:
            A scalar (``reduction="mean"|"sum"``) or ``(B,)`` (``"none"``).

        Raises:
            ValueError: on wrong ndim or mismatched shapes.
        """
        check_pred_target(y_pred, y_true, type(self).__name__)
        per_sample = (y_pred - y_true).pow(2).flatten(1).mean(dim=1)
        return reduce_per_sample(per_sample, self.reduction)


class GlobalNCCLoss(_Loss):
    """DeepReg's ``gncc`` loss: the negative global squared normalised cross-correlation.

    Per sample, over all channels and voxels: ``ncc2 = (|cov(p, t)|^2 + eps) / (var(p) var(t) + eps)``, and the loss
    is ``-ncc2`` (population covariance and variances, as DeepReg).

    Sign and range: in ``[-1, 0]`` (up to ``eps``); ``-1`` when one image is an affine function ``a t + b`` (``a != 0``)
    of the other, ``0`` for uncorrelated images. Two constant images give ``(0 + eps) / (0 + eps) = 1``, i.e. a loss of
    ``-1`` and never NaN, as in DeepReg.

    Args:
        eps: smoothing added to numerator and denominator (DeepReg: ``1e-5``).
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch gives a scalar; ``"none"`` gives ``(B,)``.
    """

    def __init__(self, eps: float = 1e-5, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if eps < 0:
            raise ValueError(f"GlobalNCCLoss: expected eps >= 0, got {eps}.")
        self.eps = float(eps)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            y_pred: warped moving image, ``(B, C, H, W[, Z])``.
            y_true: fixed image, same shape.

        Returns:
            A scalar (``reduction="mean"|"sum"``) or ``(B,)`` (``"none"``), in ``[-1, 0]``.

        Raises:
            ValueError: on wrong ndim or mismatched shapes.
        """
        check_pred_target(y_pred, y_true, type(self).__name__)
        p = y_pred.flatten(1)
        t = y_true.flatten(1)
        p = p - p.mean(dim=1, keepdim=True)
        t = t - t.mean(dim=1, keepdim=True)
        cov = (p * t).mean(dim=1)
        var_p = p.pow(2).mean(dim=1)
        var_t = t.pow(2).mean(dim=1)
        ncc2 = (cov.pow(2) + self.eps) / (var_p * var_t + self.eps)
        return reduce_per_sample(-ncc2, self.reduction)
