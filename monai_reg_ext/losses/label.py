"""Multi-scale label losses (DeepReg's ``dice``, ``jaccard`` and ``cross-entropy``).

The labels are smoothed at several scales (Gaussian or Cauchy kernels, as DeepReg and MONAI's ``MultiScaleLoss``)
and the loss is averaged over the scales. The smoothing kernels are MONAI's (``monai.losses.multi_scale``, normalised
to sum 1 as DeepReg's), applied separably with zero padding and an output the size of the input, as DeepReg's
``separable_filter`` and MONAI's ``separable_filtering``. The filtering is done here one axis at a time rather than
with ``monai.networks.layers.separable_filtering``, which pads every axis before convolving (a 96^3 volume with the
sigma-32 Cauchy kernel becomes a 416^3 tensor) and measured 2.4x slower at sigma 32; kernels longer than the image
are cropped to ``2 S - 1`` taps, which leaves the result unchanged under zero padding.

Argument order: ``forward(y_pred, y_true)``, as ``torch.nn`` losses, *not* MONAI's ``MultiScaleLoss.forward(y_true,
y_pred)``. Labels are ``(B, L, *S)`` in ``[0, 1]``; see ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from monai.losses.multi_scale import make_cauchy_kernel, make_gaussian_kernel
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from .image import check_pred_target, reduce_per_sample

__all__ = ["MultiScaleLabelLoss"]

_LOSS_TYPES = ("dice", "jaccard", "cross-entropy")
_KERNELS = {"gaussian": make_gaussian_kernel, "cauchy": make_cauchy_kernel}


def _smooth(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable zero-padded filtering of ``x (B, C, *S)`` with the odd 1-D ``kernel`` along every spatial axis."""
    nd, channels = x.ndim - 2, x.shape[1]
    kernel = kernel.to(device=x.device, dtype=x.dtype)  # the loss module itself may sit on another device
    conv = (F.conv2d, F.conv3d)[nd - 2]
    tail = (kernel.numel() - 1) // 2
    for axis in range(nd):
        size = x.shape[axis + 2]
        k = kernel[max(0, tail - size + 1) : tail + size] if tail >= size else kernel  # exact crop, see module doc
        shape = [channels, 1] + [1] * nd
        shape[axis + 2] = k.numel()
        padding = [0] * nd
        padding[axis] = (k.numel() - 1) // 2
        x = conv(x, k.reshape(1, 1, *shape[2:]).expand(shape), padding=tuple(padding), groups=channels)
    return x


