"""Registration training and evaluation on MONAI's Ignite engines."""

from __future__ import annotations

from .batch import prepare_registration_batch
from .handlers import (
    AtomicCheckpointSaver,
    DatasetEpochHandler,
    LossTermsHandler,
    StopOnNonFiniteLoss,
    attach_progress_bar,
)
from .resume import FreshLoaderEachEpoch, ResumeCheckpointLoader, RngState, check_resume_checkpoint
from .workflows import create_evaluator, create_trainer

__all__ = [
    "prepare_registration_batch",
    "DatasetEpochHandler",
    "LossTermsHandler",
    "StopOnNonFiniteLoss",
    "AtomicCheckpointSaver",
    "RngState",
    "ResumeCheckpointLoader",
    "FreshLoaderEachEpoch",
    "check_resume_checkpoint",
    "attach_progress_bar",
    "create_trainer",
    "create_evaluator",
]
