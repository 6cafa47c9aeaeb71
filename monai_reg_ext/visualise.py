"""Figures of a registration, from arrays: the static ``registration.png`` and, as DeepReg's ``deepreg_vis`` made
them, animated GIFs (moving -> warped -> fixed on one slice, or every slice of the volumes side by side), a
checkerboard of fixed and warped, the deformation grid of a DDF and a tile plot over several pairs.

Orientation: a 2D slice ``x[i, j]`` is drawn with array axis ``i`` left to right and axis ``j`` bottom to top (as
``imshow(x.T, origin="lower")``), in ``registration.png`` and in every figure here. GIF and checkerboard pixels are
written as they are computed (8-bit grey, no axes, no resampling: :func:`to_display`), so they can be checked
exactly. Files are written atomically (a temporary name renamed when complete). Reading files, checking them and
choosing names: :mod:`monai_reg_ext.figures` (``monai-reg show``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "save_registration_figure",
    "checkerboard",
    "take_slice",
    "intensity_window",
    "to_display",
    "checkerboard_image",
    "interpolated_warps",
    "flip_frames",
    "slice_frames",
    "save_gif",
    "save_png",
    "plot_deformation_grid",
    "save_grid_figure",
    "save_tile_figure",
]

#: Height in pixels of the bar under each GIF frame that shows its position in the animation.
BAR_HEIGHT = 3
#: Pixels between the panels of a GIF frame.
PANEL_GAP = 2


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Interleave two 2D images of the same shape in ``tiles x tiles`` squares (``a`` on the even squares)."""
    if a.shape != b.shape:
        raise ValueError(f"checkerboard: images differ in shape: {a.shape} vs {b.shape}.")
    rows = (np.arange(a.shape[0]) * tiles // max(a.shape[0], 1)) % 2
    cols = (np.arange(a.shape[1]) * tiles // max(a.shape[1], 1)) % 2
    mask = (rows[:, None] + cols[None, :]) % 2 == 0
    return np.where(mask, a, b)


def take_slice(x: np.ndarray, axis: int, index: int | None = None) -> np.ndarray:
    """The 2D slice ``index`` (default: the middle one) of a ``(*S)`` array normal to ``axis``; 2D arrays are
    returned as they are."""
    if x.ndim == 2:
        return x
    return np.take(x, x.shape[axis] // 2 if index is None else index, axis=axis)


def intensity_window(*arrays: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """A shared grey window ``(lo, hi)``: the percentiles of all values together (``hi > lo`` always)."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    return lo, (hi if hi > lo else lo + 1.0)


def to_display(x: np.ndarray, window: tuple[float, float], zoom: int = 1) -> np.ndarray:
    """8-bit pixels of a 2D slice: ``window`` mapped to 0-255 (clipped), axis 0 left to right, axis 1 bottom to top,
    each voxel repeated ``zoom x zoom`` times."""
    lo, hi = window
    u8 = np.round(np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    pixels = np.flipud(u8.T)
    return pixels.repeat(int(zoom), axis=0).repeat(int(zoom), axis=1)


def checkerboard_image(
    fixed: np.ndarray, warped: np.ndarray, tiles: int = 8, window: tuple[float, float] | None = None, zoom: int = 1
) -> np.ndarray:
    """8-bit checkerboard of two 2D slices (``fixed`` on the even squares) in one grey window (default: shared)."""
    window = window or intensity_window(fixed, warped)
    return to_display(checkerboard(np.asarray(fixed), np.asarray(warped), tiles), window, zoom)


def interpolated_warps(moving: np.ndarray, ddf: np.ndarray, steps: int) -> list[np.ndarray]:
    """``moving`` warped by ``t * ddf`` for ``t = 1/steps, 2/steps, ..., 1`` (``moving`` ``(*S)``, ``ddf``
    ``(D, *S)`` in voxels of that grid), the frames of a moving -> warped animation."""
    from .spatial import warp_image

    if ddf.shape[1:] != moving.shape or ddf.shape[0] != moving.ndim:
        raise ValueError(f"interpolated_warps: DDF shape {ddf.shape} does not fit image shape {moving.shape}.")
    img = torch.as_tensor(np.asarray(moving, dtype=np.float32))[None, None]
    field = torch.as_tensor(np.asarray(ddf, dtype=np.float32))[None]
    with torch.no_grad():
        return [warp_image(img, field * (k / steps))[0, 0].numpy() for k in range(1, int(steps) + 1)]


def flip_frames(slices: Sequence[np.ndarray], window: tuple[float, float] | None = None, zoom: int = 1) -> list:
    """One 8-bit frame per 2D slice (e.g. moving, warped, fixed), in one grey window (default: shared)."""
    window = window or intensity_window(*slices)
    return [to_display(s, window, zoom) for s in slices]


def slice_frames(
    volumes: Sequence[np.ndarray], axis: int, window: tuple[float, float] | None = None, zoom: int = 1
) -> list[np.ndarray]:
    """One 8-bit frame per slice normal to ``axis``: the slices of ``volumes`` (same shape) side by side."""
    shapes = {v.shape for v in volumes}
    if len(shapes) != 1 or volumes[0].ndim != 3:
        raise ValueError(f"slice_frames: expected 3D volumes of one shape, got shapes {sorted(shapes)}.")
    window = window or intensity_window(*volumes)
    frames = []
    for k in range(volumes[0].shape[axis]):
        panels = [to_display(take_slice(v, axis, k), window, zoom) for v in volumes]
        gap = np.zeros((panels[0].shape[0], PANEL_GAP), dtype=np.uint8)
        frames.append(np.hstack([p if i == 0 else np.hstack([gap, p]) for i, p in enumerate(panels)]))
    return frames


def _with_bar(frame: np.ndarray, k: int, n: int) -> np.ndarray:
    """``frame`` over a bar whose lit length shows frame ``k`` of ``n`` (so no two frames are identical)."""
    bar = np.zeros((BAR_HEIGHT, frame.shape[1]), dtype=np.uint8)
    bar[:, : max(1, round((k + 1) * frame.shape[1] / n))] = 255
    return np.vstack([frame, bar])


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], duration_ms: int = 400) -> str:
    """Write 8-bit 2D ``frames`` (one shape) as a looping animated GIF, each over a position bar
    (:data:`BAR_HEIGHT` pixels). The GIF holds ``len(frames)`` frames while ``len(frames)`` is at most the width."""
    from PIL import Image

    from .io.atomic import atomic_write_path

    if not frames or len({f.shape for f in frames}) != 1:
        raise ValueError(f"save_gif: expected frames of one shape, got {sorted({f.shape for f in frames})}.")
    images = [Image.fromarray(_with_bar(np.asarray(f, dtype=np.uint8), k, len(frames))) for k, f in enumerate(frames)]
    with atomic_write_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return str(path)


def save_png(path: str | os.PathLike, pixels: np.ndarray) -> str:
    """Write 8-bit grey ``pixels`` as a PNG, exactly (no axes, no resampling)."""
    from PIL import Image

    from .io.atomic import atomic_write_path

    with atomic_write_path(path) as tmp:
        Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(tmp, format="PNG")
    return str(path)


def plot_deformation_grid(ax, disp: np.ndarray, step: int = 4, **line_kw) -> list:
    """Draw the grid deformed by an in-plane displacement ``disp`` ``(2, H, W)`` (voxels) on a matplotlib ``ax``.

    Grid line ``i`` (every ``step`` voxels) joins the points ``(i + disp[0][i, j], j + disp[1][i, j])`` over ``j``, and
    likewise along the other axis; plot coordinates are voxel indices (axis 0 horizontal, as :func:`to_display`). A
    zero displacement gives straight lines. Returns the ``Line2D`` objects.
    """
    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim != 3 or disp.shape[0] != 2:
        raise ValueError(f"plot_deformation_grid: expected an in-plane displacement (2, H, W), got {disp.shape}.")
    rows, cols = np.meshgrid(np.arange(disp.shape[1]), np.arange(disp.shape[2]), indexing="ij")
    x, y = rows + disp[0], cols + disp[1]
    kw = {"color": "r", "lw": 0.5, **line_kw}
    lines = [ax.plot(x[i, :], y[i, :], **kw)[0] for i in range(0, x.shape[0], step)]
    lines += [ax.plot(x[:, j], y[:, j], **kw)[0] for j in range(0, x.shape[1], step)]
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> str:
    from .io.atomic import atomic_write_path

    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=os.path.splitext(str(path))[1].lstrip(".") or "png")
    _pyplot().close(fig)
    return str(path)


def save_grid_figure(
    path: str | os.PathLike,
    disp: np.ndarray,
    background: np.ndarray | None = None,
    step: int = 4,
    window: tuple[float, float] | None = None,
) -> str:
    """Write the deformation grid of ``disp`` ``(2, H, W)`` (:func:`plot_deformation_grid`) over an optional 2D
    ``background`` slice (e.g. the fixed image) as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5 * disp.shape[2] / max(disp.shape[1], 1) + 0.3))
    if background is not None:
        lo, hi = window or intensity_window(background)
        ax.imshow(np.asarray(background).T, cmap="gray", origin="lower", vmin=lo, vmax=hi, alpha=0.6)
    plot_deformation_grid(ax, disp, step)
    ax.set_xlim(-0.5, disp.shape[1] - 0.5)
    ax.set_ylim(-0.5, disp.shape[2] - 0.5)
    ax.set_aspect("equal")
    ax.set_title(f"deformation grid (every {step} voxels)", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    return _save_figure(fig, path)


def save_tile_figure(path: str | os.PathLike, rows: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> str:
    """Write a tile plot: one row per pair, one column per key of ``rows`` (2D slices; the columns of the first row),
    each row in its own shared grey window except ``|warped - fixed|`` (own range). ``names`` label the rows."""
    plt = _pyplot()
    columns = list(rows[0])
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.4 * len(columns), 2.4 * len(rows)), squeeze=False)
    for r, (row, name) in enumerate(zip(rows, names)):
        window = intensity_window(*[v for k, v in row.items() if not k.startswith("|")])
        for c, key in enumerate(columns):
            ax = axes[r][c]
            if key in row:
                kw = {} if key.startswith("|") else {"vmin": window[0], "vmax": window[1]}
                ax.imshow(np.asarray(row[key]).T, cmap="gray", origin="lower", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key, fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)


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
    plt = _pyplot()

    def arr(x):
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return x.astype(np.float32)

    mov, fix, war, d = (np.squeeze(arr(x)) for x in (moving, fixed, warped, ddf))
    if d.ndim == fix.ndim + 2:  # (1, D, *S) squeezed away only the batch
        d = d[0]
    ndim = fix.ndim
    if ndim == 2:
        axis = -1
    sl = [take_slice(x, axis) for x in (mov, fix, war)]
    lo, hi = np.percentile(np.concatenate([s.ravel() for s in sl]), [1, 99])
    in_plane = [k for k in range(ndim) if k != axis] if ndim == 3 else [0, 1]
    disp = np.stack([take_slice(d[k], axis) for k in in_plane])
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
    plot_deformation_grid(ax, disp, grid_step, color="r", lw=0.5)
    ax.set_title(titles[-1], fontsize=9)
    ax.axis("off")
    # fixed margins: the panels have no ticks or labels, and tight_layout would double the figure's cost (0.2 s)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.01, top=0.9, wspace=0.03)
    return _save_figure(fig, path, dpi=80)
