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
from .synth_deform import (
    RandAffineDeformation,
    RandBumpDeformation,
    RandComposeDeformation,
    RandDeformd,
    RandSlidingDeformation,
    RandSmoothDeformation,
    RandSynthPaird,
    affine_displacement_bound,
    random_affine_ddf,
    random_bump_ddf,
    random_multiscale_ddf,
    random_sliding_ddf,
)
from .synthesis import (
    RandLabelToImage,
    RandLabelToImaged,
    RandRelabel,
    RandRelabeld,
    RandShapeLabelMap,
    RandShapeLabelMapd,
    random_shape_label_map,
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
    "random_shape_label_map",
    "RandShapeLabelMap",
    "RandShapeLabelMapd",
    "RandRelabel",
    "RandRelabeld",
    "RandLabelToImage",
    "RandLabelToImaged",
    "random_affine_ddf",
    "affine_displacement_bound",
    "random_multiscale_ddf",
    "random_bump_ddf",
    "random_sliding_ddf",
    "RandAffineDeformation",
    "RandSmoothDeformation",
    "RandBumpDeformation",
    "RandSlidingDeformation",
    "RandComposeDeformation",
    "RandDeformd",
    "RandSynthPaird",
]
