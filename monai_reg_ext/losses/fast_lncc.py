"""Fast local normalised cross-correlation: MONAI's LNCC (rectangular window) from direct separable box sums.

The value is MONAI's :class:`~monai.losses.LocalNormalizedCrossCorrelationLoss` with ``kernel_type="rectangular"``
(same formula, ``smooth_nr``/``smooth_dr`` and zero padding), computed with separable box sums run as shifted
additions along each axis (no grouped 5-channel convolution, no padding copies, a box-sum backward) and with the
target's window sums and variance computed once and reused while the same, unchanged target tensor is passed again
(an optimiser passes the same fixed image at every iteration of a level). See ``docs/conventions.md``.
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from ._box import box_sum
from ._cache import TargetCache

__all__ = ["FastLNCCLoss"]


class FastLNCCLoss(_Loss):
    """Negative local squared zero-normalised cross-correlation over a cubic window (MONAI's LNCC, rectangular).

    For each voxel and channel, with window sums ``S`` over ``N = kernel_size^D`` voxels (zeros outside the image):
    ``cross = S[t p] - S[p] S[t] / N``, ``var_t = max(S[t^2] - S[t]^2 / N, smooth_dr)`` (same for ``p``), and
    ``ncc = (cross^2 + smooth_nr) / (var_t var_p)``; the loss is ``-ncc`` reduced over batch, channels and voxels.

    Sign and range: about ``[-1, 0]``, ``-1`` where ``pred`` is locally an affine function of ``target``; minimise it.

    Args:
        spatial_dims: 2 or 3.
        kernel_size: odd window width in voxels (MONAI's ``kernel_size``).
        cache_target: reuse the target's window sums while the same unchanged tensor is passed (no cache for a
            target that requires a gradient).
        reduction: ``"mean"`` (default) / ``"sum"`` over batch, channels and voxels, or ``"none"`` for the
            ``(B, C, *S)`` map.
        smooth_nr: added to the numerator (MONAI's default 0).
        smooth_dr: lower bound of each local variance (MONAI's default 1e-5).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        kernel_size: int = 7,
        cache_target: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
        smooth_nr: float = 0.0,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if spatial_dims not in (2, 3):
            raise ValueError(f"FastLNCCLoss: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"FastLNCCLoss: kernel_size must be a positive odd number, got {kernel_size}.")
        self.spatial_dims = int(spatial_dims)
        self.kernel_size = int(kernel_size)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.cache_target = bool(cache_target)
        self._cache = TargetCache()

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        return box_sum(x, self.kernel_size // 2, self.spatial_dims)

    def target_statistics(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window sum ``S[t]`` and clamped variance sum ``max(S[t^2] - S[t]^2 / N, smooth_dr)``, both ``(B, C, *S)``."""
        t_sum = self._window(target)
        t2_sum = self._window(target * target)
        t_var = torch.clamp_min(t2_sum - (t_sum / self.kernel_size**self.spatial_dims) * t_sum, self.smooth_dr)
        return t_sum, t_var

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: warped moving image ``(B, C, *S)`` (``S`` of length ``spatial_dims``).
            target: fixed image, same shape (its statistics are cached when ``cache_target``).

        Returns:
            A scalar (``"mean"``/``"sum"``) or the ``(B, C, *S)`` map of ``-ncc`` (``"none"``).

        Raises:
            ValueError: on a wrong number of dimensions or mismatched shapes.
        """
        if pred.ndim - 2 != self.spatial_dims:
            raise ValueError(
                f"FastLNCCLoss: expected pred (B, C, *S) with {self.spatial_dims} spatial dims, "
                f"got shape {tuple(pred.shape)}."
            )
        if target.shape != pred.shape:
            raise ValueError(f"FastLNCCLoss: expected target of shape {tuple(pred.shape)}, got {tuple(target.shape)}.")
        target = target.to(pred.dtype)
        if self.cache_target:
            t_sum, t_var = self._cache.get(target, self.target_statistics)
        else:
            t_sum, t_var = self.target_statistics(target)
        p_sum = self._window(pred)
        p2_sum = self._window(pred * pred)
        tp_sum = self._window(target * pred)
        p_avg = p_sum / self.kernel_size**self.spatial_dims
        cross = tp_sum - p_avg * t_sum
        p_var = torch.clamp_min(p2_sum - p_avg * p_sum, self.smooth_dr)
        ncc = (cross * cross + self.smooth_nr) / (t_var * p_var)
        if self.reduction == LossReduction.SUM.value:
            return ncc.sum().neg()
        if self.reduction == LossReduction.NONE.value:
            return ncc.neg()
        return ncc.mean().neg()
