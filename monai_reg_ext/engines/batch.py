"""Turn registration batches into the ``(inputs, targets, args, kwargs)`` that MONAI's engines expect.

MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator`` call ``network(inputs, *args, **kwargs)`` and
``loss_function(pred, targets)``; with :func:`prepare_registration_batch` that becomes
``network(moving_image, fixed_image, moving_label=...)`` and ``RegistrationLoss(pred_dict, targets_dict)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["prepare_registration_batch", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("moving_image", "fixed_image")


def _to(x: torch.Tensor, device: str | torch.device | None, non_blocking: bool) -> torch.Tensor:
    x = x.as_tensor() if hasattr(x, "as_tensor") else x  # MetaTensor -> Tensor: metadata is not needed in the graph
    return x.to(device=device, non_blocking=non_blocking) if device is not None else x


def prepare_registration_batch(
    batchdata: Mapping[str, Any],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], tuple[torch.Tensor], dict[str, torch.Tensor]]:
    """Split a batch dict into MONAI engine inputs.

    Args:
        batchdata: dict with ``moving_image`` ``(B, 1, *S_moving)``, ``fixed_image`` ``(B, 1, *S_fixed)`` and, when
            labelled, ``moving_label`` ``(B, L, *S_moving)`` and ``fixed_label`` ``(B, L, *S_fixed)``.
        device: device to move the tensors to.
        non_blocking: passed to ``Tensor.to``.
        kwargs: further ``Tensor.to`` arguments from the engine (ignored except ``device``/``non_blocking``).

    Returns:
        ``(moving_image, targets, (fixed_image,), {"moving_label": ...})`` where ``targets`` holds ``fixed_image``,
        ``moving_image`` (for the symmetric image term of an inverse-consistent network) and, when present,
        ``fixed_label``.

    Raises:
        KeyError: when a required key is missing, naming the keys that were found.
    """
    missing = [k for k in REQUIRED_KEYS if k not in batchdata]
    if missing:
        raise KeyError(f"registration batch is missing {missing}; found keys {sorted(batchdata)}.")
    moving = _to(batchdata["moving_image"], device, non_blocking)
    fixed = _to(batchdata["fixed_image"], device, non_blocking)
    targets = {"fixed_image": fixed, "moving_image": moving}  # moving: for symmetric (inverse-consistent) losses
    net_kwargs: dict[str, torch.Tensor] = {}
    if batchdata.get("fixed_label") is not None:
        targets["fixed_label"] = _to(batchdata["fixed_label"], device, non_blocking)
    if batchdata.get("moving_label") is not None:
        net_kwargs["moving_label"] = _to(batchdata["moving_label"], device, non_blocking)
    return moving, targets, (fixed,), net_kwargs
