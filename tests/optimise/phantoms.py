"""Analytic test phantoms: a sum of Gaussian blobs defined in world coordinates (mm), sampled on any grid.

A known world transform ``S`` gives a moving image whose world point ``S(y)`` shows what the fixed image shows at
``y``, so the true DDF of every fixed voxel is known exactly (no interpolation in the ground truth).
"""

from __future__ import annotations

import numpy as np
import torch


def blobs(n: int = 14, seed: int = 0, extent: float = 28.0, ndim: int = 3) -> list[tuple[np.ndarray, float, float]]:
    """``n`` blobs ``(centre mm, amplitude, width mm)``: asymmetric, so that rotations are identifiable."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-extent, extent, ndim), rng.uniform(0.3, 1.0), rng.uniform(4.0, 9.0)) for _ in range(n)]


def grid_world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates ``(D, *shape)`` of a grid with voxel-to-world ``affine``."""
    ndim = len(shape)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), 0).reshape(ndim, -1)
    world = affine[:ndim, :ndim] @ idx + affine[:ndim, ndim : ndim + 1]
    return world.reshape(ndim, *shape)


def render(points: np.ndarray, spec) -> np.ndarray:
    """The phantom at world points ``(D, *S)``."""
    out = np.zeros(points.shape[1:])
    for c, a, w in spec:
        d2 = sum((points[k] - c[k]) ** 2 for k in range(points.shape[0]))
        out += a * np.exp(-d2 / (2 * w * w))
    return out


def grid_affine(spacing, origin, rotation_deg: float = 0.0) -> np.ndarray:
    """A voxel-to-world affine with ``spacing`` (mm), ``origin`` (mm) and a rotation about the last axis."""
    ndim = len(spacing)
    r = np.eye(ndim)
    t = np.deg2rad(rotation_deg)
    r[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    a = np.eye(ndim + 1)
    a[:ndim, :ndim] = r @ np.diag(spacing)
    a[:ndim, ndim] = origin
    return a


def world_transform(rotation_deg: float, translation, scale: float, ndim: int = 3) -> np.ndarray:
    """``S(y) = scale * R y + t`` as a ``(D + 1, D + 1)`` matrix (rotation about the last axis, through 0)."""
    return grid_affine([scale] * ndim, translation, rotation_deg)


def true_ddf(fixed_affine: np.ndarray, shape: tuple[int, ...], world: np.ndarray) -> torch.Tensor:
    """DDF ``(D, *S)`` in fixed voxels of the world map ``world`` (fixed point -> moving point)."""
    ndim = len(shape)
    y = grid_world(shape, fixed_affine).reshape(ndim, -1)
    sy = world[:ndim, :ndim] @ y + world[:ndim, ndim : ndim + 1]
    inv = np.linalg.inv(fixed_affine)
    p_new = inv[:ndim, :ndim] @ sy + inv[:ndim, ndim : ndim + 1]
    p = inv[:ndim, :ndim] @ y + inv[:ndim, ndim : ndim + 1]
    return torch.as_tensor((p_new - p).reshape(ndim, *shape), dtype=torch.float32)


def error_mm(ddf: torch.Tensor, truth: torch.Tensor, fixed_affine: np.ndarray, margin: int = 6) -> float:
    """Mean Euclidean error (mm) between two DDFs ``(D, *S)`` (fixed voxels) inside a ``margin``-voxel border."""
    ndim = ddf.shape[0]
    diff = (ddf - truth).double().reshape(ndim, -1)
    mm = torch.as_tensor(fixed_affine[:ndim, :ndim]) @ diff
    err = mm.pow(2).sum(0).sqrt().reshape(ddf.shape[1:])
    inner = err[tuple(slice(margin, s - margin) for s in err.shape)]
    return float(inner.mean())


def render_regions(points: np.ndarray, spec, intensities: np.ndarray) -> np.ndarray:
    """A piecewise-constant phantom at world points ``(D, *S)``: region ``k`` (where blob ``k`` dominates, background
    0 where all blobs are faint) gets ``intensities[k + 1]`` (``intensities[0]`` for the background)."""
    values = np.stack([a * np.exp(-sum((points[i] - c[i]) ** 2 for i in range(points.shape[0])) / (2 * w * w))
                       for c, a, w in spec])  # fmt: skip
    label = np.where(values.max(0) > 0.15, values.argmax(0) + 1, 0)
    return intensities[label]
