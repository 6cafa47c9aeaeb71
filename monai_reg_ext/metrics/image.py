"""Image-similarity metrics: SSD and LNCC (per pair; higher LNCC is better)."""

from __future__ import annotations

import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss

from ._utils import as_float_tensor, check_same_shape

__all__ = ["image_ssd", "image_lncc"]


def image_ssd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared intensity difference per pair (DeepReg's ``image_ssd``; lower is better).

    Args:
        a: ``(B, C, *spatial)`` image, e.g. the warped moving image.
        b: ``(B, C, *spatial)`` image, e.g. the fixed image.

    Returns:
        ``(B,)`` mean over channels and voxels of ``(a - b)**2`` (``0`` for identical images).
    """
    a = as_float_tensor(a, "a")
    b = as_float_tensor(b, "b").to(a.device)
    check_same_shape(a, b, ("a", "b"))
    if a.ndim < 2:
        raise ValueError(f"a: expected shape (B, C, *spatial), got {tuple(a.shape)}.")
    return ((a - b) ** 2).reshape(a.shape[0], -1).mean(dim=1)


def image_lncc(
    a: torch.Tensor, b: torch.Tensor, kernel_size: int = 7, kernel_type: str = "rectangular"
) -> torch.Tensor:
    """Local normalised cross-correlation per pair, as a score (**higher is better**).

    Uses MONAI's ``LocalNormalizedCrossCorrelationLoss`` (which returns ``-LNCC``) and flips the sign. As in MONAI and
    DeepReg, the local value is the **squared** windowed NCC, so the score lies in ``[0, 1]``: ``1`` for identical
    (non-constant) images, ``0`` for locally uncorrelated ones.

    Args:
        a: ``(B, C, *spatial)`` image with 1 to 3 spatial dims.
        b: ``(B, C, *spatial)`` image.
        kernel_size: window size in voxels.
        kernel_type: ``"rectangular"``, ``"triangular"`` or ``"gaussian"``.

    Returns:
        ``(B,)`` mean local squared NCC.
    """
    a = as_float_tensor(a, "a")
    b = as_float_tensor(b, "b").to(a.device)
    check_same_shape(a, b, ("a", "b"))
    if a.ndim - 2 not in (1, 2, 3):
        raise ValueError(f"a: expected shape (B, C, *spatial) with 1 to 3 spatial dims, got {tuple(a.shape)}.")
    loss = LocalNormalizedCrossCorrelationLoss(
        spatial_dims=a.ndim - 2, kernel_size=kernel_size, kernel_type=kernel_type, reduction="none"
    )
    return -loss(a, b).reshape(a.shape[0], -1).mean(dim=1)
