"""Gaussian smoothing and anti-aliased resizing of images ``(B, C, *S)`` (``align_corners=True``, voxel units)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["gaussian_smooth", "anti_aliasing_sigma", "resize_image"]


def _gaussian_kernel1d(sigma: float, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_smooth(field: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian smoothing of ``field`` ``(B, C, *S)`` with ``sigma[d]`` voxels along spatial axis ``d``.

    The kernel is truncated at ``3 sigma``; borders are padded by replication (a constant image stays constant, up
    to its edges). ``sigma <= 0`` skips that axis.
    """
    dims = field.ndim - 2
    b, c = field.shape[:2]
    out = field.reshape(b * c, 1, *field.shape[2:])
    conv = F.conv2d if dims == 2 else F.conv3d
    for axis, s in enumerate(sigma):
        if s <= 0:
            continue
        k = _gaussian_kernel1d(float(s), field.dtype).to(field.device)
        r = (k.numel() - 1) // 2
        shape = [1, 1] + [1] * dims
        shape[2 + axis] = k.numel()
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis)] = r  # F.pad lists the last axis first
        pad[2 * (dims - 1 - axis) + 1] = r
        out = conv(F.pad(out, pad, mode="replicate"), k.reshape(shape))
    return out.reshape(b, c, *field.shape[2:])


def anti_aliasing_sigma(in_size: Sequence[int], out_size: Sequence[int]) -> tuple[float, ...]:
    """Gaussian sigma (input voxels) per axis before resizing ``in_size`` to ``out_size``: ``(scale - 1) / 2``.

    ``scale = (in - 1) / (out - 1)`` is the spacing ratio with ``align_corners=True`` (skimage's and MONAI's rule,
    on this project's grid convention); 0 where the axis does not shrink.
    """
    if len(in_size) != len(out_size):
        raise ValueError(f"in_size {tuple(in_size)} and out_size {tuple(out_size)} differ in dimensions.")
    return tuple(max(((i - 1) / max(o - 1, 1) - 1.0) / 2.0, 0.0) for i, o in zip(in_size, out_size))


def resize_image(image: torch.Tensor, spatial_size: Sequence[int], anti_aliasing: bool = False) -> torch.Tensor:
    """Resize ``(B, C, *S)`` to ``spatial_size`` with (bi/tri)linear interpolation, ``align_corners=True``.

    With ``anti_aliasing`` the image is first low-passed (:func:`gaussian_smooth`, sigma from
    :func:`anti_aliasing_sigma`) along the axes that shrink, so noise finer than the new grid (ultrasound speckle)
    is averaged instead of aliased. Returns ``image`` itself when the size already matches.
    """
    size = tuple(int(s) for s in spatial_size)
    if len(size) != image.ndim - 2:
        raise ValueError(f"spatial_size {size} does not fit an image of shape {tuple(image.shape)} (B, C, *S).")
    if tuple(image.shape[2:]) == size:
        return image
    if anti_aliasing:
        image = gaussian_smooth(image, anti_aliasing_sigma(image.shape[2:], size))
    mode = "trilinear" if len(size) == 3 else "bilinear"
    return F.interpolate(image, size=size, mode=mode, align_corners=True)
