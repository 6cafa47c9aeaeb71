"""Warping of images with dense displacement fields (pull semantics, voxel units).

See ``docs/conventions.md`` for the DDF convention used throughout monai_reg_ext.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Warp
from monai.networks.utils import meshgrid_ij

__all__ = ["warp_image", "identity_grid", "check_ddf"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDING = ("border", "zeros", "reflection")


def identity_grid(
    spatial_size: Sequence[int], device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Voxel-index coordinates of a grid.

    Args:
        spatial_size: array shape ``(H, W[, Z])``.
        device: device of the result.
        dtype: floating dtype of the result.

    Returns:
        Tensor ``(D, *spatial_size)``; channel ``k`` holds the index along array axis ``k`` (voxels).
    """
    axes = [torch.arange(int(s), device=device, dtype=dtype) for s in spatial_size]
    return torch.stack(meshgrid_ij(*axes), dim=0)


def check_ddf(ddf: torch.Tensor, name: str = "ddf") -> int:
    """Check that ``ddf`` is a batched field ``(B, D, *spatial)`` with ``D`` in (2, 3); return ``D``.

    Raises:
        ValueError: naming the expected and the received shape.
    """
    if not isinstance(ddf, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (B, D, *spatial), got {type(ddf).__name__}.")
    ndim = ddf.ndim - 2
    if ndim not in (2, 3) or ddf.shape[1] != ndim:
        raise ValueError(
            f"{name}: expected shape (B, D, *spatial) with D = number of spatial dims (2 or 3), got {tuple(ddf.shape)}."
        )
    if not ddf.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {ddf.dtype}.")
    return ndim


def warp_image(
    image: torch.Tensor,
    ddf: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Warp a moving image onto the fixed grid: ``warped(x) = moving(x + ddf(x))``.

    Uses MONAI's :class:`~monai.networks.blocks.Warp` when the moving image and the DDF share a spatial shape.
    Otherwise moving and fixed are taken to cover the same field of view and the moving image is sampled in
    normalised coordinates (``align_corners=True``), which equals resizing it to the fixed grid then warping.
    See ``docs/conventions.md``.

    Args:
        image: moving image ``(B, C, *S_moving)``; labels as ``(B, L, *S_moving)``.
        ddf: displacement ``(B, D, *S_fixed)`` in fixed-grid voxels, channel ``k`` along array axis ``k``.
        mode: ``"bilinear"`` (trilinear in 3D; differentiable), ``"nearest"`` (hard labels; zero gradient)
            or ``"bicubic"`` (2D only).
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``: values sampled outside the moving image.

    Returns:
        Warped moving image ``(B, C, *S_fixed)``, same dtype as ``image``.

    Raises:
        ValueError: for shapes that do not fit (batch sizes, number of spatial dims) or unknown options.
    """
    ndim = check_ddf(ddf)
    if mode not in _MODES:
        raise ValueError(f"warp_image: mode must be one of {_MODES}, got {mode!r}.")
    if padding_mode not in _PADDING:
        raise ValueError(f"warp_image: padding_mode must be one of {_PADDING}, got {padding_mode!r}.")
    if mode == "bicubic" and ndim != 2:
        raise ValueError("warp_image: mode='bicubic' is supported in 2D only.")
    if image.ndim != ndim + 2:
        raise ValueError(
            f"warp_image: image must be (B, C, *spatial) with {ndim} spatial dims to match ddf {tuple(ddf.shape)}, "
            f"got image shape {tuple(image.shape)}."
        )
    if image.shape[0] != ddf.shape[0]:
        raise ValueError(
            f"warp_image: batch sizes differ: image {tuple(image.shape)} vs ddf {tuple(ddf.shape)} (expected equal B)."
        )
    ddf = ddf.to(image.dtype) if image.is_floating_point() else ddf
    src = image if image.is_floating_point() else image.float()
    if tuple(image.shape[2:]) == tuple(ddf.shape[2:]):
        with warnings.catch_warnings():  # MONAI warns on each construction when its C++ extension is absent
            warnings.simplefilter("ignore")
            warper = Warp(mode=mode, padding_mode=padding_mode)
        out = warper(src, ddf)
    else:
        fixed_size = ddf.shape[2:]
        grid = identity_grid(fixed_size, device=ddf.device, dtype=ddf.dtype).unsqueeze(0) + ddf
        scale = torch.tensor([2.0 / max(int(s) - 1, 1) for s in fixed_size], device=ddf.device, dtype=ddf.dtype)
        grid = grid * scale.view(1, ndim, *([1] * ndim)) - 1.0
        grid = grid.permute(0, *range(2, ndim + 2), 1).flip(-1)  # (B, *S, D) with x (last axis) first
        out = F.grid_sample(src, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out if image.is_floating_point() else out.to(image.dtype)
