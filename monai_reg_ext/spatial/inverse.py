"""Inverse of a dense displacement field by fixed-point iteration, and the inverse-consistency error.

Fields follow ``docs/conventions.md``: ``(B, D, *S)`` in voxels, channel ``k`` along array axis ``k``, pull
semantics ``warped(x) = moving(x + ddf(x))``. The inverse of a DDF ``u`` (moving -> fixed) is a DDF ``v`` on the
same grid such that ``x + v(x)`` undoes ``x + u(x)``: ``warp_image(warp_image(img, u), v) ~= img`` and vice versa.
Both grids must have the same shape (e.g. moving and fixed on one grid, as an ITK displacement field assumes).
"""

from __future__ import annotations

import torch

from .ddf import compose_ddf
from .warp import check_ddf, warp_image

__all__ = ["invert_ddf", "inverse_consistency_error"]


def invert_ddf(ddf: torch.Tensor, iterations: int = 20, tolerance: float = 1e-3) -> torch.Tensor:
    """Invert a DDF by the fixed-point iteration ``v <- -u(x + v(x))``, starting from ``v = -u``.

    At convergence ``v(x) + u(x + v(x)) = 0``, i.e. ``compose_ddf(u, v) = 0`` (``u`` sampled with linear
    interpolation and border padding, as :func:`~monai_reg_ext.spatial.compose_ddf` does). The iteration converges
    when ``u`` is a contraction (its Jacobian's norm below 1: smooth, not folding), as is typical of registration
    fields.

    Args:
        ddf: forward field ``u``, ``(B, D, *S)`` in voxels.
        iterations: maximum number of updates (``>= 1``).
        tolerance: stop when no voxel's update changes by more than this many voxels (max over the batch).

    Returns:
        The inverse field ``v``, ``(B, D, *S)`` in voxels of the same grid, same dtype as ``ddf``. Differentiable
        w.r.t. ``ddf`` (through the unrolled iterations).

    Raises:
        ValueError: for a field that is not ``(B, D, *S)`` or ``iterations < 1``.
    """
    check_ddf(ddf)
    if int(iterations) < 1:
        raise ValueError(f"invert_ddf: iterations must be >= 1, got {iterations}.")
    inverse = -ddf
    for _ in range(int(iterations)):
        update = -warp_image(ddf, inverse, mode="bilinear", padding_mode="border")
        change = (update - inverse).detach().abs().max().item()
        inverse = update
        if change <= tolerance:
            break
    return inverse


def _margin_mask(spatial: tuple[int, ...], margin: int, like: torch.Tensor) -> torch.Tensor:
    """``(1, *S)`` float mask: 1 at voxels at least ``margin`` voxels from every face."""
    mask = torch.zeros((1, *spatial), device=like.device, dtype=like.dtype)
    inner = tuple(slice(margin, s - margin) for s in spatial)
    mask[(slice(None), *inner)] = 1.0
    return mask


def inverse_consistency_error(
    ddf: torch.Tensor, inverse_ddf: torch.Tensor, mask: torch.Tensor | None = None, margin: int = 0
) -> torch.Tensor:
    """Mean residual displacement of ``compose_ddf(ddf, inverse_ddf)``, in voxels.

    ``compose_ddf(ddf, inverse_ddf)(x) = inverse_ddf(x) + ddf(x + inverse_ddf(x))``: the DDF of warping with ``ddf``
    then with ``inverse_ddf``, i.e. the map ``x -> x + inverse_ddf(x) -> (that) + ddf(that)``; it is zero for an exact
    inverse. This is the residual :func:`invert_ddf` drives to zero; swap the arguments for the other order
    (``compose_ddf(inverse_ddf, ddf)``).

    Args:
        ddf: forward field ``(B, D, *S)`` in voxels.
        inverse_ddf: its (approximate) inverse, same shape.
        mask: optional ``(B, 1, *S)``, ``(B, *S)``, ``(1, *S)`` or ``(*S)`` weights (e.g. a boolean foreground) of the
            voxels to average over.
        margin: also exclude voxels closer than ``margin`` voxels to a face (border padding is not invertible there).

    Returns:
        ``(B,)``: the mean over the selected voxels of the Euclidean norm of the residual, in voxels.

    Raises:
        ValueError: for mismatched shapes, a negative margin, or when no voxel is selected.
    """
    ndim = check_ddf(ddf)
    residual = compose_ddf(ddf, inverse_ddf).pow(2).sum(dim=1).sqrt()  # (B, *S); compose_ddf checks the shapes
    spatial = tuple(ddf.shape[2:])
    if margin < 0 or 2 * margin >= min(spatial):
        raise ValueError(f"inverse_consistency_error: margin must be in [0, {min(spatial) // 2}), got {margin}.")
    weights = _margin_mask(spatial, int(margin), residual)
    if mask is not None:
        m = mask.to(device=residual.device, dtype=residual.dtype)
        if m.ndim == ndim + 2:
            m = m[:, 0] if m.shape[1] == 1 else m
        if tuple(m.shape[-ndim:]) != spatial or m.ndim not in (ndim, ndim + 1):
            raise ValueError(
                f"inverse_consistency_error: mask must be (B, 1, *S), (B, *S) or (*S) with S = {spatial}, "
                f"got {tuple(mask.shape)}."
            )
        weights = weights * m
    total = weights.expand_as(residual).flatten(1).sum(dim=1)
    if (total <= 0).any():
        raise ValueError("inverse_consistency_error: the mask and margin select no voxel.")
    return (residual * weights).flatten(1).sum(dim=1) / total
