"""A one-entry cache of values derived from a loss's target (the fixed image), reused while that tensor is unchanged.

An optimiser passes the same fixed image at every iteration of a resolution level; its window statistics or
descriptors need computing once. The entry is valid while the **same tensor object** is passed with the same
``_version`` (in-place changes bump it), storage, shape, dtype and device. Nothing is cached for a target that needs
a gradient, or for an inference-mode tensor (which has no version counter).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch

__all__ = ["TargetCache"]


def _key(target: torch.Tensor) -> tuple | None:
    if target.requires_grad and torch.is_grad_enabled():
        return None
    try:
        version = target._version
    except RuntimeError:  # inference tensors track no version counter
        return None
    storage = (target.data_ptr(), target.storage_offset(), target.stride())
    return (version, storage, tuple(target.shape), target.dtype, target.device)


class TargetCache:
    """One-entry cache keyed by a target tensor's identity and state (see the module docstring)."""

    def __init__(self) -> None:
        self._ref: weakref.ref | None = None
        self._key: tuple | None = None
        self._value: Any = None

    def __getstate__(self) -> dict:  # pickling (torch.save of a module) keeps no entry: weak references do not pickle
        return {"_ref": None, "_key": None, "_value": None}

    def clear(self) -> None:
        """Drop the cached entry."""
        self._ref, self._key, self._value = None, None, None

    def get(self, target: torch.Tensor, compute: Callable[[torch.Tensor], Any]) -> Any:
        """Return ``compute(target)``, from the cache when ``target`` is the cached, unchanged tensor.

        Args:
            target: the loss target (fixed image), any shape.
            compute: function of the target; called under ``torch.no_grad()`` when its result is cached.

        Returns:
            The (possibly cached) value of ``compute(target)``.
        """
        key = _key(target)
        if key is None:
            return compute(target)
        if self._ref is not None and self._ref() is target and self._key == key:
            return self._value
        with torch.no_grad():
            value = compute(target)
        self._ref, self._key, self._value = weakref.ref(target), key, value
        return value
