"""Compare registration methods on image pairs whose true displacement is known.

Every method is reduced to a dense displacement field (DDF) on the fixed grid in monai-reg's convention (voxels of the
fixed grid, channel ``k`` along array axis ``k``, pull: ``warped(x) = moving(x + ddf(x))``; ``docs/conventions.md``),
so the same metric code scores all of them against the true DDF.

Methods:

- ``none``: identity (zero DDF).
- ``network``: ``monai_reg_ext.api.register(moving, fixed, bundle=...)`` with the bundle's trained weights.
- ``ants_syn``: antspyx ``ants.registration(fixed, moving, type_of_transform="SyN")`` with its defaults (affine, then
  SyN at shrink factors 4x2x1 with 40x20x0 iterations: the full-resolution level is skipped).
- ``ants_syn_full``: the same with ``reg_iterations=(40, 20, 10)``: 10 SyN iterations at full resolution.
- ``elastix_bspline``: itk-elastix with the default B-spline parameter map (``GetDefaultParameterMap("bspline")``).
- ``true_ddf`` (always added): the stored true DDF, the ceiling of the label protocol.

The peers' DDFs are read with a frame-free "coordinate image" trick: three images holding the voxel-index coordinates
of the moving grid (one per array axis, padded by ``COORD_PAD`` voxels so that points a little outside the field of
view are still exact) are resampled with the peer's own transform and linear interpolation; at each fixed voxel
they hold the moving-grid index it samples, so ``ddf = sampled_index - fixed_index``. This needs identical moving and
fixed grids (shape and affine), which is checked. As a check of the frames, the moving image resampled by the peer
itself with linear interpolation (ANTs: its warped output; elastix: transformix) is compared with
``warp_image(moving, ddf)`` (``peer_warp_mae``, intensities scaled to [0, 1], inside the fixed brain).

Metrics per pair (inside the fixed brain = GM or WM of the fixed label):

- Dice GM / WM: the moving one-hot label with a background channel (``1 - GM - WM``) warped bilinearly with the
  method's DDF, argmax over {background, GM, WM}, binary Dice against the fixed label (the protocol of the bundle's
  ``baseline.json``).
- ``error_mm``: mean of ``|R (ddf - ddf_true)|`` in mm, ``R`` the upper 3x3 block of the fixed affine.
- ``folding_pct``: percentage of brain voxels with Jacobian determinant ``<= 0``; ``sdlogj``: SDlogJ in the brain.
- ``seconds``: wall time of the registration only (metrics and DDF extraction excluded). For ``network`` it is the
  whole ``register`` call on the two files (loading included; the bundle is loaded once before, one untimed warm-up
  call is made); ``network_seconds`` is the network part that ``register`` reports. ``cpu_seconds`` is the process
  CPU time of the same span (all threads), less sensitive than wall time to other jobs on a shared machine.

Summary: mean and population standard deviation (``ddof=0``, as ``baseline.json``) over the pairs.

Usage::

    python scripts/compare_registration.py --pairs bundles/unpaired_mr_brain/data/test/pairs.json \
        --bundle bundles/unpaired_mr_brain \
        --methods "['none','network','ants_syn','ants_syn_full','elastix_bspline']" \
        --output bundles/unpaired_mr_brain/docs/results --device cpu

The peers (``pip install antspyx itk-elastix``) are optional: a method whose package is missing is skipped with a
printed note. Threads: torch, ITK and ANTs are all limited to ``threads`` (default 2).
"""

from __future__ import annotations

import csv
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_reg_ext.metrics import folding_fraction, label_dice, sd_log_jacobian
from monai_reg_ext.spatial import warp_image

__all__ = [
    "PEERS",
    "COORD_PAD",
    "configure_threads",
    "load_pair",
    "label_dice_argmax",
    "evaluate_ddf",
    "coordinate_grids",
    "ants_ddf_from_transforms",
    "elastix_ddf_from_parameters",
    "run_method",
    "main",
]

