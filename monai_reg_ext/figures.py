"""Figures of registrations from files (``monai-reg show``): read moving, fixed and optionally the warped image and
the DDF, check that they share the fixed grid, and write the figures of :mod:`monai_reg_ext.visualise` into a folder.

- ``gif`` (``moving_warped_fixed.gif``): the middle slice as moving, then (with a DDF) the moving warped by
  ``t * ddf`` for ``t = 1/n, ..., 1``, the warped image, then fixed;
- ``slices`` (``slices.gif``, 3D only): every slice normal to ``axis``, moving | warped | fixed side by side;
- ``checkerboard`` (``checkerboard.png``): fixed and warped (else moving) in alternating squares, exact pixels;
- ``grid`` (``grid.png``): the deformation grid of the DDF's in-plane components over the fixed slice;
- ``tile`` (``tile.png``): one row per pair: moving, fixed, warped, checkerboard, difference.

The moving image is resampled onto the fixed grid in world coordinates when its grid differs (as ``register``
does); the warped image and the DDF must lie on the fixed grid (as ``register`` and ``predict`` write them). Existing
figure files are never replaced without ``overwrite``; each file is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FIGURES", "FILE_NAMES", "FigureInputs", "load_figure_inputs", "write_figures"]

FIGURES = ("gif", "slices", "checkerboard", "grid", "tile")
FILE_NAMES = {
    "gif": "moving_warped_fixed.gif",
    "slices": "slices.gif",
    "checkerboard": "checkerboard.png",
    "grid": "grid.png",
    "tile": "tile.png",
}
#: Figures whose pixels are enlarged (whole voxels repeated) until the longer side reaches this many pixels.
DISPLAY_PIXELS = 256


@dataclass
class FigureInputs:
    """One pair on the fixed grid: images ``(*S)``, ``ddf`` ``(D, *S)`` in fixed voxels; ``name`` labels it."""

    moving: np.ndarray
    fixed: np.ndarray
    warped: np.ndarray | None
    ddf: np.ndarray | None
    name: str


def _as_list(x: str | Sequence[str] | None) -> list[str]:
    """File names given as a list or as one comma-separated string."""
    if x is None:
        return []
    items = x.split(",") if isinstance(x, str) else [str(v) for v in x]
    return [s.strip() for s in items if s.strip()]


def _read(path: str, what: str, spatial_dims: int | None = None):
    """A single-channel image file as a channel-first ``MetaTensor`` ``(1, *S)`` with its affine."""
    import torch
    from monai.data import MetaTensor

    from .io import load_image

    img, affine = load_image(path, spatial_dims=spatial_dims)
    if img.shape[0] != 1:
        raise ValueError(f"{what} {path}: expected a single-channel image, got {img.shape[0]} channels.")
    if spatial_dims is None and img.ndim == 4 and img.shape[-1] == 1:  # a 2D image stored as (H, W, 1)
        return _read(path, what, 2)
    return MetaTensor(img, affine=torch.as_tensor(affine))


def _on_fixed_grid(x: np.ndarray, shape: tuple[int, ...], what: str, path: str, fixed: str) -> np.ndarray:
    if tuple(x.shape) != shape:
        raise ValueError(
            f"{what} {path}: shape {tuple(x.shape)} differs from the fixed image {fixed} {shape}; give it on the "
            "fixed grid (as monai-reg register / predict write it)."
        )
    return x


def load_figure_inputs(moving: str, fixed: str, warped: str | None = None, ddf: str | None = None) -> FigureInputs:
    """Read one pair's files (2D or 3D; NIfTI or any format ITK reads) onto the fixed grid.

    Raises:
        FileNotFoundError / ValueError naming the file: missing or unreadable, several channels, a warped image or
            DDF whose shape differs from the fixed image's, a DDF whose number of components is not the dimension.
    """
    from .io import load_ddf
    from .spatial import resample_to_grid

    fix = _read(fixed, "fixed image")
    ndim = fix.ndim - 1
    mov = resample_to_grid(_read(moving, "moving image", ndim), fix, f"moving image {moving}", "fixed image")
    shape = tuple(fix.shape[1:])
    war = None
    if warped:
        war = _on_fixed_grid(_read(warped, "warped image", ndim).numpy()[0], shape, "warped image", warped, fixed)
    field = None
    if ddf:
        field = load_ddf(ddf)[0].numpy()
        if field.shape[0] != ndim:
            raise ValueError(f"DDF {ddf}: {field.shape[0]} components for {ndim}D images (fixed image {fixed}).")
        _on_fixed_grid(field[0], shape, "DDF", ddf, fixed)
    name = Path(moving).name
    return FigureInputs(np.asarray(mov.numpy()[0]), np.asarray(fix.numpy()[0]), war, field, name)


def _choose(figures: str | Sequence[str] | None, pairs: list[FigureInputs]) -> list[str]:
    """The figures to write: the named ones (checked), else every one that applies to the inputs."""
    is_3d = pairs[0].fixed.ndim == 3
    has_ddf = all(p.ddf is not None for p in pairs)
    if figures is None or figures == "" or figures == "all":
        return [f for f in FIGURES if (f != "slices" or is_3d) and (f != "grid" or has_ddf)]
    chosen = _as_list(figures)
    unknown = sorted(set(chosen) - set(FIGURES))
    if unknown:
        raise ValueError(f"--figures: unknown {unknown}; choose among {', '.join(FIGURES)}.")
    if "grid" in chosen and not has_ddf:
        raise ValueError("--figures grid needs --ddf (one DDF file per pair).")
    if "slices" in chosen and not is_3d:
        raise ValueError("--figures slices needs 3D images (a 2D image is one slice: use gif).")
    return list(dict.fromkeys(chosen))


def _panels(p: FigureInputs, axis: int, tiles: int) -> dict[str, np.ndarray]:
    """The 2D slices of a pair for the tile plot."""
    from .visualise import checkerboard, take_slice

    mov, fix = take_slice(p.moving, axis), take_slice(p.fixed, axis)
    out = {"moving": mov, "fixed": fix}
    after = take_slice(p.warped, axis) if p.warped is not None else mov
    if p.warped is not None:
        out["warped"] = after
    out["checkerboard"] = checkerboard(fix, after, tiles)
    out[f"|{'warped' if p.warped is not None else 'moving'} - fixed|"] = np.abs(after - fix)
    return out


def _pair_figures(p: FigureInputs, paths: dict[str, Path], axis: int, opts: dict) -> None:
    """Write the figures ``paths`` (figure -> file) of one pair."""
    from . import visualise as vis

    zoom = opts["zoom"] or max(1, min(8, math.ceil(DISPLAY_PIXELS / max(vis.take_slice(p.fixed, axis).shape))))
    window = vis.intensity_window(*[x for x in (p.moving, p.fixed, p.warped) if x is not None])
    after = p.warped
    if "gif" in paths:
        steps = vis.interpolated_warps(p.moving, p.ddf, opts["warp_steps"]) if p.ddf is not None else []
        if steps and after is not None:
            steps[-1] = after  # the warped image written by the registration is the last step
        volumes = [p.moving, *(steps or ([after] if after is not None else [])), p.fixed]
        slices = [vis.take_slice(v, axis) for v in volumes]
        vis.save_gif(paths["gif"], vis.flip_frames(slices, window, zoom), opts["duration_ms"])
    if "slices" in paths:
        volumes = [v for v in (p.moving, after, p.fixed) if v is not None]
        vis.save_gif(paths["slices"], vis.slice_frames(volumes, axis, window, zoom), opts["duration_ms"])
    if "checkerboard" in paths:
        second = after if after is not None else p.moving
        image = vis.checkerboard_image(
            vis.take_slice(p.fixed, axis), vis.take_slice(second, axis), opts["tiles"], window, zoom
        )
        vis.save_png(paths["checkerboard"], image)
    if "grid" in paths:
        in_plane = [k for k in range(p.fixed.ndim) if k != axis] if p.fixed.ndim == 3 else [0, 1]
        disp = np.stack([vis.take_slice(p.ddf[k], axis) for k in in_plane])
        vis.save_grid_figure(paths["grid"], disp, vis.take_slice(p.fixed, axis), opts["grid_step"], window)


def write_figures(
    moving: str | Sequence[str],
    fixed: str | Sequence[str],
    output: str | os.PathLike,
    warped: str | Sequence[str] | None = None,
    ddf: str | Sequence[str] | None = None,
    figures: str | Sequence[str] | None = None,
    axis: int = 2,
    overwrite: bool = False,
    tiles: int = 8,
    grid_step: int = 4,
    warp_steps: int = 4,
    zoom: int | None = None,
    duration_ms: int = 400,
) -> dict[str, str]:
    """Write the figures of one or more pairs into ``output`` (several pairs: ``pair_NNN/`` each, and ``tile.png``).

    Args:
        moving, fixed, warped, ddf: files, one per pair (lists or comma-separated strings); ``warped`` and ``ddf``
            optional (none or one per pair).
        output: the folder receiving the figures (:data:`FILE_NAMES`).
        figures: names among :data:`FIGURES` (list or comma-separated); default: all that apply.
        axis: array axis normal to the slices (3D; 2D images are one slice).
        overwrite: replace existing figure files.
        tiles: squares per side of the checkerboard.
        grid_step: voxels between the lines of the deformation grid.
        warp_steps: frames from moving to warped in the GIF when a DDF is given.
        zoom: pixels per voxel in the GIFs and the checkerboard; default: until the longer side reaches
            :data:`DISPLAY_PIXELS`.
        duration_ms: time each GIF frame is shown.

    Returns:
        ``{figure: file}`` (``pair_NNN/<figure>`` keys for several pairs).
    """
    movings, fixeds, warpeds, ddfs = (_as_list(x) for x in (moving, fixed, warped, ddf))
    n = len(movings)
    if n == 0 or len(fixeds) != n or len(warpeds) not in (0, n) or len(ddfs) not in (0, n):
        raise ValueError(
            f"show: give one --fixed (and, if any, one --warped and one --ddf) per --moving; got {n} moving, "
            f"{len(fixeds)} fixed, {len(warpeds)} warped, {len(ddfs)} DDF files."
        )
    if int(axis) not in (-3, -2, -1, 0, 1, 2):
        raise ValueError(f"--axis: expected 0, 1 or 2, got {axis}.")
    pairs = [
        load_figure_inputs(m, f, warpeds[i] if warpeds else None, ddfs[i] if ddfs else None)
        for i, (m, f) in enumerate(zip(movings, fixeds))
    ]
    if len({p.fixed.ndim for p in pairs}) != 1:
        raise ValueError("show: every pair must be 2D, or every pair 3D.")
    chosen = _choose(figures, pairs)
    axis = int(axis) % 3 if pairs[0].fixed.ndim == 3 else -1
    out = Path(output)
    plan = []  # (pair, {figure: path})
    for i, p in enumerate(pairs):
        folder = out if n == 1 else out / f"pair_{i:03d}"
        plan.append((p, {f: folder / FILE_NAMES[f] for f in chosen if f != "tile"}))
    tile = out / FILE_NAMES["tile"] if "tile" in chosen else None
    targets = [path for _, paths in plan for path in paths.values()] + ([tile] if tile else [])
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} figure file(s)); pass --overwrite to replace.")
    opts = dict(zoom=zoom, tiles=tiles, grid_step=grid_step, warp_steps=warp_steps, duration_ms=duration_ms)
    written = {}
    for i, (p, paths) in enumerate(plan):
        _pair_figures(p, paths, axis, opts)
        written.update({(f if n == 1 else f"pair_{i:03d}/{f}"): str(path) for f, path in paths.items()})
    if tile is not None:
        from .visualise import save_tile_figure

        rows = [_panels(p, axis, tiles) for p in pairs]
        written["tile"] = save_tile_figure(tile, rows, [p.name for p in pairs])
    return written
