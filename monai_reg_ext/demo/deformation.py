"""Random smooth deformations and fields of the demo-data makers that warp one real scan into many "subjects".

Used by ``bundles/unpaired_mr_brain`` (the MNI template) and ``bundles/unpaired_ct_abdomen`` (a real abdominal CT):
a smooth random velocity free of border peaks (:func:`random_velocity`), its diffeomorphic DDF scaled to a maximum
displacement (:func:`scaled_velocity_ddf`), and a coarse smooth random field for intensity changes
(:func:`coarse_random_field`). Displacements are in voxels with pull semantics (``docs/conventions.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..spatial import dvf_to_ddf, random_smooth_ddf

__all__ = ["random_velocity", "scaled_velocity_ddf", "coarse_random_field"]


def random_velocity(shape: Sequence[int], smoothness: float, seed: int) -> torch.Tensor:
    """Smooth random velocity field with max norm 1 voxel, free of border peaks.

    ``random_smooth_ddf(..., diffeomorphic=False)`` smooths with replicate padding, which gives the voxels at the faces
    and corners a much larger variance; normalising by the maximum norm then leaves the interior ~4-8x weaker than
    asked. The field is therefore drawn on a grid padded by ``3 * smoothness`` voxels on every side, cropped back to
    ``shape`` and normalised on the crop.

    Returns:
        ``(1, 3, *shape)`` float64, max norm 1 voxel.
    """
    pad = int(math.ceil(3.0 * smoothness))
    big = [int(n) + 2 * pad for n in shape]
    v = random_smooth_ddf(big, 1.0, smoothness, seed=seed, diffeomorphic=False, dtype=torch.float64)
    v = v[:, :, pad : pad + shape[0], pad : pad + shape[1], pad : pad + shape[2]]
    return v / v.norm(dim=1).max()


def scaled_velocity_ddf(
    shape: Sequence[int], max_displacement: float, smoothness: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffeomorphic DDF ``dvf_to_ddf(s * v)`` of a :func:`random_velocity` ``v``, with ``s`` set (one secant step)
    so that its maximum norm is ``max_displacement`` voxels.

    Returns:
        ``(ddf, s * v)``, each ``(1, 3, *shape)`` float64 in voxels (``dvf_to_ddf(-(s * v))`` approximates the
        inverse).
    """
    v = random_velocity(shape, smoothness, seed)
    s = float(max_displacement)
    ddf = dvf_to_ddf(v * s)
    s *= max_displacement / max(float(ddf.norm(dim=1).max()), 1e-12)
    velocity = v * s
    return dvf_to_ddf(velocity), velocity


def coarse_random_field(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Smooth zero-mean random field of ``shape``: trilinear upsampling of a 4x4x4 standard normal grid (drawn from
    ``rng``), minus its mean; not normalised."""
    coarse = torch.from_numpy(rng.standard_normal((1, 1, 4, 4, 4)))
    b = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0].numpy()
    return b - b.mean()