PEERS = {"ants_syn": "ants", "ants_syn_full": "ants", "elastix_bspline": "itk"}
"""Peer methods and the package each needs (antspyx imports as ``ants``, itk-elastix extends ``itk``)."""

KNOWN_METHODS = ("none", "network", "ants_syn", "ants_syn_full", "elastix_bspline")
COORD_PAD = 16
"""Voxels of padding of the coordinate images: sampling points up to this far outside the moving grid stay exact."""

METRIC_KEYS = ("seconds", "dice_gm", "dice_wm", "error_mm", "folding_pct", "sdlogj")


# --------------------------------------------------------------------------------------------------------------- setup
def configure_threads(threads: int = 2) -> dict[str, Any]:
    """Limit torch, ITK (elastix) and ANTs to ``threads`` threads; returns what was set.

    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` must be set before ITK/ANTs start their thread pools, so call this before
    running any peer; an already imported ``itk`` is also told through ``MultiThreaderBase``.
    """
    threads = int(threads)
    torch.set_num_threads(threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    if "itk" in sys.modules:
        try:
            sys.modules["itk"].MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
        except Exception:  # pragma: no cover - very old itk
            pass
    return {"torch_threads": torch.get_num_threads(), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": threads}


def _peer_available(method: str) -> tuple[bool, str]:
    try:
        if PEERS[method] == "ants":
            import ants  # noqa: F401
        else:
            import itk

            if not hasattr(itk, "elastix_registration_method"):
                return False, "itk is installed but not itk-elastix (pip install itk-elastix)"
    except Exception as err:  # ImportError, or a binary that fails to load
        return False, f"{type(err).__name__}: {err}"
    return True, ""


# ---------------------------------------------------------------------------------------------------------------- data
def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    return np.asarray(img.get_fdata(dtype=np.float64)), np.asarray(img.affine, dtype=np.float64)


def load_pair(item: dict, root: Path) -> dict[str, Any]:
    """Load one pairs.json entry (paths relative to ``root``) and check the grids.

    Returns a dict with file paths, ``moving``/``fixed`` ``(*S)`` float arrays, labels ``(L, *S)``, ``ddf_true``
    ``(3, *S)`` in fixed voxels, the fixed ``affine``, ``spacing`` and the fixed brain mask ``(*S)`` (any label > 0.5).

    Raises:
        ValueError: when moving and fixed (or their labels, or the true DDF) are not on one identical grid: the
            coordinate-image trick and the label protocol assume it.
    """
    paths = {k: root / item[k] for k in ("moving", "fixed", "moving_label", "fixed_label", "ddf")}
    for k, p in paths.items():
        if not p.is_file():
            raise FileNotFoundError(f"pair entry {k!r}: file {str(p)!r} does not exist.")
    moving, aff_m = _load_nifti(paths["moving"])
    fixed, aff_f = _load_nifti(paths["fixed"])
    mov_lab, aff_ml = _load_nifti(paths["moving_label"])
    fix_lab, aff_fl = _load_nifti(paths["fixed_label"])
    ddf, aff_d = _load_nifti(paths["ddf"])
    shape = fixed.shape
    if moving.shape != shape or not np.allclose(aff_m, aff_f, atol=1e-4):
        raise ValueError(
            f"{paths['moving']} and {paths['fixed']}: moving and fixed must share one grid (shape and affine) for this "
            f"comparison; got shapes {moving.shape} / {shape} and affines\n{aff_m}\n{aff_f}"
        )
    for name, arr, aff in (("moving_label", mov_lab, aff_ml), ("fixed_label", fix_lab, aff_fl), ("ddf", ddf, aff_d)):
        if arr.shape[:3] != shape or not np.allclose(aff, aff_f, atol=1e-4):
            raise ValueError(f"{paths[name]}: {name} is not on the fixed grid (shape {arr.shape}, fixed {shape}).")
    if ddf.shape != (*shape, 3):
        raise ValueError(f"{paths['ddf']}: expected a (X, Y, Z, 3) voxel DDF, got shape {ddf.shape}.")
    if mov_lab.ndim == 3:
        mov_lab, fix_lab = mov_lab[..., None], fix_lab[..., None]
    mov_lab = np.moveaxis(mov_lab, -1, 0)
    fix_lab = np.moveaxis(fix_lab, -1, 0)
    rot = aff_f[:3, :3]
    return {
        "paths": paths,
        "moving": moving,
        "fixed": fixed,
        "moving_label": mov_lab,
        "fixed_label": fix_lab,
        "ddf_true": np.moveaxis(ddf, -1, 0),
        "affine": aff_f,
        "spacing": np.sqrt((rot**2).sum(0)),
        "mask": fix_lab.max(0) > 0.5,
    }


# ------------------------------------------------------------------------------------------------------------- metrics
def label_dice_argmax(moving_label: np.ndarray, fixed_label: np.ndarray, ddf: np.ndarray) -> np.ndarray:
    """Dice per label after warping a one-hot label set with ``ddf``.

    ``moving_label`` ``(L, *S)`` one-hot (disjoint) labels get a background channel ``1 - sum``, all ``L + 1`` channels
    are warped bilinearly (border padding), the argmax over them gives the warped labels, scored with
    :func:`monai_reg_ext.metrics.label_dice` against ``fixed_label`` ``(L, *S)``. Returns ``(L,)``.
    """
    lab = torch.as_tensor(moving_label, dtype=torch.float32)
    soft = torch.cat([(1.0 - lab.sum(0, keepdim=True)).clamp_min(0.0), lab], 0)[None]
    warped = warp_image(soft, torch.as_tensor(ddf, dtype=torch.float32)[None], mode="bilinear")
    arg = warped.argmax(1)  # (1, *S)
    hard = torch.stack([(arg == i + 1) for i in range(lab.shape[0])], 1).float()
    return label_dice(hard, torch.as_tensor(fixed_label, dtype=torch.float32)[None])[0].numpy()


def evaluate_ddf(pair: dict[str, Any], ddf: np.ndarray) -> dict[str, float]:
    """Dice GM/WM, displacement error (mm), folding % and SDlogJ in the fixed brain for one DDF ``(3, *S)``."""
    ddf = np.asarray(ddf, dtype=np.float64)
    if ddf.shape != pair["ddf_true"].shape:
        raise ValueError(f"DDF shape {ddf.shape} differs from the true DDF's {pair['ddf_true'].shape}.")
    mask = pair["mask"]
    dice = label_dice_argmax(pair["moving_label"], pair["fixed_label"], ddf)
    diff_mm = np.einsum("ij,j...->i...", pair["affine"][:3, :3], ddf - pair["ddf_true"])
    err = np.sqrt((diff_mm**2).sum(0))[mask]
    t = torch.as_tensor(ddf, dtype=torch.float32)[None]
    m = torch.as_tensor(mask)[None]
    out = {f"dice_{n}": float(d) for n, d in zip(("gm", "wm", *[f"l{i}" for i in range(2, len(dice))]), dice)}
    out.update(
        error_mm=float(err.mean()),
        folding_pct=100.0 * float(folding_fraction(t, m)[0]),
        sdlogj=float(sd_log_jacobian(t, m)[0]),
    )
    return out


# ------------------------------------------------------------------------------------------- coordinate-image trick
def coordinate_grids(shape: tuple[int, ...], pad: int = COORD_PAD) -> list[np.ndarray]:
    """The voxel-index coordinates of a grid of ``shape`` padded by ``pad`` voxels per side (float32, ``(*S+2pad)``).

    Value of grid ``k`` at padded index ``q`` = ``q_k - pad`` = the index along axis ``k`` in the unpadded grid.
    """
    axes = [np.arange(-pad, s + pad, dtype=np.float32) for s in shape]
    return [np.ascontiguousarray(g) for g in np.meshgrid(*axes, indexing="ij")]


def _padded_geometry(origin, spacing, direction, pad: int) -> np.ndarray:
    """Origin of a grid padded by ``pad`` voxels per side (ITK/ANTs geometry: physical = origin + D diag(s) index)."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    return np.asarray(origin, dtype=np.float64) - direction @ (np.asarray(spacing, dtype=np.float64) * pad)


def _ddf_from_sampled(sampled: list[np.ndarray], inside: np.ndarray, pad: int, method: str) -> np.ndarray:
    shape = sampled[0].shape
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    outside = inside < 1.0 - 1e-3
    if outside.any():
        print(
            f"note: {method}: {int(outside.sum())} fixed voxels sample the moving image more than {pad} voxels outside "
            "its grid; their displacement is unreliable there.",
            flush=True,
        )
    return np.stack([np.asarray(s, dtype=np.float64) - g for s, g in zip(sampled, grid)])


def ants_ddf_from_transforms(fixed_img, moving_img, transformlist: list[str], pad: int = COORD_PAD) -> np.ndarray:
    """DDF ``(3, *S)`` (fixed voxels, our convention) of ANTs transforms, by resampling coordinate images.

    ``transformlist`` is what ``ants.apply_transforms(fixed, moving, transformlist)`` takes (``fwdtransforms`` of
    ``ants.registration``): it maps fixed points to moving points.
    """
    import ants

    coords = coordinate_grids(tuple(moving_img.shape), pad)
    origin = _padded_geometry(moving_img.origin, moving_img.spacing, moving_img.direction, pad)

    def to_ants(a: np.ndarray):
        return ants.from_numpy(
            a, origin=tuple(origin), spacing=tuple(moving_img.spacing), direction=np.asarray(moving_img.direction)
        )

    ones = np.ones_like(coords[0])
    sampled = [
        ants.apply_transforms(fixed_img, to_ants(c), transformlist, interpolator="linear", defaultvalue=-1e6).numpy()
        for c in coords
    ]
    inside = ants.apply_transforms(fixed_img, to_ants(ones), transformlist, interpolator="linear").numpy()
    return _ddf_from_sampled(sampled, inside, pad, "ants")


def _itk_image(arr_ijk: np.ndarray, origin, spacing, direction):
    import itk

    img = itk.image_from_array(np.ascontiguousarray(np.asarray(arr_ijk, dtype=np.float32).transpose(2, 1, 0)))
    img.SetOrigin([float(v) for v in origin])
    img.SetSpacing([float(v) for v in spacing])
    img.SetDirection(itk.matrix_from_array(np.asarray(direction, dtype=np.float64).reshape(3, 3)))
    return img


def _itk_geometry(img) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import itk

    return (
        np.asarray(img.GetOrigin(), dtype=np.float64),
        np.asarray(img.GetSpacing(), dtype=np.float64),
        np.asarray(itk.array_from_matrix(img.GetDirection()), dtype=np.float64),
    )


def _elastix_linear_parameters(transform_parameters, default_value: float):
    """Copy of an elastix result transform whose resampler interpolates linearly into a float image."""
    import itk

    params = itk.ParameterObject.New()
    n = transform_parameters.GetNumberOfParameterMaps()
    for i in range(n):
        pm = transform_parameters.GetParameterMap(i)
        if i == n - 1:
            pm["ResampleInterpolator"] = ["FinalLinearInterpolator"]
            pm["ResultImagePixelType"] = ["float"]
            pm["DefaultPixelValue"] = [repr(float(default_value))]
        params.AddParameterMap(pm)
    return params


def elastix_ddf_from_parameters(moving_img, transform_parameters, pad: int = COORD_PAD) -> np.ndarray:
    """DDF ``(3, *S)`` (fixed voxels) of an elastix result transform, by transformix on coordinate images.

    The output grid is the one stored in ``transform_parameters`` (the fixed image's); the resampler is switched to
    linear interpolation with float output so that the coordinates come back exactly.
    """
    import itk

    origin, spacing, direction = _itk_geometry(moving_img)
    shape = tuple(int(s) for s in itk.size(moving_img))  # (i, j, k) order
    padded_origin = _padded_geometry(origin, spacing, direction, pad)

    def run(arr: np.ndarray, default_value: float) -> np.ndarray:
        params = _elastix_linear_parameters(transform_parameters, default_value)
        img = _itk_image(arr, padded_origin, spacing, direction)
        out = itk.transformix_filter(img, params, log_to_console=False)
        return np.asarray(itk.array_from_image(out), dtype=np.float64).transpose(2, 1, 0)

    coords = coordinate_grids(shape, pad)
    sampled = [run(c, -1e6) for c in coords]
    inside = run(np.ones_like(coords[0]), 0.0)
    return _ddf_from_sampled(sampled, inside, pad, "elastix")


# ------------------------------------------------------------------------------------------------------------- methods
def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _peer_warp_mae(pair: dict[str, Any], ddf: np.ndarray, peer_warped: np.ndarray) -> float:
    """Mean |peer's own warped moving - warp_image(moving, ddf)| in the fixed brain, intensities scaled to [0, 1]."""
    mov = torch.as_tensor(pair["moving"], dtype=torch.float32)[None, None]
    ours = warp_image(mov, torch.as_tensor(ddf, dtype=torch.float32)[None])[0, 0].numpy()
    lo, hi = float(pair["moving"].min()), float(pair["moving"].max())
    scale = hi - lo if hi > lo else 1.0
    return float((np.abs(ours - peer_warped) / scale)[pair["mask"]].mean())


def _run_ants(pair: dict[str, Any], full: bool) -> dict[str, Any]:
    import ants

    fixed = ants.image_read(str(pair["paths"]["fixed"]), pixeltype="float")
    moving = ants.image_read(str(pair["paths"]["moving"]), pixeltype="float")
    for name, img, ref in (("fixed", fixed, pair["fixed"]), ("moving", moving, pair["moving"])):
        if tuple(img.shape) != ref.shape or not np.allclose(img.numpy(), ref, atol=1e-3):
            raise ValueError(f"ants: the {name} image reads with another voxel order than nibabel's.")
    if not (
        np.allclose(fixed.origin, moving.origin)
        and np.allclose(fixed.spacing, moving.spacing)
        and np.allclose(fixed.direction, moving.direction)
    ):
        raise ValueError("ants: moving and fixed images have different geometry.")
    kwargs = {"reg_iterations": (40, 20, 10)} if full else {}
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        reg = ants.registration(fixed, moving, type_of_transform="SyN", outprefix=str(Path(tmp) / "ants_"), **kwargs)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ddf = ants_ddf_from_transforms(fixed, moving, reg["fwdtransforms"])
        warped = reg["warpedmovout"].numpy()
    return {"ddf": ddf, "seconds": seconds, "cpu_seconds": cpu, "peer_warp_mae": _peer_warp_mae(pair, ddf, warped)}


def _run_elastix(pair: dict[str, Any]) -> dict[str, Any]:
    import itk

    fixed = itk.imread(str(pair["paths"]["fixed"]), itk.F)
    moving = itk.imread(str(pair["paths"]["moving"]), itk.F)
    for name, img, ref in (("fixed", fixed, pair["fixed"]), ("moving", moving, pair["moving"])):
        arr = np.asarray(itk.array_from_image(img)).transpose(2, 1, 0)
        if arr.shape != ref.shape or not np.allclose(arr, ref, atol=1e-3):
            raise ValueError(f"itk: the {name} image reads with another voxel order than nibabel's.")
    gf, gm = _itk_geometry(fixed), _itk_geometry(moving)
    if not all(np.allclose(a, b) for a, b in zip(gf, gm)):
        raise ValueError("itk: moving and fixed images have different geometry.")
    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("bspline"))
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        # number_of_threads is not passed: itk-elastix 0.25.4 crashes with it (ITK's global default applies).
        _, result_params = itk.elastix_registration_method(
            fixed, moving, parameter_object=params, log_to_console=False, output_directory=tmp
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ddf = elastix_ddf_from_parameters(moving, result_params)
    # elastix's own result image uses cubic B-spline interpolation; the check resamples with linear interpolation
    # (as warp_image does) through transformix, so only a frame or DDF-extraction error can make them differ.
    linear = itk.transformix_filter(moving, _elastix_linear_parameters(result_params, 0.0), log_to_console=False)
    warped = np.asarray(itk.array_from_image(linear), dtype=np.float64).transpose(2, 1, 0)
    return {"ddf": ddf, "seconds": seconds, "cpu_seconds": cpu, "peer_warp_mae": _peer_warp_mae(pair, ddf, warped)}


def run_method(method: str, pair: dict[str, Any], model=None, device: str = "cpu") -> dict[str, Any]:
    """Register one pair with ``method``; returns ``{"ddf": (3, *S) fixed voxels, "seconds": ..., ...}``."""
    if method == "none":
        return {"ddf": np.zeros_like(pair["ddf_true"]), "seconds": 0.0}
    if method == "true_ddf":
        return {"ddf": pair["ddf_true"], "seconds": float("nan")}
    if method == "network":
        from monai_reg_ext.api import register

        start, cpu = time.perf_counter(), time.process_time()
        result = register(str(pair["paths"]["moving"]), str(pair["paths"]["fixed"]), bundle=model, device=device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {
            "ddf": result.ddf.detach().cpu().double().numpy(),
            "seconds": seconds,
            "cpu_seconds": cpu,
            "network_seconds": result.seconds,
        }
    if method in ("ants_syn", "ants_syn_full"):
        return _run_ants(pair, full=method == "ants_syn_full")
    if method == "elastix_bspline":
        return _run_elastix(pair)
    raise ValueError(f"unknown method {method!r}; choose from {KNOWN_METHODS}.")


# ------------------------------------------------------------------------------------------------------------- report
def _versions() -> dict[str, str]:
    import monai

    out = {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__}
    from importlib.metadata import version

    for dist in ("numpy", "nibabel", "antspyx", "itk", "itk-elastix"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "not installed"
    return out


def _load_average() -> list[float] | None:
    """1, 5 and 15 min load averages (the machine may be shared: timings are only as good as this)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def _summary(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for m in methods:
        mrows = [r for r in rows if r["method"] == m]
        keys = [k for k in mrows[0] if k not in ("pair", "method")] if mrows else []
        summary[m] = {}
        for k in keys:
            vals = np.asarray([r[k] for r in mrows], dtype=np.float64)
            if np.isnan(vals).all():
                continue
            summary[m][k] = {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)), "n": int(vals.size)}
    return summary


def _fmt(stat: dict[str, float] | None, digits: int) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(summary: dict, methods: list[str]) -> str:
    """Markdown table: method | s/pair | Dice GM | Dice WM | error mm | folding % | SDlogJ | speed ratio vs ants_syn."""
    ref = summary.get("ants_syn", {}).get("seconds", {}).get("mean")
    lines = [
        "| method | s/pair | Dice GM | Dice WM | error mm | folding % | SDlogJ | speed ratio vs ants_syn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        s = summary.get(m, {})
        sec = s.get("seconds")
        if m in ("none", "true_ddf") or sec is None:
            sec_txt, ratio = ("0" if m == "none" else "–"), "–"
        else:
            sec_txt = _fmt(sec, 2)
            ratio = f"{ref / sec['mean']:.1f}×" if ref and sec["mean"] > 0 else "–"
        lines.append(
            f"| {m} | {sec_txt} | {_fmt(s.get('dice_gm'), 4)} | {_fmt(s.get('dice_wm'), 4)} | "
            f"{_fmt(s.get('error_mm'), 3)} | {_fmt(s.get('folding_pct'), 3)} | {_fmt(s.get('sdlogj'), 3)} | {ratio} |"
        )
    lines += [
        "",
        "Mean ± population std over pairs. s/pair: registration wall time (network: whole `register` call); "
        "speed ratio = s/pair of ants_syn / s/pair of the method (> 1: faster than ANTs SyN). Error: mean "
        "|ddf - ddf_true| in mm in the fixed brain; folding % and SDlogJ in the fixed brain.",
    ]
    return "\n".join(lines) + "\n"


def _save_figure(path: Path, pair: dict[str, Any], ddfs: dict[str, np.ndarray]) -> None:
    """Mid-axial slice of pair 0: fixed image, then the displacement-error map (mm) of every method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return
    z = pair["fixed"].shape[2] // 2
    rot = pair["affine"][:3, :3]
    names = list(ddfs)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(1.9 * (len(names) + 1), 2.4), dpi=90)
    axes[0].imshow(np.rot90(pair["fixed"][:, :, z]), cmap="gray")
    axes[0].set_title("fixed", fontsize=8)
    im = None
    for ax, name in zip(axes[1:], names):
        diff = np.einsum("ij,j...->i...", rot, ddfs[name][:, :, :, z] - pair["ddf_true"][:, :, :, z])
        err = np.sqrt((diff**2).sum(0)) * pair["mask"][:, :, z]
        im = ax.imshow(np.rot90(err), cmap="magma", vmin=0, vmax=6)
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.tolist(), fraction=0.02, label="error (mm)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------- main
def main(
    pairs: str,
    bundle: str | None = None,
    methods: list[str] | str = KNOWN_METHODS,
    output: str = "compare_results",
    device: str = "cpu",
    threads: int = 2,
    figure: bool = True,
    warmup: bool = True,
) -> dict[str, Any]:
    """Register every pair of ``pairs`` (JSON list of ``{moving, fixed, moving_label, fixed_label, ddf}`` relative to
    the file) with each method, score it against the true DDF and write ``results.{json,csv,md}`` to ``output``.

    Args:
        pairs: the pairs JSON (a list, or ``{"pairs": [...]}``).
        bundle: bundle folder for the ``network`` method.
        methods: list (or comma-separated string) among ``none, network, ants_syn, ants_syn_full, elastix_bspline``;
            ``true_ddf`` is always added. Peers whose package cannot be imported are skipped with a note.
        output: output folder (created).
        device: torch device of the network.
        threads: threads for torch, ITK/elastix and ANTs.
        figure: also write ``error_maps.png`` (pair 0, mid-axial slice).
        warmup: one untimed ``register`` call before timing the network.

    Returns:
        The results dict written to ``results.json``.
    """
    env_threads = configure_threads(threads)
    load_start = _load_average()
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.strip("[]()").replace("'", "").replace('"', "").split(",") if m.strip()]
    methods = list(methods)
    for m in methods:
        if m not in KNOWN_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {KNOWN_METHODS}.")
    run_methods, skipped = [], {}
    for m in methods:
        if m in PEERS:
            ok, why = _peer_available(m)
            if not ok:
                print(f"note: skipping {m}: its package is not importable ({why}).", flush=True)
                skipped[m] = why
                continue
        run_methods.append(m)
    if "network" in run_methods and bundle is None:
        raise ValueError("method 'network' needs --bundle.")
    pairs_path = Path(pairs)
    items = json.loads(pairs_path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    loaded = [load_pair(item, pairs_path.parent) for item in items]

    model, load_seconds = None, None
    if "network" in run_methods:
        from monai_reg_ext.bundle import load_bundle

        start = time.perf_counter()
        model = load_bundle(bundle, device=device)
        load_seconds = time.perf_counter() - start
        if warmup:
            run_method("network", loaded[0], model=model, device=device)

    all_methods = [*run_methods, "true_ddf"]
    rows: list[dict[str, Any]] = []
    fig_ddfs: dict[str, np.ndarray] = {}
    for i, pair in enumerate(loaded):
        for m in all_methods:
            res = run_method(m, pair, model=model, device=device)
            row = {"pair": i, "method": m, "seconds": res["seconds"], **evaluate_ddf(pair, res["ddf"])}
            for extra in ("cpu_seconds", "network_seconds", "peer_warp_mae"):
                if extra in res:
                    row[extra] = res[extra]
            rows.append(row)
            if i == 0:
                fig_ddfs[m] = res["ddf"]
            print(
                f"pair {i} {m:16s} {row['seconds']:7.2f} s  Dice GM {row['dice_gm']:.4f} WM {row['dice_wm']:.4f}  "
                f"error {row['error_mm']:.3f} mm  folding {row['folding_pct']:.3f} %  SDlogJ {row['sdlogj']:.3f}"
                + (f"  peer_warp_mae {row['peer_warp_mae']:.4f}" if "peer_warp_mae" in row else ""),
                flush=True,
            )

    summary = _summary(rows, all_methods)
    table = markdown_table(summary, all_methods)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "description": (
            "Registration methods on pairs with a known true pull DDF (scripts/compare_registration.py docstring). "
            "Dice: moving one-hot labels + background warped bilinearly, argmax, vs fixed label. error_mm: mean "
            "|ddf - ddf_true| in mm inside the fixed brain (GM or WM). folding_pct: % of brain voxels with Jacobian "
            "determinant <= 0; sdlogj: SD of log Jacobian in the brain. seconds: registration wall time per pair "
            "(network: whole register() call incl. reading the two files; network_seconds: the network part); "
            "cpu_seconds: process CPU time of the same span (all threads; less sensitive to other load). "
            "peer_warp_mae: |moving resampled by the peer itself with linear interpolation (ANTs: its warped output; "
            "elastix: transformix) - warp_image(moving, extracted ddf)| in [0, 1] intensities in the brain (check of "
            "the DDF extraction). Summary: mean and population std (ddof=0) over pairs."
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None,
        "pairs_file": str(pairs_path),
        "bundle": None if bundle is None else str(bundle),
        "methods": all_methods,
        "skipped": skipped,
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "device": device,
            **env_threads,
            "versions": _versions(),
            "load_average_1_5_15min": {"start": load_start, "end": _load_average()},
            "bundle_load_seconds": load_seconds,
            "network_warmup": bool(warmup and model is not None),
            "ants_syn_args": "type_of_transform='SyN' (defaults: reg_iterations=(40, 20, 0), shrink 4x2x1)",
            "ants_syn_full_args": (
                "type_of_transform='SyN', reg_iterations=(40, 20, 10) (shrink 4x2x1, smoothing 2x1x0)"
            ),
            "elastix_bspline_args": "ParameterObject.GetDefaultParameterMap('bspline'), no number_of_threads",
        },
        "summary": summary,
        "pairs": rows,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    keys = ["pair", "method", *METRIC_KEYS, "cpu_seconds", "network_seconds", "peer_warp_mae"]
    extra = sorted({k for r in rows for k in r} - set(keys))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*keys, *extra], restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    (out / "results.md").write_text(table)
    if figure and fig_ddfs:
        _save_figure(out / "error_maps.png", loaded[0], fig_ddfs)
    print(table, flush=True)
    return results


@functools.wraps(main)
def _cli(*args: Any, **kwargs: Any) -> None:
    """Command-line entry: :func:`main` without printing the returned dict."""
    main(*args, **kwargs)


if __name__ == "__main__":
    import fire

    fire.Fire(_cli)
