"""One name per image similarity: ``similarity_loss("lncc" | "mi" | "mind" | "ngf" | "ssd", spatial_dims)``.

Every returned loss is an ``nn.Module`` called as ``loss(pred, target)`` (warped moving image, fixed image; both
``(B, C, *S)``) that returns a scalar to minimise. Intensities are expected min-max scaled to ``[0, 1]`` (the
defaults of ``"mi"`` and ``"ngf"`` assume it). See ``docs/conventions.md``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .fast_lncc import FastLNCCLoss
from .image import GlobalMutualInformationLoss, SumSquaredDifferenceLoss
from .mind import MINDSSCLoss
from .ngf import NormalizedGradientFieldLoss

__all__ = ["similarity_loss", "SIMILARITY_NAMES"]


def _lncc(spatial_dims: int, **kwargs: Any) -> nn.Module:
    return FastLNCCLoss(spatial_dims, **{"kernel_size": 7, **kwargs})


def _mi(spatial_dims: int, **kwargs: Any) -> nn.Module:
    return GlobalMutualInformationLoss(**{"kernel_type": "b-spline", "num_bins": 32, **kwargs})


_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "lncc": _lncc,
    "mi": _mi,
    "mind": lambda spatial_dims, **kwargs: MINDSSCLoss(spatial_dims, **kwargs),
    "ngf": lambda spatial_dims, **kwargs: NormalizedGradientFieldLoss(spatial_dims, **kwargs),
    "ssd": lambda spatial_dims, **kwargs: SumSquaredDifferenceLoss(**kwargs),
}

SIMILARITY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def similarity_loss(name: str, spatial_dims: int, **kwargs: Any) -> nn.Module:
    """Build an image dissimilarity loss by name.

    - ``"lncc"``: :class:`FastLNCCLoss` (window 7; MONAI's LNCC value, fixed-image statistics cached), ``[-1, 0]``.
    - ``"mi"``: MONAI's :class:`GlobalMutualInformationLoss` with a cubic B-spline Parzen window (Mattes) and 32
      bins: the negative mutual information, ``<= 0``. Its B-spline bins span each image's own min-max range.
    - ``"mind"``: :class:`MINDSSCLoss` (radius 2, dilation 2), ``>= 0``; single-channel images.
    - ``"ngf"``: :class:`NormalizedGradientFieldLoss` (``eps = 0.01``), ``[0, 1]``.
    - ``"ssd"``: :class:`SumSquaredDifferenceLoss` (mean squared difference), ``>= 0``; same modality only.

    Args:
        name: one of :data:`SIMILARITY_NAMES` (case-insensitive).
        spatial_dims: 2 or 3 (``"mi"`` and ``"ssd"`` do not depend on it).
        kwargs: passed to the loss's constructor, overriding the defaults above (e.g. ``kernel_size=9``).

    Returns:
        The loss module.

    Raises:
        ValueError: for an unknown name (the message lists the accepted names) or ``spatial_dims`` not 2 or 3.
    """
    key = str(name).strip().lower()
    if key not in _FACTORIES:
        raise ValueError(
            f"similarity_loss: unknown similarity {name!r}; expected one of {', '.join(SIMILARITY_NAMES)}."
        )
    if spatial_dims not in (2, 3):
        raise ValueError(f"similarity_loss: spatial_dims must be 2 or 3, got {spatial_dims}.")
    return _FACTORIES[key](spatial_dims, **kwargs)
