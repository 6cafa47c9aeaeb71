"""Transforms for registration samples, as MONAI array and dictionary transforms (``Compose``-ready).

Each dictionary transform ``Xd`` has an array version ``X`` doing the work on one tensor (``keys`` and
``allow_missing_keys`` only on ``Xd``; randomizable pairs share one random state, so ``X`` and ``Xd`` draw the same
for the same seed), except the inherently multi-key ones (:class:`RandSynthPaird`, :class:`InvertDDFd`). Resizing,
spacing and orientation are invertible, so MONAI's ``Invertd`` maps a prediction back to the native grid; a DDF
needs :class:`InvertDDFd` (or :class:`ResizeDDFd`), which also converts its values. Inventory: ``docs/data.md``
("Array and dictionary transforms"); conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from .augment import (
    FIXED_KEYS,
    MOVING_KEYS,
    RandRegistrationAffine,
    RandRegistrationAffined,
    RandRegistrationIntensity,
    RandRegistrationIntensityd,
    RandSmoothDeform,
    RandSmoothDeformd,
)
from .invert import InvertDDFd, ResizeDDF, ResizeDDFd
from .preprocess import (
    IMAGE_KEYS,
    LABEL_KEYS,
    CheckLabel,
    CheckLabeld,
    LoadRegistrationImage,
    LoadRegistrationImaged,
    ResizeLinear,
    ResizeLineard,
    registration_preprocessing,
)
from .synth_deform import (
    RandAffineDeformation,
    RandBumpDeformation,
    RandComposeDeformation,
    RandDeform,
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
from .warp import WarpImage, WarpImaged

__all__ = [
    "IMAGE_KEYS",
    "LABEL_KEYS",
    "MOVING_KEYS",
    "FIXED_KEYS",
    "LoadRegistrationImage",
    "LoadRegistrationImaged",
    "CheckLabel",
    "CheckLabeld",
    "ResizeLinear",
    "ResizeLineard",
    "ResizeDDF",
    "ResizeDDFd",
    "InvertDDFd",
    "registration_preprocessing",
    "RandRegistrationAffine",
    "RandRegistrationAffined",
    "RandSmoothDeform",
    "RandSmoothDeformd",
    "RandRegistrationIntensity",
    "RandRegistrationIntensityd",
    "WarpImage",
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
    "RandDeform",
    "RandDeformd",
    "RandSynthPaird",
]
