"""Held-out results of the ``paired_mrus_brain`` bundle: landmark TRE (mm), folding, Dice and seconds per pair.

For every pair of ``<data>/<split>/pairs.json`` (written by ``make_demo_data.py``; the same keys work for a prepared
EASY-RESECT test split, without the optional masks) the shipped network registers the moving MR to the fixed
ultrasound with :func:`monai_reg_ext.register`, then:

* TRE (mm): :func:`monai_reg_ext.metrics.landmark_tre` of the landmark pairs, before (zero DDF) and after;
* folding fraction: share of fixed voxels with a non-positive Jacobian determinant of ``x + ddf(x)``;
* Dice of the hidden GM and WM masks inside the ultrasound field of view (bonus; only when the pair lists
  ``moving_label``, ``fixed_label`` and ``fov``), before and after warping the moving mask (nearest neighbour);
* seconds per pair: wall time of the ``register`` call (reading, resampling, network, warping; no file writing).

Writes ``results.json`` (per pair and mean +- std), ``results.md`` (the README table) and ``case_XXX.png`` (one
held-out case before/after, via :func:`monai_reg_ext.visualise.save_registration_figure`).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python bundles/paired_mrus_brain/scripts/evaluate_results.py \\
        --bundle bundles/paired_mrus_brain --split test --output bundles/paired_mrus_brain/docs/results \\
        --instance-optimisation 50
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext import register, warp_image
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.io import read_landmarks
from monai_reg_ext.metrics import folding_fraction, landmark_tre
from monai_reg_ext.visualise import save_registration_figure

__all__ = ["evaluate_pair", "evaluate", "main"]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / s if s > 0 else float("nan")


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def evaluate_pair(model, entry: dict, root: Path, device: str, instance_optimisation: int = 0) -> tuple[dict, dict]:
    """Register one pair and measure it.

    Args:
        model: a :class:`monai_reg_ext.bundle.BundleModel`.
        entry: a ``pairs.json`` item: ``moving``, ``fixed``, ``moving_landmarks``, ``fixed_landmarks`` (JSON/CSV,
            physical RAS mm or voxels as the file says) and optionally ``moving_label``, ``fixed_label`` (one-hot
            ``(X, Y, Z, L)``) and ``fov`` (ultrasound field of view mask); paths relative to ``root``.
        root: folder of the pairs file.
        device: torch device name.
        instance_optimisation: Adam iterations refining the network's DDF on the pair (0: the network alone), with
            the bundle's loss (:func:`monai_reg_ext.register`).

    Returns:
        ``(metrics, arrays)``: the figures (TRE in mm, folding fraction, Dice, seconds) and the arrays for a figure.
    """
    path = {k: root / v for k, v in entry.items() if isinstance(v, str)}
    for key in ("moving", "fixed", "moving_landmarks", "fixed_landmarks"):
        if key not in path or not path[key].is_file():
            raise FileNotFoundError(f"pair {entry}: '{key}' missing or not a file (relative to {root}).")
    fixed, fixed_affine = _load(path["fixed"])
    moving, moving_affine = _load(path["moving"])
    t0 = time.perf_counter()
    result = register(
        str(path["moving"]),
        str(path["fixed"]),
        bundle=model,
        device=device,
        instance_optimisation=instance_optimisation,
    )
    seconds = time.perf_counter() - t0
    ddf = result.ddf.detach().cpu().to(torch.float64)[None]  # (1, 3, *S_fixed) voxels
    fixed_pts = read_landmarks(path["fixed_landmarks"], affine=fixed_affine, spatial_shape=fixed.shape)
    moving_pts = read_landmarks(path["moving_landmarks"], affine=moving_affine, spatial_shape=moving.shape)
    kw = {"fixed_affine": fixed_affine, "moving_affine": moving_affine, "moving_spatial_size": moving.shape}
    before = landmark_tre(moving_pts, fixed_pts, torch.zeros_like(ddf), **kw).numpy()
    after = landmark_tre(moving_pts, fixed_pts, ddf, **kw).numpy()
    out = {
        "tre_mm_before": float(before.mean()),
        "tre_mm_after": float(after.mean()),
        "tre_max_mm_before": float(before.max()),
        "tre_max_mm_after": float(after.max()),
        "n_landmarks": int(len(before)),
        "folding_fraction": float(folding_fraction(ddf.float())),
        "max_displacement_mm": float(
            torch.linalg.vector_norm(
                torch.einsum("ij,bj...->bi...", torch.from_numpy(fixed_affine[:3, :3]), ddf), dim=1
            )
            .max()
            .item()
        ),
        "seconds": seconds,
    }
    if all(k in path for k in ("moving_label", "fixed_label", "fov")):
        ml, _ = _load(path["moving_label"])
        fl, _ = _load(path["fixed_label"])
        fov = np.asarray(_load(path["fov"])[0]) > 0
        lab = torch.from_numpy(np.moveaxis(ml.astype(np.float32), -1, 0))[None]
        warped = warp_image(lab, ddf.float(), mode="nearest")[0].numpy() > 0.5
        for c, name in enumerate(("gm", "wm")):
            m, f = ml[..., c] > 0, fl[..., c] > 0
            out[f"dice_{name}_fov_before"] = _dice(m & fov, f & fov)
            out[f"dice_{name}_fov_after"] = _dice(warped[c] & fov, f & fov)
    arrays = {"moving": result.moving_on_fixed[0], "fixed": result.fixed[0], "warped": result.warped_image[0]}
    arrays["ddf"] = ddf[0]
    arrays["fov"] = np.asarray(_load(path["fov"])[0]) > 0 if "fov" in path else fixed > 0
    return out, arrays


def _relative(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (no absolute paths in shipped results)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def _figure(arrays: dict, path: Path) -> None:
    """Slice through the centre of the ultrasound cone, parallel to its widest section.

    Each image is divided by its 99th percentile inside the cone (MR and ultrasound intensities differ in scale), so
    the shared grey window of :func:`save_registration_figure` shows both.
    """
    fov = np.asarray(arrays["fov"], dtype=bool)
    idx = np.argwhere(fov)
    centre = np.round(idx.mean(0)).astype(int)
    half = np.asarray(fov.shape) // 4
    lo = np.clip(centre - half, 0, np.asarray(fov.shape) - 2 * half)
    box = tuple(slice(int(a), int(a + 2 * h)) for a, h in zip(lo, half))
    axis = int(np.argmin(idx.max(0) - idx.min(0)))
    crop = []
    for key in ("moving", "fixed", "warped"):
        x = arrays[key]
        x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)
        crop.append(np.clip(x / max(float(np.percentile(x[fov], 99)), 1e-6), 0.0, 1.0)[box])
    ddf = np.asarray(arrays["ddf"])[(slice(None), *box)]
    save_registration_figure(path, crop[0], crop[1], crop[2], ddf, axis=axis, grid_step=3)


def evaluate(
    bundle: str,
    data: str,
    split: str,
    output: str,
    device: str = "cpu",
    figure_case: int = 0,
    instance_optimisation: int = 0,
) -> dict:
    """Evaluate every pair of ``<data>/<split>/pairs.json`` and write results.json, results.md and a PNG.

    With ``instance_optimisation > 0`` every pair is also registered by the network followed by that many
    iterations of instance optimisation (``io`` entries).
    """
    pairs_file = Path(data) / split / "pairs.json"
    if not pairs_file.is_file():
        raise FileNotFoundError(f"--data/--split: no pairs file at {pairs_file}.")
    pairs = json.loads(pairs_file.read_text())
    model = load_bundle(bundle, device=device)
    register(str(pairs_file.parent / pairs[0]["moving"]), str(pairs_file.parent / pairs[0]["fixed"]), bundle=model)
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, entry in enumerate(pairs):
        metrics, arrays = evaluate_pair(model, entry, pairs_file.parent, device)
        rows.append({"pair": i, "moving": entry["moving"], "fixed": entry["fixed"], **metrics})
        print(f"pair {i}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if instance_optimisation > 0:
            io_metrics, _ = evaluate_pair(model, entry, pairs_file.parent, device, instance_optimisation)
            rows[-1]["io"] = io_metrics
            print(f"pair {i} + {instance_optimisation} io: " + ", ".join(f"{k} {v:.4g}" for k, v in io_metrics.items()))
        if i == figure_case:
            _figure(arrays, out_dir / f"{Path(entry['fixed']).name.split('.')[0]}.png")
    keys = [k for k in rows[0] if k not in ("pair", "moving", "fixed", "io")]
    summary = {k: _stats([r[k] for r in rows]) for k in keys}
    summary_io = {k: _stats([r["io"][k] for r in rows]) for k in rows[0]["io"]} if instance_optimisation > 0 else {}
    result = {
        "description": (
            "Held-out pairs, moving MR -> fixed ultrasound. TRE: landmark target registration error in mm "
            "(monai_reg_ext.metrics.landmark_tre), before = zero DDF. Dice: hidden GM/WM masks inside the ultrasound "
            "field of view. seconds: wall time of one monai_reg_ext.register call (no file writing)."
        ),
        "bundle": _relative(bundle),
        "pairs_file": _relative(pairs_file),
        "instance_optimisation_iterations": instance_optimisation,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "summary": summary,
        "summary_network_plus_instance_optimisation": summary_io,
        "pairs": rows,
    }
    (out_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    def ms(k: str, nd: int = 2, table: dict | None = None) -> str:
        t = summary if table is None else table
        return f"{t[k]['mean']:.{nd}f} ± {t[k]['std']:.{nd}f}" if k in t else "–"

    lines = [
        f"Held-out pairs: {len(rows)} ({_relative(pairs_file)}); device {device}, "
        f"{torch.get_num_threads()} torch thread(s).",
        "",
        "| | TRE (mm) | max TRE (mm) | Dice GM in FOV | Dice WM in FOV | folding % | s/pair |",
        "|---|---|---|---|---|---|---|",
        f"| no registration | {ms('tre_mm_before')} | {ms('tre_max_mm_before')} | {ms('dice_gm_fov_before', 3)} | "
        f"{ms('dice_wm_fov_before', 3)} | 0 | 0 |",
        f"| this network | **{ms('tre_mm_after')}** | {ms('tre_max_mm_after')} | {ms('dice_gm_fov_after', 3)} | "
        f"{ms('dice_wm_fov_after', 3)} | {100 * summary['folding_fraction']['mean']:.3f} | {ms('seconds')} |",
    ]
    if summary_io:
        t = summary_io
        lines.append(
            f"| network + {instance_optimisation} iterations of instance optimisation | {ms('tre_mm_after', 2, t)} | "
            f"{ms('tre_max_mm_after', 2, t)} | {ms('dice_gm_fov_after', 3, t)} | {ms('dice_wm_fov_after', 3, t)} | "
            f"{100 * t['folding_fraction']['mean']:.3f} | {ms('seconds', 2, t)} |"
        )
    lines.append("")
    (out_dir / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(here))
    ap.add_argument("--data", default=str(here / "data"), help="folder holding <split>/pairs.json")
    ap.add_argument("--split", default="test")
    ap.add_argument("--output", default=str(here / "docs" / "results"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--figure-case", type=int, default=0, help="index of the pair drawn in the PNG")
    ap.add_argument("--instance-optimisation", type=int, default=0, help="also run network + N iterations")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    evaluate(args.bundle, args.data, args.split, args.output, args.device, args.figure_case, args.instance_optimisation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
