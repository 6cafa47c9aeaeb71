"""Registration metrics as MONAI ``CumulativeIterationMetric`` classes, for Ignite engines.

Each class wraps one function of :mod:`monai_reg_ext.metrics` and works like MONAI's ``DiceMetric``: call it on a
batch (``metric(y_pred, y)``; batch-first tensors or lists of channel-first tensors), then ``aggregate()``
(``nan`` values are skipped by the reduction) and ``reset()``. In an Ignite engine wrap it with MONAI's
``IgniteMetricHandler``, whose ``output_transform`` must return the ``(y_pred, y)`` pair from
``engine.state.output``::

    from monai.handlers import IgniteMetricHandler, from_engine

    # engine.state.output is (a list of) flat dicts holding the keys:
    dice = IgniteMetricHandler(
        RegistrationDiceMetric(), output_transform=from_engine(["pred_fixed_label", "fixed_label"])
    )
    # or nested {"pred": {...network outputs...}, "label": {...targets...}} (SupervisedEvaluator with a dict network
    # output); registration_output_transform looks in both layouts:
    dice = IgniteMetricHandler(
        RegistrationDiceMetric(), output_transform=registration_output_transform("pred_fixed_label", "fixed_label")
    )
    folding = IgniteMetricHandler(FoldingFractionMetric(), output_transform=registration_output_transform("ddf"))
    evaluator = SupervisedEvaluator(..., key_val_metric={"val_dice": dice}, additional_metrics={"folding": folding})

``registration_metric_handler(metric, pred_key, target_key)`` builds the handler in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from .deformation import folding_fraction, sd_log_jacobian
from .image import image_lncc, image_ssd
from .label import centroid_distance, label_dice, label_hd95

__all__ = [
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


class RegistrationMetric(CumulativeIterationMetric):
    """Base class: ``_compute_tensor`` returns ``(B, C)`` values; ``aggregate`` reduces them ignoring ``nan``.

    Args:
        reduction: MONAI ``MetricReduction`` (``"mean"``, ``"none"``, ``"mean_batch"``, ...).
        get_not_nans: if True, ``aggregate`` returns ``(value, not_nans)``.
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"{type(self).__name__}: nothing to aggregate; call the metric on a batch first.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class RegistrationDiceMetric(RegistrationMetric):
    """Binary Dice per label (:func:`label_dice`): ``y_pred`` = warped moving label, ``y`` = fixed label.

    Buffers ``(B, L)``; ``nan`` (both labels empty) is skipped by the reduction.
    """

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("RegistrationDiceMetric needs y (the fixed label).")
        return label_dice(y_pred, y, threshold=self.threshold)


class HD95Metric(RegistrationMetric):
    """95th-percentile Hausdorff distance per label (:func:`label_hd95`, MONAI's), in mm with ``spacing``."""

    def __init__(self, spacing: float | Sequence[float] | None = None, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spacing = spacing
        self.threshold = threshold

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("HD95Metric needs y (the fixed label).")
        return label_hd95(y_pred, y, spacing=kwargs.get("spacing", self.spacing), threshold=self.threshold)


class CentroidDistanceMetric(RegistrationMetric):
    """DeepReg's centroid distance per label (:func:`centroid_distance`), in voxels or in mm with ``spacing``."""

    def __init__(self, spacing: float | Sequence[float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spacing = spacing

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("CentroidDistanceMetric needs y (the fixed label).")
        return centroid_distance(y_pred, y, spacing=self.spacing)


class FoldingFractionMetric(RegistrationMetric):
    """Fraction of folded voxels (:func:`folding_fraction`): ``y_pred`` = DDF ``(B, D, *S)``, ``y`` = optional mask.

    Buffers ``(B, 1)``.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        return folding_fraction(y_pred, mask=y)[:, None]


class SDLogJacobianMetric(RegistrationMetric):
    """SDlogJ (:func:`sd_log_jacobian`): ``y_pred`` = DDF ``(B, D, *S)``, ``y`` = optional mask. Buffers ``(B, 1)``."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        return sd_log_jacobian(y_pred, mask=y)[:, None]


class SSDMetric(RegistrationMetric):
    """Mean squared difference (:func:`image_ssd`): ``y_pred`` = warped moving image, ``y`` = fixed image."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("SSDMetric needs y (the fixed image).")
        return image_ssd(y_pred, y)[:, None]


class LNCCMetric(RegistrationMetric):
    """Local squared NCC score (:func:`image_lncc`, higher is better): ``y_pred`` = warped image, ``y`` = fixed."""

    def __init__(self, kernel_size: int = 7, kernel_type: str = "rectangular", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.kernel_type = kernel_type

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("LNCCMetric needs y (the fixed image).")
        return image_lncc(y_pred, y, kernel_size=self.kernel_size, kernel_type=self.kernel_type)[:, None]


_NESTED = ("pred", "label", "image")  # monai.utils.CommonKeys.PRED / LABEL / IMAGE


def _lookup(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        if key in item:
            return item[key]
        for sub in _NESTED:
            if isinstance(item.get(sub), Mapping) and key in item[sub]:
                return item[sub][key]
    raise KeyError(
        f"key {key!r} not found in the engine output (looked at the top level and under {list(_NESTED)}); "
        f"available: {list(item) if isinstance(item, Mapping) else type(item).__name__}."
    )


def registration_output_transform(
    pred_key: str, target_key: str | None = None, mask_above: float | None = None
) -> Callable[[Any], tuple[Any, Any]]:
    """Output transform returning ``(output[pred_key], output[target_key] or None)`` for ``IgniteMetricHandler``.

    ``engine.state.output`` may be a dict or a list of per-sample dicts (MONAI engines decollate by default). Keys
    are looked up at the top level, then under ``"pred"``, ``"label"`` and ``"image"`` (the nested layout of a
    ``SupervisedEvaluator`` whose network returns a dict and whose targets are a dict).

    ``mask_above``: when given, the prediction is replaced by the target wherever the target is ``<= mask_above``
    (:func:`monai_reg_ext.losses.mask_to_fixed`), so an image metric only scores the fixed image's field of view.
    """

    def _pair(pred: Any, target: Any) -> tuple[Any, Any]:
        if mask_above is not None and target is not None:
            from ..losses.masked import mask_to_fixed

            pred = mask_to_fixed(pred, target, mask_above)
        return pred, target

    def _transform(output: Any) -> tuple[Any, Any]:
        if isinstance(output, Mapping):
            return _pair(_lookup(output, pred_key), None if target_key is None else _lookup(output, target_key))
        if isinstance(output, Sequence) and not isinstance(output, (str, torch.Tensor)):
            pairs = [
                _pair(_lookup(o, pred_key), None if target_key is None else _lookup(o, target_key)) for o in output
            ]
            preds = [p for p, _ in pairs]
            targets = None if target_key is None else [t for _, t in pairs]
            return preds, targets
        raise TypeError(f"engine output: expected a dict or a list of dicts, got {type(output).__name__}.")

    return _transform


def registration_metric_handler(
    metric: CumulativeIterationMetric, pred_key: str, target_key: str | None = None, **kwargs: Any
):
    """``IgniteMetricHandler(metric, output_transform=registration_output_transform(pred_key, target_key))``.

    Example: ``registration_metric_handler(RegistrationDiceMetric(), "pred_fixed_label", "fixed_label")``.
    """
    from monai.handlers import IgniteMetricHandler

    return IgniteMetricHandler(
        metric_fn=metric, output_transform=registration_output_transform(pred_key, target_key), **kwargs
    )
