"""Shared helpers for the metrics: input checks and masked reductions."""

from __future__ import annotations

import torch

__all__ = ["as_float_tensor", "check_same_shape", "check_label", "masked_mean", "prepare_mask"]


def as_float_tensor(x, name: str) -> torch.Tensor:
    """Return ``x`` as a floating-point torch tensor (numpy arrays and MetaTensors accepted)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as err:  # re-raised with the argument name
            raise TypeError(f"{name}: expected a tensor or array, got {type(x).__name__}.") from err
    if hasattr(x, "as_tensor"):  # MetaTensor -> plain tensor, so results carry no metadata
        x = x.as_tensor()
    if not x.is_floating_point():
        x = x.float()
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def check_label(x: torch.Tensor, name: str) -> int:
    """Check a batched label ``(B, L, *spatial)`` with 2 or 3 spatial dims; return the number of spatial dims."""
    ndim = x.ndim - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"{name}: expected shape (B, L, *spatial) with 1 to 3 spatial dims, got {tuple(x.shape)}.")
    return ndim


def prepare_mask(mask, batch: int, spatial: tuple[int, ...], device, name: str = "mask") -> torch.Tensor:
    """Broadcast a mask given as ``(*S)``, ``(B, *S)`` or ``(B, 1, *S)`` to a boolean ``(B, *S)``."""
    m = as_float_tensor(mask, name).to(device)
    if m.shape == spatial:
        m = m.expand(batch, *spatial)
    elif m.ndim == len(spatial) + 2 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != len(spatial) + 1 or tuple(m.shape[1:]) != spatial or m.shape[0] not in (1, batch):
        raise ValueError(
            f"{name}: expected shape {spatial}, ({batch}, *{spatial}) or ({batch}, 1, *{spatial}), "
            f"got {tuple(m.shape)}."
        )
    return (m > 0.5).expand(batch, *spatial)


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` ``(B, *S)`` over the spatial dims, restricted to ``mask`` (``(B, *S)`` bool) if given."""
    flat = values.reshape(values.shape[0], -1)
    if mask is None:
        return flat.mean(dim=1)
    w = mask.reshape(mask.shape[0], -1).to(values.dtype)
    return (flat * w).sum(dim=1) / w.sum(dim=1)  # empty mask -> nan
