"""Dict transforms for registration samples: preprocessing and paired augmentation (MONAI ``Compose``-ready).

See ``docs/data.md``; conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from .augment import FIXED_KEYS, MOVING_KEYS, RandRegistrationAffined, RandRegistrationIntensityd, RandSmoothDeformd
from .preprocess import (
    IMAGE_KEYS,
    LABEL_KEYS,
    CheckLabeld,
    LoadRegistrationImaged,
    ResizeLineard,
    registration_preprocessing,
)
from .warp import WarpImaged

__all__ = [
    "IMAGE_KEYS",
    "LABEL_KEYS",
    "MOVING_KEYS",
    "FIXED_KEYS",
    "LoadRegistrationImaged",
    "CheckLabeld",
    "ResizeLineard",
    "registration_preprocessing",
    "RandRegistrationAffined",
    "RandSmoothDeformd",
    "RandRegistrationIntensityd",
    "WarpImaged",
]
