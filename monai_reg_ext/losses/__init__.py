"""Registration losses: image dissimilarity, label dissimilarity, DDF regularisers and their weighted sum.

Every loss is an ``nn.Module`` to *minimise*, works in 2D and 3D, batched, on any device, and takes
``(y_pred, y_true)`` (image and label losses) or ``ddf`` (regularisers). Conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from .consistency import InverseConsistencyLoss
from .deform import BendingEnergyLoss, GradientNormLoss
from .image import (
    GlobalMutualInformationLoss,
    GlobalNCCLoss,
    LocalNormalizedCrossCorrelationLoss,
    SumSquaredDifferenceLoss,
)
from .label import MultiScaleLabelLoss
from .masked import FixedMaskedLoss, mask_to_fixed
from .registration import RegistrationLoss

__all__ = [
    "SumSquaredDifferenceLoss",
    "GlobalNCCLoss",
    "LocalNormalizedCrossCorrelationLoss",
    "GlobalMutualInformationLoss",
    "MultiScaleLabelLoss",
    "BendingEnergyLoss",
    "GradientNormLoss",
    "InverseConsistencyLoss",
    "RegistrationLoss",
    "FixedMaskedLoss",
    "mask_to_fixed",
]
