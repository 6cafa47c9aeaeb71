"""Registration networks on MONAI backbones, DeepReg's conditional segmentation model, self-describing checkpoints.

Conventions (DDF layout, voxel units, moving vs fixed): ``docs/conventions.md``.
"""

from __future__ import annotations

from .backbones import build_backbone, default_backbone_kwargs
from .checkpoint import load_checkpoint, save_checkpoint
from .conditional import ConditionalSegmentationNet
from .correlation import CorrelationNet
from .registration import RegistrationDDFNet, RegistrationNet, integrate_velocity

__all__ = [
    "RegistrationNet",
    "RegistrationDDFNet",
    "integrate_velocity",
    "ConditionalSegmentationNet",
    "CorrelationNet",
    "save_checkpoint",
    "load_checkpoint",
    "build_backbone",
    "default_backbone_kwargs",
]
