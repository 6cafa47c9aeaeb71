"""Scoring one pair: metric plug-ins ``metric(pair, output) -> {name: value}`` on the pair's fixed grid.

Every metric is a callable of a :class:`~.pairs.Pair` and a :class:`~.methods.MethodOutput`; it returns a dict of
named floats, or an empty dict when the pair lacks what it needs (no landmarks, no true DDF...). The factories here
cover the common metrics, all computed with :mod:`monai_reg_ext.metrics`:

- :func:`dice`: Dice per label of the moving label warped with the DDF (bilinear or nearest, then ``>= 0.5``), or
  :func:`dice_argmax` (one-hot labels plus a background channel warped, argmax);
- :func:`tre`: landmark target registration error in mm (mean, max);
- :func:`folding` (share of voxels with Jacobian determinant ``<= 0``) and :func:`sdlogj`;
- :func:`ddf_error`: mean ``|R (ddf - true ddf)|`` in mm; :func:`displacement`: mean or max DDF norm;
- :func:`image_similarity`: LNCC, SSD (mean squared difference) or global mutual information.

A bundle adds its own metric by passing any such callable (e.g. a cycle residual) to
:func:`~.runner.evaluate_pairs`. With the identity method (``output.identity``) the moving image and label are used
unwarped, so "no registration" scores the inputs themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from ..metrics import folding_fraction, image_lncc, image_ssd, label_dice, landmark_tre, sd_log_jacobian
from ..spatial import warp_image
from .methods import MethodOutput
from .pairs import Pair

__all__ = [
    "Metric",
    "warped_image",
    "warped_label",
    "region",
    "dice",
    "dice_argmax",
    "tre",
    "folding",
    "sdlogj",
    "ddf_error",
    "displacement",
    "image_similarity",
    "default_metrics",
    "score_pair",
]

Metric = Callable[[Pair, MethodOutput], Mapping[str, float]]


def warped_image(pair: Pair, output: MethodOutput) -> torch.Tensor:
    """The moving image on the fixed grid after registration ``(1, C, *S)``: the method's own warped image when it
    gave one, else ``warp_image(moving, ddf)`` (bilinear, border); the moving image itself for the identity."""
    if output.identity:
        return pair.moving_image
    if output.warped_image is not None:
        return output.warped_image
    if "image" not in output.cache:
        image = pair.moving_image
        output.cache["image"] = warp_image(image, output.ddf.to(image.dtype))
    return output.cache["image"]


def warped_label(pair: Pair, output: MethodOutput, mode: Literal["bilinear", "nearest"] = "bilinear") -> torch.Tensor:
    """The moving label warped with the DDF ``(1, L, *S)`` in the label's dtype (soft for ``bilinear``); unwarped for
    the identity.

    Raises:
        ValueError: the pair has no moving label.
    """
    if pair.moving_label is None:
        raise ValueError(f"pair {pair.name!r}: no moving label to warp.")
    if output.identity:
        return pair.moving_label
    key = f"label_{mode}"
    if key not in output.cache:
        label = pair.moving_label
        output.cache[key] = warp_image(label, output.ddf.to(label.dtype), mode=mode)
    return output.cache[key]


def region(pair: Pair, mask: str | None) -> torch.Tensor | None:
    """A boolean region ``(*S)`` of the fixed grid: None (everywhere), ``"label"`` (any fixed label ``> 0.5``) or
    the name of one of ``pair.masks``.

    Raises:
        KeyError: an unknown mask name (the pair's masks are listed).
    """
    if mask is None:
        return None
    if mask == "label":
        if pair.fixed_label is None:
            raise KeyError(f"pair {pair.name!r}: region 'label' needs a fixed label.")
        return pair.fixed_label[0].amax(0) > 0.5
    if mask not in pair.masks:
        raise KeyError(f"pair {pair.name!r}: no mask {mask!r}; it has {sorted(pair.masks)}.")
    return pair.masks[mask].bool()


def _label_names(n: int, names: Sequence[str] | None, prefix: str, suffix: str) -> list[str]:
    if names is None:
        names = [""] if n == 1 else [f"label{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"dice: {n} labels but {len(names)} names ({list(names)}).")
    return [(f"{prefix}_{name}" if name else prefix) + suffix for name in names]


def dice(
    names: Sequence[str] | None = None,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    mask: str | None = None,
    prefix: str = "dice",
    suffix: str = "",
) -> Metric:
    """Dice per label (:func:`monai_reg_ext.metrics.label_dice`, both labels ``>= 0.5``) of the warped moving label
    against the fixed label; with ``mask``, both are restricted to that region first.

    Keys: ``f"{prefix}_{name}{suffix}"`` per label (``names`` default ``label0``, ``label1``...; one unnamed label:
    ``prefix`` alone). ``nan`` where both labels are empty.
    """

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        if pair.moving_label is None or pair.fixed_label is None:
            return {}
        warped, fixed = warped_label(pair, output, mode) >= 0.5, pair.fixed_label >= 0.5
        where = region(pair, mask)
        if where is not None:
            warped, fixed = warped & where, fixed & where
        values = label_dice(warped.float(), fixed.float())[0].tolist()
        return dict(zip(_label_names(len(values), names, prefix, suffix), values))

    return metric


def dice_argmax(names: Sequence[str] | None = None, prefix: str = "dice") -> Metric:
    """Dice per label of disjoint one-hot labels: the moving labels and a background channel ``1 - sum`` are warped
    bilinearly (float32), the argmax over them gives the warped labels, scored against the fixed labels."""

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        if pair.moving_label is None or pair.fixed_label is None:
            return {}
        lab = pair.moving_label[0].float()
        soft = torch.cat([(1.0 - lab.sum(0, keepdim=True)).clamp_min(0.0), lab], 0)[None]
        warped = soft if output.identity else warp_image(soft, output.ddf.float(), mode="bilinear")
        arg = warped.argmax(1)
        hard = torch.stack([(arg == i + 1) for i in range(lab.shape[0])], 1).float()
        values = label_dice(hard, pair.fixed_label.float())[0].tolist()
        return dict(zip(_label_names(len(values), names, prefix, ""), values))

    return metric


def tre() -> Metric:
    """Landmark TRE in mm (:func:`monai_reg_ext.metrics.landmark_tre`: fixed landmark ``f`` goes to ``f + ddf(f)``,
    compared with its moving landmark in the moving affine): ``tre_mm`` (mean), ``tre_max_mm``, ``n_landmarks``."""

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        if pair.moving_landmarks is None or pair.fixed_landmarks is None:
            return {}
        moving_size = tuple(pair.moving_image.shape[2:])
        values = landmark_tre(
            pair.moving_landmarks,
            pair.fixed_landmarks,
            output.ddf.double(),
            fixed_affine=pair.fixed_affine,
            moving_affine=pair.moving_affine,
            moving_spatial_size=None if moving_size == pair.spatial_shape else moving_size,
        )
        return {"tre_mm": float(values.mean()), "tre_max_mm": float(values.max()), "n_landmarks": int(len(values))}

    return metric


def folding(mask: str | None = None, percent: bool = False) -> Metric:
    """Share of voxels (in ``mask``, see :func:`region`) with Jacobian determinant ``<= 0``: ``folding_fraction``, or
    ``folding_pct`` (in %) with ``percent``."""

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        value = float(folding_fraction(output.ddf.float(), region(pair, mask))[0])
        return {"folding_pct": 100.0 * value} if percent else {"folding_fraction": value}

    return metric


def sdlogj(mask: str | None = None, key: str = "sd_log_jacobian") -> Metric:
    """Standard deviation of the log Jacobian determinant (in ``mask``): ``{key: value}``."""

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        return {key: float(sd_log_jacobian(output.ddf.float(), region(pair, mask))[0])}

    return metric


def _norm_mm(pair: Pair, ddf: torch.Tensor, mm: bool) -> torch.Tensor:
    """``|ddf|`` per voxel ``(*S)`` in voxels, or in mm through the fixed affine's linear part."""
    d = ddf[0].double()
    if mm:
        if pair.fixed_affine is None:
            raise ValueError(f"pair {pair.name!r}: displacements in mm need the fixed affine.")
        rot = torch.as_tensor(np.asarray(pair.fixed_affine)[: d.shape[0], : d.shape[0]], dtype=d.dtype)
        d = torch.einsum("ij,j...->i...", rot, d)
    return torch.linalg.vector_norm(d, dim=0)


def ddf_error(mask: str | None = "label") -> Metric:
    """Mean ``|R (ddf - ddf_true)|`` in mm (``R`` the fixed affine's linear part) in ``mask``: ``error_mm``."""

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        if pair.true_ddf is None:
            return {}
        err = _norm_mm(pair, output.ddf.double() - pair.true_ddf.double(), mm=True)
        where = region(pair, mask)
        return {"error_mm": float((err if where is None else err[where]).mean())}

    return metric


def displacement(
    stat: Literal["mean", "max"] = "mean", mask: str | None = None, mm: bool = False, key: str = ""
) -> Metric:
    """Mean or max norm of the DDF (in ``mask``), in voxels or mm: ``{key: value}`` (default
    ``f"{stat}_displacement_{'mm' if mm else 'vox'}"``)."""
    name = key or f"{stat}_displacement_{'mm' if mm else 'vox'}"

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        norm = _norm_mm(pair, output.ddf, mm) if mm else output.ddf.norm(dim=1)[0]
        where = region(pair, mask)
        values = norm if where is None else norm[where]
        return {name: float(values.max() if stat == "max" else values.mean())}

    return metric


def image_similarity(kind: Literal["lncc", "ssd", "mi"], key: str = "", kernel_size: int = 7) -> Metric:
    """Similarity of the warped moving image and the fixed image: ``lncc`` (window ``kernel_size``, higher is
    better), ``ssd`` (mean squared difference) or ``mi`` (MONAI's global mutual information, 23 bins); ``{key or kind:
    value}``, the mean over the batch."""
    if kind not in ("lncc", "ssd", "mi"):
        raise ValueError(f"image_similarity: kind must be 'lncc', 'ssd' or 'mi', got {kind!r}.")
    mi_loss = None
    if kind == "mi":
        from ..losses import GlobalMutualInformationLoss

        mi_loss = GlobalMutualInformationLoss(reduction="none")

    def metric(pair: Pair, output: MethodOutput) -> dict[str, float]:
        img, fixed = warped_image(pair, output).float(), pair.fixed_image.float()
        if kind == "lncc":
            value = image_lncc(img, fixed, kernel_size=kernel_size).mean()
        elif kind == "ssd":
            value = image_ssd(img, fixed).mean()
        else:
            value = -mi_loss(img, fixed).mean()
        return {key or kind: float(value)}

    return metric


def default_metrics() -> list[Metric]:
    """Dice per label, TRE (mm), folding fraction and SDlogJ over the whole grid."""
    return [dice(), tre(), folding(), sdlogj()]


def score_pair(pair: Pair, output: MethodOutput, metrics: Sequence[Metric]) -> dict[str, float]:
    """Every metric of one pair and one method's output, merged in order (a later key replaces an earlier one)."""
    scores: dict[str, float] = {}
    for metric in metrics:
        scores.update(metric(pair, output))
    return scores
