"""Initial alignment of a pair before the affine stage: a translation that matches image centres or centres of mass.

The translation is returned in voxels of the fixed grid (a constant DDF: ``moving(p + t)``), so it is the starting
point of the affine stage in the convention of ``docs/conventions.md``.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..spatial import identity_grid

__all__ = ["INITIALISATIONS", "initial_translation", "centre_of_mass"]

INITIALISATIONS: tuple[str, ...] = ("moments", "centres", "none")
"""``moments``: centres of mass of the intensities; ``centres``: centres of the image grids; ``none``: no shift."""


def centre_of_mass(image: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre ``(B, D)`` in voxels of ``image`` ``(B, 1, *S)`` (non-negative intensities).

    An image whose intensities sum to zero has its grid centre as centre of mass.
    """
    ndim = image.ndim - 2
    grid = identity_grid(image.shape[2:], device=image.device, dtype=image.dtype)  # (D, *S)
    w = image[:, 0].clamp_min(0).flatten(1)  # (B, N)
    total = w.sum(dim=1, keepdim=True)
    centre = torch.tensor([(s - 1) / 2.0 for s in image.shape[2:]], device=image.device, dtype=image.dtype)
    com = (w @ grid.reshape(ndim, -1).T) / total.clamp_min(1e-12)
    return torch.where(total > 0, com, centre.expand_as(com))


def initial_translation(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    fixed_to_moving: torch.Tensor | None = None,
    method: Literal["moments", "centres", "none"] = "moments",
) -> torch.Tensor:
    """Translation ``(B, D)`` in fixed voxels that maps the fixed centre onto the moving centre.

    Args:
        moving: ``(B, 1, *S_moving)``, intensities >= 0 (e.g. scaled to [0, 1]).
        fixed: ``(B, 1, *S_fixed)``.
        fixed_to_moving: ``(D + 1, D + 1)`` or ``(B, D + 1, D + 1)`` map from fixed voxel indices to moving voxel
            indices (world coordinates in between); None when both share the fixed grid.
        method: one of :data:`INITIALISATIONS`.

    Returns:
        ``t`` such that the fixed voxel ``c_fixed`` samples the moving image at its centre, ``c_fixed + t`` (as a
        position on the fixed grid, mapped to the moving grid by ``fixed_to_moving``).

    Raises:
        ValueError: for an unknown ``method``.
    """
    if method not in INITIALISATIONS:
        raise ValueError(f"initialisation: expected one of {INITIALISATIONS}, got {method!r}.")
    ndim = fixed.ndim - 2
    batch = fixed.shape[0]
    if method == "none":
        return torch.zeros(batch, ndim, device=fixed.device, dtype=fixed.dtype)
    if method == "moments":
        c_fix, c_mov = centre_of_mass(fixed), centre_of_mass(moving)
    else:
        c_fix = torch.tensor([(s - 1) / 2.0 for s in fixed.shape[2:]], device=fixed.device, dtype=fixed.dtype)
        c_mov = torch.tensor([(s - 1) / 2.0 for s in moving.shape[2:]], device=fixed.device, dtype=fixed.dtype)
        c_fix, c_mov = c_fix.expand(batch, ndim), c_mov.expand(batch, ndim)
    if fixed_to_moving is not None:  # the moving centre as a position in the fixed voxel frame
        m = fixed_to_moving.to(device=fixed.device, dtype=torch.float64)
        m = m.expand(batch, ndim + 1, ndim + 1) if m.ndim == 2 else m
        inv = torch.linalg.inv(m)
        c_mov = (torch.einsum("bij,bj->bi", inv[:, :ndim, :ndim], c_mov.double()) + inv[:, :ndim, ndim]).to(fixed.dtype)
    return c_mov - c_fix
