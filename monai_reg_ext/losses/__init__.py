"""Registration losses: image dissimilarity, label dissimilarity, DDF regularisers and their weighted sum.

Every loss is an ``nn.Module`` to *minimise*, works in 2D and 3D, batched, on any device, and takes
``(y_pred, y_true)`` (image and label losses) or ``ddf`` (regularisers). Conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from .consistency import InverseConsistencyLoss
from .deform import BendingEnergyLoss, GradientNormLoss
from .fast_lncc import FastLNCCLoss
from .image import (
    GlobalMutualInformationLoss,
    GlobalNCCLoss,
    LocalNormalizedCrossCorrelationLoss,
    SumSquaredDifferenceLoss,
)
from .label import MultiScaleLabelLoss
from .masked import FixedMaskedLoss, OutsideFixedDisplacementLoss, mask_to_fixed
from .mind import MINDSSCLoss, mind_ssc
from .ngf import NormalizedGradientFieldLoss
from .registration import RegistrationLoss
from .similarity import SIMILARITY_NAMES, similarity_loss

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
    "OutsideFixedDisplacementLoss",
    "mask_to_fixed",
    "FastLNCCLoss",
    "MINDSSCLoss",
    "mind_ssc",
    "NormalizedGradientFieldLoss",
    "similarity_loss",
    "SIMILARITY_NAMES",
]
