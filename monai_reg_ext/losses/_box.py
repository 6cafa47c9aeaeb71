"""Separable box sums run as direct shifted additions (no convolution, no cumulative sums), with exact adjoints.

Private helpers of :mod:`.fast_lncc` and :mod:`.mind`. Sums are direct (``2 r`` additions per axis), so they keep
float32 accuracy on large flat backgrounds, unlike a cumulative-sum filter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_sum", "valid_box_sum", "replicate_box_sum"]


def _centred_sum(x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
    """Zero-padded centred box sum of half-width ``radius`` along each of the last ``ndim`` axes (no autograd)."""
    out = x
    for dim in range(x.ndim - ndim, x.ndim):
        src, n = out, out.shape[dim]
        out = src.clone(memory_format=torch.contiguous_format)
        for o in range(1, min(radius, n - 1) + 1):
            out.narrow(dim, o, n - o).add_(src.narrow(dim, 0, n - o))
            out.narrow(dim, 0, n - o).add_(src.narrow(dim, o, n - o))
    return out


def _valid_sum(x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
    """Box sum of width ``2 radius + 1`` over the windows that lie fully inside ``x`` (no autograd)."""
    out = x
    for dim in range(x.ndim - ndim, x.ndim):
        src, n = out, out.shape[dim] - 2 * radius
        out = src.narrow(dim, 0, n).clone(memory_format=torch.contiguous_format)
        for o in range(1, 2 * radius + 1):
            out.add_(src.narrow(dim, o, n))
    return out


class _BoxSum(torch.autograd.Function):
    """Zero-padded centred box sum; the operator is symmetric, so its backward is the same box sum."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
        ctx.radius, ctx.ndim = radius, ndim
        return _centred_sum(x, radius, ndim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _BoxSum.apply(grad, ctx.radius, ctx.ndim), None, None


class _ValidBoxSum(torch.autograd.Function):
    """Valid box sum (output ``2 radius`` shorter per axis); backward = valid sum of the gradient padded by ``2r``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
        ctx.radius, ctx.ndim = radius, ndim
        return _valid_sum(x, radius, ndim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        padded = F.pad(grad, [2 * ctx.radius] * (2 * ctx.ndim))
        return _ValidBoxSum.apply(padded, ctx.radius, ctx.ndim), None, None


def box_sum(x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
    """Sum over the ``(2 radius + 1)^ndim`` window centred on each voxel, zeros outside (same shape as ``x``).

    Args:
        x: ``(B, C, *S)`` with ``len(S) == ndim``.
        radius: half-width of the window in voxels (``>= 0``).
        ndim: number of spatial axes (the trailing axes of ``x``).

    Returns:
        ``(B, C, *S)``, differentiable (the backward is the same box sum).
    """
    return _BoxSum.apply(x, int(radius), int(ndim))


def valid_box_sum(x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
    """Sum over the windows of width ``2 radius + 1`` that lie inside ``x``: ``(B, C, *S)`` -> ``(B, C, *(S - 2r))``."""
    return _ValidBoxSum.apply(x, int(radius), int(ndim))


def replicate_box_sum(x: torch.Tensor, radius: int, ndim: int) -> torch.Tensor:
    """Sum over the ``(2 radius + 1)^ndim`` window centred on each voxel, edge values replicated (same shape)."""
    if radius == 0:
        return x
    padded = F.pad(x, [int(radius)] * (2 * ndim), mode="replicate")
    return valid_box_sum(padded, radius, ndim)
