"""PNG figures of a registration: moving / fixed / warped slices, a checkerboard and the deformation grid."""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["save_registration_figure", "checkerboard"]


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Interleave two 2D images of the same shape in ``tiles x tiles`` squares (``a`` on the even squares)."""
    if a.shape != b.shape:
        raise ValueError(f"checkerboard: images differ in shape: {a.shape} vs {b.shape}.")
    rows = (np.arange(a.shape[0]) * tiles // max(a.shape[0], 1)) % 2
    cols = (np.arange(a.shape[1]) * tiles // max(a.shape[1], 1)) % 2
    mask = (rows[:, None] + cols[None, :]) % 2 == 0
    return np.where(mask, a, b)


def _mid_slice(x: np.ndarray, axis: int) -> np.ndarray:
    """A 2D slice through the centre of a ``(*S)`` array along ``axis`` (2D arrays are returned as they are)."""
    if x.ndim == 2:
        return x
    return np.take(x, x.shape[axis] // 2, axis=axis)


def save_registration_figure(
    path: str | os.PathLike,
    moving: torch.Tensor | np.ndarray,
    fixed: torch.Tensor | np.ndarray,
    warped: torch.Tensor | np.ndarray,
    ddf: torch.Tensor | np.ndarray,
    axis: int = 2,
    grid_step: int = 4,
) -> str:
    """Write a PNG with, on a central slice: moving, fixed, warped moving, a fixed/warped checkerboard,
    |warped - fixed| and the deformed grid.

    Args:
        path: PNG file to write.
        moving: moving image resampled on the fixed grid, ``(*S)`` or ``(1, *S)``.
        fixed: fixed image ``(*S)`` or ``(1, *S)``.
        warped: warped moving image ``(*S)`` or ``(1, *S)``.
        ddf: ``(D, *S)`` or ``(1, D, *S)`` in fixed voxels.
        axis: array axis normal to the slice (3D only).
        grid_step: spacing of the drawn grid lines, in voxels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def arr(x):
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return x.astype(np.float32)

    mov, fix, war, d = (np.squeeze(arr(x)) for x in (moving, fixed, warped, ddf))
    if d.ndim == fix.ndim + 2:  # (1, D, *S) squeezed away only the batch
        d = d[0]
    ndim = fix.ndim
    if ndim == 2:
        axis = -1
    sl = [_mid_slice(x, axis) for x in (mov, fix, war)]
    lo, hi = np.percentile(np.concatenate([s.ravel() for s in sl]), [1, 99])
    in_plane = [k for k in range(ndim) if k != axis] if ndim == 3 else [0, 1]
    disp = [_mid_slice(d[k], axis) for k in in_plane]
    fig, axes = plt.subplots(1, 6, figsize=(18, 3.4))
    titles = ["moving", "fixed", "warped moving", "checkerboard fixed/warped", "|warped - fixed|", "deformation grid"]
    panels = [sl[0], sl[1], sl[2], checkerboard(sl[1], sl[2]), np.abs(sl[2] - sl[1])]
    for ax, img, title in zip(axes, panels, titles):
        kw = {"vmin": lo, "vmax": hi} if title != "|warped - fixed|" else {}
        ax.imshow(img.T, cmap="gray", origin="lower", **kw)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    ax = axes[-1]
    ax.imshow(sl[1].T, cmap="gray", origin="lower", vmin=lo, vmax=hi, alpha=0.5)
    rows, cols = np.meshgrid(np.arange(sl[1].shape[0]), np.arange(sl[1].shape[1]), indexing="ij")
    yr, yc = rows + disp[0], cols + disp[1]
    for i in range(0, rows.shape[0], grid_step):
        ax.plot(yr[i, :], yc[i, :], "r-", lw=0.5)
    for j in range(0, rows.shape[1], grid_step):
        ax.plot(yr[:, j], yc[:, j], "r-", lw=0.5)
    ax.set_title(titles[-1], fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)
