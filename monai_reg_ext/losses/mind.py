"""MIND-SSC: modality-independent self-similarity context descriptors and the loss between them (2D and 3D).

Heinrich et al., "Towards realtime multimodal fusion for image-guided interventions using self-similarities",
MICCAI 2013 (the descriptor of the Learn2Reg winners). Each voxel is described by how similar small patches around
pairs of its neighbours are to each other, so the descriptor depends on local structure, not on intensities: a
monotonic or non-monotonic intensity remap of a piecewise-constant image leaves it (nearly) unchanged.

This follows the reference PyTorch implementation (``MINDSSC`` of the Learn2Reg baselines): replicate padding, box
patch distances, variance normalisation clamped to ``[1e-3, 1e3]`` times its mean, ``exp(-d / var)``, and the
reference's channel order in 3D. See ``docs/conventions.md`` for the image layout.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._box import replicate_box_sum
from ._cache import TargetCache

__all__ = ["mind_ssc", "MINDSSCLoss", "mind_ssc_pairs"]

_REFERENCE_ORDER_3D = (6, 8, 1, 11, 2, 10, 0, 7, 9, 4, 5, 3)  # the reference's permutation (its C++ ordering)


def mind_ssc_pairs(spatial_dims: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The pairs of neighbour offsets compared by MIND-SSC, in units of ``dilation`` voxels.

    The neighbours are the ``2 D`` face neighbours (six-neighbourhood in 3D, four-neighbourhood in 2D); the pairs are
    those at squared distance 2 (12 in 3D, 4 in 2D), in the reference implementation's order.

    Args:
        spatial_dims: 2 or 3.

    Returns:
        A list of ``(offset_a, offset_b)`` integer tuples (entries in ``{-1, 0, 1}``, one per array axis).
    """
    if spatial_dims == 3:
        hood = [(0, 1, 1), (1, 1, 0), (1, 0, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1)]
    elif spatial_dims == 2:
        hood = [(0, 1), (1, 0), (1, 2), (2, 1)]
    else:
        raise ValueError(f"mind_ssc: spatial_dims must be 2 or 3, got {spatial_dims}.")
    pairs = []
    for i, j in itertools.product(range(len(hood)), repeat=2):
        if i > j and sum((a - b) ** 2 for a, b in zip(hood[i], hood[j])) == 2:
            pairs.append((tuple(a - 1 for a in hood[i]), tuple(b - 1 for b in hood[j])))
    return [pairs[k] for k in _REFERENCE_ORDER_3D] if spatial_dims == 3 else pairs


def mind_ssc(image: torch.Tensor, radius: int = 2, dilation: int = 2) -> torch.Tensor:
    """MIND-SSC descriptors of an image.

    For each pair ``(a, b)`` of :func:`mind_ssc_pairs`, the patch distance
    ``d_ab(x) = mean_{|y - x|_inf <= radius} (I(y + dilation a) - I(y + dilation b))^2`` (replicate padding), then
    ``m = d - min_pairs d``, ``v = mean_pairs m`` clamped to ``[1e-3, 1e3] x`` its mean over the image (per sample,
    without gradient), and the descriptor ``exp(-m / v)`` (computed with window sums instead of means: the same value,
    as ``m / v`` and the clamp do not depend on a common scale).

    Args:
        image: ``(B, 1, *S)`` with ``S`` of length 2 or 3 (any intensity unit; MIND is contrast-invariant).
        radius: half-width of the patch in voxels (patch ``2 radius + 1`` wide).
        dilation: distance in voxels from the centre voxel to the compared neighbours.

    Returns:
        ``(B, 12, *S)`` in 3D, ``(B, 4, *S)`` in 2D, values in ``(0, 1]``; differentiable w.r.t. ``image``.

    Raises:
        ValueError: for an image that is not ``(B, 1, H, W[, Z])`` or negative ``radius`` / ``dilation``.
    """
    ndim = image.ndim - 2
    if ndim not in (2, 3) or image.shape[1] != 1:
        raise ValueError(f"mind_ssc: expected an image of shape (B, 1, H, W[, Z]), got {tuple(image.shape)}.")
    if radius < 0 or dilation < 1:
        raise ValueError(f"mind_ssc: expected radius >= 0 and dilation >= 1, got {radius} and {dilation}.")
    size = image.shape[2:]
    padded = F.pad(image, [dilation] * (2 * ndim), mode="replicate")

    def shifted(offset: tuple[int, ...]) -> torch.Tensor:
        index = tuple(slice(dilation * (1 + o), dilation * (1 + o) + s) for o, s in zip(offset, size))
        return padded[(Ellipsis, *index)]

    diffs = torch.cat([(shifted(a) - shifted(b)).square() for a, b in mind_ssc_pairs(ndim)], dim=1)
    # window sums, not means: exp(-m / v) does not depend on a common scale of m and v (nor do the clamp bounds)
    dist = replicate_box_sum(diffs, radius, ndim)
    dist = dist - dist.amin(dim=1, keepdim=True)
    var = dist.mean(dim=1, keepdim=True)
    tiny = torch.finfo(var.dtype).tiny * 1e3  # a constant image: var = 0 everywhere, descriptor exp(0) = 1
    mean_var = var.detach().flatten(1).mean(dim=1).clamp_min(tiny).view(-1, *([1] * (ndim + 1)))
    var = torch.clamp(var, min=mean_var * 1e-3, max=mean_var * 1e3)
    return torch.exp(dist * (-1.0 / var))  # one reciprocal per voxel, then a broadcast product over the pairs


