"""Inverse consistency of a forward and a backward DDF: the round trip moving -> fixed -> moving should be the identity.

DDFs are ``(B, D, *S)`` in voxels with pull semantics (``docs/conventions.md``): ``ddf`` maps the moving image onto
the fixed grid, ``ddf_inverse`` (the same network with the images swapped) maps the fixed image onto the moving grid.
Both round trips are scored on their own grid with :func:`monai_reg_ext.compose_ddf`:

- on the moving grid, ``compose_ddf(first=ddf, second=ddf_inverse)(y) = ddf_inverse(y) + ddf(y + ddf_inverse(y))``;
- on the fixed grid, ``compose_ddf(first=ddf_inverse, second=ddf)(x) = ddf(x) + ddf_inverse(x + ddf(x))``.

Both are zero for an exactly inverse-consistent pair. Penalising them also removes a common bias of the two
directions (a network that shifts every pair by ``t`` leaves ``2 t`` here), which an image loss alone can reward.
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from ..spatial import compose_ddf

__all__ = ["InverseConsistencyLoss"]


class InverseConsistencyLoss(_Loss):
    """Mean squared norm (voxels²) of both round-trip residuals of a forward and a backward DDF.

    ``loss = 0.5 * (mean_x |r_fixed(x)|² + mean_y |r_moving(y)|²)`` where ``|.|²`` sums over the ``D`` channels and
    the means run over the spatial voxels; ``reduction`` then acts over the batch.

    Args:
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one value per sample, shape ``(B,)``).

    Raises:
        ValueError: when the two fields differ in shape (both directions need moving and fixed on one grid).
    """

    def __init__(self, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)

    def forward(self, ddf: torch.Tensor, ddf_inverse: torch.Tensor) -> torch.Tensor:
        """Args: ``ddf`` ``(B, D, *S)`` moving -> fixed and ``ddf_inverse`` ``(B, D, *S)`` fixed -> moving, voxels."""
        if ddf.shape != ddf_inverse.shape:
            raise ValueError(
                "InverseConsistencyLoss: expected ddf and ddf_inverse of one shape (B, D, *S) (moving and fixed on "
                f"one grid), got {tuple(ddf.shape)} and {tuple(ddf_inverse.shape)}."
            )
        on_moving = compose_ddf(first=ddf, second=ddf_inverse)
        on_fixed = compose_ddf(first=ddf_inverse, second=ddf)
        dims = tuple(range(1, ddf.ndim))
        per_sample = 0.5 * ((on_moving**2).sum(1).mean(dims[:-1]) + (on_fixed**2).sum(1).mean(dims[:-1]))
        if self.reduction == LossReduction.MEAN.value:
            return per_sample.mean()
        if self.reduction == LossReduction.SUM.value:
            return per_sample.sum()
        return per_sample
