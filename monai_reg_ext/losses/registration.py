"""The weighted registration loss: image dissimilarity + label dissimilarity + DDF regulariser (+ optional terms).

It is the ``loss_function`` of a MONAI ``SupervisedTrainer``: called as ``loss(pred, targets)`` with the network's
output dict and the batch targets (keys in ``docs/architecture.md``). From a bundle config::

    "loss": {"_target_": "monai_reg_ext.losses.RegistrationLoss",
             "image_loss": {"_target_": "monai_reg_ext.losses.LocalNormalizedCrossCorrelationLoss", "kernel_size": 7},
             "label_loss": {"_target_": "monai_reg_ext.losses.MultiScaleLabelLoss", "scales": [0, 1, 2, 4, 8, 16, 32]},
             "regulariser": {"_target_": "monai_reg_ext.losses.BendingEnergyLoss"},
             "weights": {"image": 1.0, "label": 1.0, "regulariser": 0.5}}

With a network built with ``inverse_consistent=True`` (training mode) the image and regulariser terms average both
directions and an ``inverse_consistency`` term (:class:`~monai_reg_ext.losses.InverseConsistencyLoss`) can be added.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Callable, Union

import torch
from monai.losses import MultiScaleLoss
from torch import nn

__all__ = ["RegistrationLoss"]

_TERMS = ("image", "label", "regulariser", "inverse_consistency", "outside_fov")
LossFn = Callable[..., torch.Tensor]
Weights = Union[Sequence[float], Mapping[str, float]]


def _parse_weights(weights: Weights) -> dict[str, float]:
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(_TERMS)
        if unknown:
            raise ValueError(f"RegistrationLoss: expected weight keys among {_TERMS}, got unknown {sorted(unknown)}.")
        parsed = {k: float(weights.get(k, 1.0)) for k in _TERMS}
    else:
        values = list(weights)
        if len(values) not in (3, 4, 5):
            raise ValueError(
                "RegistrationLoss: expected 3 to 5 weights (image, label, regulariser[, inverse_consistency[, "
                f"outside_fov]]), got {len(values)}: {values}."
            )
        parsed = {k: float(v) for k, v in zip(_TERMS, values + [1.0] * (len(_TERMS) - len(values)))}
    negative = {k: v for k, v in parsed.items() if v < 0}
    if negative:
        raise ValueError(f"RegistrationLoss: expected weights >= 0, got {negative}.")
    return parsed


class RegistrationLoss(nn.Module):
    """Weighted sum ``w_image * image_loss + w_label * label_loss + w_regulariser * regulariser``.

    - image term: ``image_loss(pred["pred_fixed_image"], targets["fixed_image"])``;
    - label term: ``label_loss(pred["pred_fixed_label"], targets["fixed_label"])``. A MONAI ``MultiScaleLoss``, whose
      ``forward`` takes ``(y_true, y_pred)``, is called in that order automatically;
    - regulariser term: ``regulariser(pred["ddf"])``;
    - inverse-consistency term: ``inverse_consistency(pred["ddf"], pred["ddf_inverse"])``;
    - field-of-view term: ``outside_fov(pred["ddf"], targets["fixed_image"])`` (e.g.
      :class:`~monai_reg_ext.losses.OutsideFixedDisplacementLoss`: no motion where the fixed image has no signal).

    Symmetric training: when ``pred`` holds ``ddf_inverse`` (a :class:`~monai_reg_ext.networks.RegistrationNet` with
    ``inverse_consistent=True`` in training mode), the image term is the mean of
    ``image_loss(pred_fixed_image, fixed_image)`` and ``image_loss(pred_moving_image, moving_image)`` (when the
    targets hold ``moving_image``, as :func:`~monai_reg_ext.engines.prepare_registration_batch` gives them) and the
    regulariser is the mean over ``ddf`` and ``ddf_inverse``.

    A term is disabled when its loss is ``None`` or its weight is 0 (as DeepReg). A term returning a non-scalar
    (``reduction="none"``) is averaged. The sign and range of the total follow from the terms (e.g. LNCC and GNCC are
    negative); it is the quantity to minimise.

    Side effect of ``forward``: when ``pred`` is a mutable mapping (the network's output dict in a MONAI engine,
    ``engine.state.output["pred"]``), the detached values of the active terms and the total are stored as Python
    floats in ``pred["loss_terms"]`` (keys ``image``, ``label``, ``regulariser``, ``total``) so that handlers can log
    them, e.g. ``output_transform=lambda o: o["pred"]["loss_terms"]``. ``terms`` has no side effect.

    Args:
        image_loss: image dissimilarity ``(y_pred, y_true) -> loss``, or ``None``.
        label_loss: label dissimilarity ``(y_pred, y_true) -> loss``, or ``None``.
        regulariser: DDF regulariser ``ddf -> loss``, or ``None``.
        inverse_consistency: ``(ddf, ddf_inverse) -> loss`` (e.g. ``InverseConsistencyLoss()``), or ``None``.
        weights: three to five weights ``(image, label, regulariser[, inverse_consistency[, outside_fov]])``, or a
            dict with keys among ``image``, ``label``, ``regulariser``, ``inverse_consistency``, ``outside_fov``
            (missing keys weigh 1.0). Weights must be ``>= 0``.
        outside_fov: ``(ddf, fixed_image) -> loss``, or ``None``.

    Raises:
        ValueError: on bad weights, or when no term is active.
    """

    def __init__(
        self,
        image_loss: LossFn | None = None,
        label_loss: LossFn | None = None,
        regulariser: LossFn | None = None,
        weights: Weights = (1.0, 1.0, 1.0),
        inverse_consistency: LossFn | None = None,
        outside_fov: LossFn | None = None,
    ) -> None:
        super().__init__()
        self.image_loss = image_loss
        self.label_loss = label_loss
        self.regulariser = regulariser
        self.inverse_consistency = inverse_consistency
        self.outside_fov = outside_fov
        self.weights = _parse_weights(weights)
        losses = {
            "image": image_loss,
            "label": label_loss,
            "regulariser": regulariser,
            "inverse_consistency": inverse_consistency,
            "outside_fov": outside_fov,
        }
        self.active = tuple(k for k in _TERMS if losses[k] is not None and self.weights[k] > 0)
        if not self.active:
            given = {k: type(v).__name__ for k, v in losses.items()}
            raise ValueError(
                f"RegistrationLoss: expected at least one loss with a weight > 0, got losses {given} "
                f"and weights {self.weights}."
            )

    def terms(self, pred: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The weighted active terms and their sum.

        Args:
            pred: network output with ``pred_fixed_image`` ``(B, 1, *S)``, ``ddf`` ``(B, D, *S)`` and optionally
                ``pred_fixed_label`` ``(B, L, *S)``.
            targets: batch targets with ``fixed_image`` and optionally ``fixed_label``.

        Returns:
            ``{"image": ..., "label": ..., "regulariser": ..., "inverse_consistency": ..., "outside_fov": ...,
            "total": ...}`` with only
            the active terms (already
            multiplied by their weights) and ``total``, their sum; each a scalar tensor with autograd.

        Raises:
            ValueError: when a key needed by an active term is missing or ``None`` (e.g. labels absent from the batch
                while the label term is active).
        """
        out: dict[str, torch.Tensor] = {}
        image_loss, label_loss, regulariser = self.image_loss, self.label_loss, self.regulariser
        if "image" in self.active and image_loss is not None:
            y_pred, y_true = self._get(pred, "pred_fixed_image", "pred"), self._get(targets, "fixed_image", "targets")
            value = image_loss(y_pred, y_true).mean()
            if pred.get("pred_moving_image") is not None and targets.get("moving_image") is not None:
                value = 0.5 * (value + image_loss(pred["pred_moving_image"], targets["moving_image"]).mean())
            out["image"] = self.weights["image"] * value
        if "label" in self.active and label_loss is not None:
            y_pred, y_true = self._get(pred, "pred_fixed_label", "pred"), self._get(targets, "fixed_label", "targets")
            if isinstance(label_loss, MultiScaleLoss):
                y_pred, y_true = y_true, y_pred  # MONAI's MultiScaleLoss.forward takes (y_true, y_pred)
            out["label"] = self.weights["label"] * label_loss(y_pred, y_true).mean()
        if "regulariser" in self.active and regulariser is not None:
            value = regulariser(self._get(pred, "ddf", "pred")).mean()
            if pred.get("ddf_inverse") is not None:
                value = 0.5 * (value + regulariser(pred["ddf_inverse"]).mean())
            out["regulariser"] = self.weights["regulariser"] * value
        if "inverse_consistency" in self.active and self.inverse_consistency is not None:
            ddf, ddf_inverse = self._get(pred, "ddf", "pred"), self._get(pred, "ddf_inverse", "pred")
            out["inverse_consistency"] = (
                self.weights["inverse_consistency"] * self.inverse_consistency(ddf, ddf_inverse).mean()
            )
        if "outside_fov" in self.active and self.outside_fov is not None:
            ddf, fixed = self._get(pred, "ddf", "pred"), self._get(targets, "fixed_image", "targets")
            out["outside_fov"] = self.weights["outside_fov"] * self.outside_fov(ddf, fixed).mean()
        total = torch.stack(list(out.values())).sum()
        out["total"] = total
        return out

    def forward(self, pred: Mapping[str, Any], targets: Mapping[str, Any]) -> torch.Tensor:
        """The total loss (scalar, with autograd); also stores ``pred["loss_terms"]`` (see the class docstring)."""
        terms = self.terms(pred, targets)
        if isinstance(pred, MutableMapping):
            pred["loss_terms"] = {k: float(v.detach()) for k, v in terms.items()}
        return terms["total"]

    def _get(self, data: Mapping[str, Any], key: str, where: str) -> torch.Tensor:
        if not isinstance(data, Mapping):
            raise ValueError(f"RegistrationLoss: expected {where} to be a dict, got {type(data).__name__}.")
        value = data.get(key)
        if value is None:
            term = {
                "pred_fixed_image": "image",
                "fixed_image": "image",
                "ddf": "regulariser",
                "ddf_inverse": "inverse_consistency",
            }.get(key, "label")
            hint = (
                " The network must be built with inverse_consistent=True and be in training mode."
                if key == "ddf_inverse"
                else ""
            )
            raise ValueError(
                f"RegistrationLoss: the {term} term (weight {self.weights[term]}) expected {where}[{key!r}], "
                f"got keys {sorted(data)}{' with None' if key in data else ''}. "
                f"Disable the term (weight 0 or loss None) or provide it.{hint}"
            )
        return value

    def extra_repr(self) -> str:
        return f"weights={self.weights}, active={self.active}"