class MultiScaleLabelLoss(_Loss):
    """DeepReg's multi-scale label loss: generalised Dice, Jaccard or cross-entropy, averaged over smoothing scales.

    Each label channel of each sample is scored on its own (DeepReg splits multi-label volumes into one sample per
    label), then the values are averaged over the label channels and the scales. With ``t = y_true`` and
    ``p = y_pred`` flattened over the spatial axes, and ``w = background_weight``:

    - ``"dice"``: ``I = (1 - w) sum(t p) + w sum((1 - t)(1 - p))``,
      ``S = (1 - w) sum(t^q + p^q) + w sum((1 - t)^q + (1 - p)^q)``, ``dice = (2 I + smooth_nr) / (S + smooth_dr)``,
      loss ``= 1 - dice``. With ``squared=False`` (``q = 1``) this is DeepReg's generalised Dice exactly
      (numerator ``2(sum tp - w sum(t + p) + w N)``, denominator ``(1 - 2w) sum(t + p) + 2 w N``). With
      ``squared=True`` (``q = 2``, the default; V-Net / MONAI ``DiceLoss(squared_pred=True)``) a *soft* label
      compared with itself scores exactly 1, so identical labels give a loss of 0 at every smoothing scale; the two
      forms are equal for binary labels.
    - ``"jaccard"``: same ``I`` and ``S``, ``jaccard = (I + smooth_nr) / (S - I + smooth_dr)``, loss ``= 1 - jaccard``.
    - ``"cross-entropy"``: ``fg = -mean(t log(p + smooth_nr))``, ``bg = -mean((1 - t) log(1 - p + smooth_nr))``, loss
      ``= (1 - w) fg + w bg`` (``fg`` alone when ``w = 0``), as DeepReg (not negated there either).

    Sign and range (inputs in ``[0, 1]``): Dice and Jaccard losses lie in ``[0, 1]``, ``0`` for identical labels (and
    for two empty labels, thanks to the smoothing). DeepReg returns ``-dice`` in ``[-1, 0]``; this loss is that plus
    one, which has the same gradient. Cross-entropy lies in ``[0, -log(smooth_nr)]`` (``11.51`` for ``1e-5``); it is
    not 0 for identical soft labels (it is the cross-entropy, not a divergence). DeepReg's values: ``t = 0.6``,
    ``p = 0.3`` give ``0.72236``; with ``background_weight=0.2`` ``0.60642``; with ``binary=True`` ``11.5129``.

    Args:
        loss_type: ``"dice"``, ``"jaccard"`` or ``"cross-entropy"``.
        scales: smoothing sigmas in voxels; ``0`` means no smoothing. ``None`` (default) means a single scale ``0``.
            DeepReg's demos use ``[0, 1, 2, 4, 8, 16, 32]``.
        kernel: ``"gaussian"`` (truncated at 3 sigma) or ``"cauchy"`` (truncated at 5 sigma); normalised to sum 1.
        background_weight: weight ``w`` in ``[0, 1]`` of the background class; ``0`` scores the foreground only.
        binary: threshold both labels at 0.5 (after smoothing) before scoring, as DeepReg. The loss then has zero
            gradient: use it for evaluation, not training.
        smooth_nr: added to the numerator (Dice, Jaccard) or inside the logarithm (cross-entropy).
        smooth_dr: added to the denominator (Dice, Jaccard); unused by cross-entropy.
        squared: use squared sums in the Dice/Jaccard denominator (see above); ``False`` reproduces DeepReg.
            Unused by cross-entropy.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch gives a scalar; ``"none"`` gives ``(B,)``.

    Raises:
        ValueError: on an unknown ``loss_type`` or ``kernel``, ``background_weight`` outside ``[0, 1]``, a negative
            scale or an empty ``scales``.
    """

    def __init__(
        self,
        loss_type: Literal["dice", "jaccard", "cross-entropy"] = "dice",
        scales: Sequence[float] | None = None,
        kernel: Literal["gaussian", "cauchy"] = "gaussian",
        background_weight: float = 0.0,
        binary: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        squared: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if loss_type not in _LOSS_TYPES:
            raise ValueError(f"MultiScaleLabelLoss: expected loss_type in {_LOSS_TYPES}, got {loss_type!r}.")
        if kernel not in _KERNELS:
            raise ValueError(f"MultiScaleLabelLoss: expected kernel in {tuple(_KERNELS)}, got {kernel!r}.")
        if not 0.0 <= background_weight <= 1.0:
            raise ValueError(f"MultiScaleLabelLoss: expected background_weight in [0, 1], got {background_weight}.")
        scales = [0.0] if scales is None else [float(s) for s in scales]
        if not scales or any(s < 0 for s in scales):
            raise ValueError(f"MultiScaleLabelLoss: expected a non-empty list of scales >= 0, got {scales}.")
        self.loss_type = loss_type
        self.scales = tuple(scales)
        self.kernel = kernel
        self.background_weight = float(background_weight)
        self.binary = bool(binary)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.squared = bool(squared)
        # one normalised 1-D kernel per non-zero scale, as non-persistent buffers so that they follow .to(device)
        self._kernel_names: list[str | None] = []
        for i, s in enumerate(self.scales):
            if s == 0:
                self._kernel_names.append(None)
                continue
            k = _KERNELS[kernel](s).float()
            name = f"kernel_{i}"
            self.register_buffer(name, k / k.sum(), persistent=False)
            self._kernel_names.append(name)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            y_pred: predicted (warped moving) label, ``(B, L, H, W[, Z])`` in ``[0, 1]``.
            y_true: fixed label, same shape.

        Returns:
            A scalar (``reduction="mean"|"sum"``) or ``(B,)`` (``"none"``), averaged over labels and scales.

        Raises:
            ValueError: on wrong ndim or mismatched shapes.
        """
        check_pred_target(y_pred, y_true, type(self).__name__)
        per_scale = []
        for name in self._kernel_names:
            if name is None:
                p, t = y_pred, y_true
            else:
                k = getattr(self, name).to(y_pred.dtype)
                p, t = _smooth(y_pred, k), _smooth(y_true, k)
            per_scale.append(self._single_scale(p, t))
        per_label = torch.stack(per_scale, dim=0).mean(dim=0)  # (B, L)
        return reduce_per_sample(per_label.mean(dim=1), self.reduction)

    def _single_scale(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Loss of one scale, ``(B, L, *S) -> (B, L)``."""
        if self.binary:
            p = (p >= 0.5).to(p.dtype)
            t = (t >= 0.5).to(t.dtype)
        p = p.flatten(2)
        t = t.flatten(2)
        w = self.background_weight
        if self.loss_type == "cross-entropy":
            ce = -(t * torch.log(p + self.smooth_nr)).mean(dim=-1)
            if w > 0:
                ce_bg = -((1 - t) * torch.log(1 - p + self.smooth_nr)).mean(dim=-1)
                ce = (1 - w) * ce + w * ce_bg
            return ce
        intersection = (p * t).sum(dim=-1)
        total = self._power_sum(p) + self._power_sum(t)
        if w > 0:
            intersection = (1 - w) * intersection + w * ((1 - p) * (1 - t)).sum(dim=-1)
            total = (1 - w) * total + w * (self._power_sum(1 - p) + self._power_sum(1 - t))
        if self.loss_type == "dice":
            score = (2 * intersection + self.smooth_nr) / (total + self.smooth_dr)
        else:
            score = (intersection + self.smooth_nr) / (total - intersection + self.smooth_dr)
        return 1 - score

    def _power_sum(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x if self.squared else x).sum(dim=-1)

    def extra_repr(self) -> str:
        return (
            f"loss_type={self.loss_type!r}, scales={list(self.scales)}, kernel={self.kernel!r}, "
            f"background_weight={self.background_weight}, binary={self.binary}, squared={self.squared}"
        )
