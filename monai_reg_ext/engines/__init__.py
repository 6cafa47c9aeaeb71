"""Registration training and evaluation on MONAI's Ignite engines."""

from __future__ import annotations

from .batch import prepare_registration_batch
from .handlers import AtomicCheckpointSaver, DatasetEpochHandler, LossTermsHandler, StopOnNonFiniteLoss
from .workflows import create_evaluator, create_trainer

__all__ = [
    "prepare_registration_batch",
    "DatasetEpochHandler",
    "LossTermsHandler",
    "StopOnNonFiniteLoss",
    "AtomicCheckpointSaver",
    "create_trainer",
    "create_evaluator",
]
