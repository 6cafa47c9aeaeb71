"""Registration metrics, as plain functions and as MONAI/Ignite metric classes.

Functions take batched tensors and return per-sample (and per-label) values; the classes in
:mod:`.registration` wrap them as ``CumulativeIterationMetric`` for ``IgniteMetricHandler`` and MONAI engines.
Conventions (DDF units, pull semantics, moving vs fixed): ``docs/conventions.md``.
"""

from __future__ import annotations

from .deformation import LOG_JACOBIAN_CLIP, folding_fraction, jacobian_metrics, sd_log_jacobian
from .image import image_lncc, image_ssd
from .label import centroid_distance, label_centroid, label_dice, label_hd95
from .landmark import landmark_tre, sample_ddf
from .registration import (
    CentroidDistanceMetric,
    FoldingFractionMetric,
    HD95Metric,
    LNCCMetric,
    RegistrationDiceMetric,
    RegistrationMetric,
    SDLogJacobianMetric,
    SSDMetric,
    registration_metric_handler,
    registration_output_transform,
)

__all__ = [
    "label_dice",
    "label_hd95",
    "label_centroid",
    "centroid_distance",
    "landmark_tre",
    "sample_ddf",
    "folding_fraction",
    "sd_log_jacobian",
    "jacobian_metrics",
    "LOG_JACOBIAN_CLIP",
    "image_ssd",
    "image_lncc",
    "RegistrationMetric",
    "RegistrationDiceMetric",
    "HD95Metric",
    "CentroidDistanceMetric",
    "FoldingFractionMetric",
    "SDLogJacobianMetric",
    "SSDMetric",
    "LNCCMetric",
    "registration_output_transform",
    "registration_metric_handler",
]