class MINDSSCLoss(nn.Module):
    """Mean squared difference of the MIND-SSC descriptors of two images (an L2 loss, as the reference's).

    ``loss = mean_{b, pairs, x} (mind_ssc(pred) - mind_ssc(target))^2``, ``>= 0``, ``0`` for images with the same
    descriptors (e.g. one a contrast-inverted copy of the other); minimise it. Differentiable w.r.t. ``pred``.

    Args:
        spatial_dims: 2 or 3.
        radius: patch half-width in voxels.
        dilation: neighbour distance in voxels.
        cache_target: reuse the target's descriptors while the same unchanged tensor is passed again (an optimiser
            passes the same fixed image every iteration); nothing is cached for a target that requires a gradient.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (the per-voxel map ``(B, P, *S)``).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        radius: int = 2,
        dilation: int = 2,
        cache_target: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(f"MINDSSCLoss: reduction must be 'mean' or 'none', got {reduction!r}.")
        self.reduction = reduction
        if spatial_dims not in (2, 3):
            raise ValueError(f"MINDSSCLoss: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if radius < 0 or dilation < 1:
            raise ValueError(f"MINDSSCLoss: expected radius >= 0 and dilation >= 1, got {radius} and {dilation}.")
        self.spatial_dims = int(spatial_dims)
        self.radius = int(radius)
        self.dilation = int(dilation)
        self.cache_target = bool(cache_target)
        self._cache = TargetCache()

    def descriptors(self, image: torch.Tensor) -> torch.Tensor:
        """:func:`mind_ssc` with this loss's ``radius`` and ``dilation``: ``(B, 1, *S)`` -> ``(B, P, *S)``."""
        return mind_ssc(image, self.radius, self.dilation)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: warped moving image ``(B, 1, *S)`` (``S`` of length ``spatial_dims``).
            target: fixed image, same shape (any contrast).

        Returns:
            A scalar ``>= 0`` (``reduction="mean"``) or the map ``(B, P, *S)`` (``"none"``).

        Raises:
            ValueError: on a wrong number of dimensions or mismatched shapes.
        """
        if pred.ndim - 2 != self.spatial_dims or pred.shape[1] != 1:
            raise ValueError(
                f"MINDSSCLoss: expected pred (B, 1, *S) with {self.spatial_dims} spatial dims, "
                f"got shape {tuple(pred.shape)}."
            )
        if target.shape != pred.shape:
            raise ValueError(f"MINDSSCLoss: expected target of shape {tuple(pred.shape)}, got {tuple(target.shape)}.")
        target = target.to(pred.dtype)
        mind_t = self._cache.get(target, self.descriptors) if self.cache_target else self.descriptors(target)
        diff = (self.descriptors(pred) - mind_t).pow(2)
        return diff if self.reduction == "none" else diff.mean()
