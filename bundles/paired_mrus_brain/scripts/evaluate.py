"""Held-out results of the ``paired_mrus_brain`` bundle: landmark TRE (mm), folding, Dice and seconds per pair.

For every pair of ``<data>/<split>/pairs.json`` (written by ``make_demo_data.py``; the same keys work for a prepared
EASY-RESECT test split, without the optional masks) the shipped network registers the moving MR to the fixed
ultrasound with :func:`monai_reg_ext.register` (``network``; ``none`` is no registration, and with
``--instance-optimisation N`` also ``network+ioN``), scored on the fixed grid:

* TRE (mm): :func:`monai_reg_ext.metrics.landmark_tre` of the landmark pairs (mean and max per pair);
* folding fraction: share of fixed voxels with a non-positive Jacobian determinant of ``x + ddf(x)``;
* Dice of the hidden GM and WM masks inside the ultrasound field of view (bonus; only when the pair lists
  ``moving_label``, ``fixed_label`` and ``fov``), the moving mask warped with nearest-neighbour interpolation,
  and the same Dice over the **whole volume** (the MR outside the cone must not be deformed for no reason);
* seconds per pair: wall time of the ``register`` call (reading, resampling, network, warping; no file writing),
  after one untimed warm-up call.

Writes ``results.json`` (per pair and mean ± std), ``results.md`` (the README table) and ``case_XXX.png`` (one
held-out case before/after, via :func:`monai_reg_ext.visualise.save_registration_figure`); ``--update-metadata``
writes the means into ``configs/metadata.json`` ``eval_metrics``.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python bundles/paired_mrus_brain/scripts/evaluate.py --threads 1 --instance-optimisation 50
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle

BUNDLE = Path(__file__).resolve().parents[1]
EVAL_METRICS = ev.eval_metrics_spec(
    {
        "tre_mm": "tre_mm",
        "max_tre_mm": "tre_max_mm",
        "dice_gm_in_us_cone": "dice_gm_fov",
        "dice_wm_in_us_cone": "dice_wm_fov",
        "dice_gm_whole_volume": "dice_gm_whole",
        "dice_wm_whole_volume": "dice_wm_whole",
    },
    {"test_folding_fraction": "folding_fraction", "test_seconds_per_pair_cpu": "seconds"},
)
DIGITS = {k: 3 if "dice" in k else 2 for k in EVAL_METRICS}
COLUMNS = [
    ev.Column("TRE (mm)", "tre_mm", 2),
    ev.Column("max TRE (mm)", "tre_max_mm", 2),
    ev.Column("Dice GM in FOV", "dice_gm_fov"),
    ev.Column("Dice WM in FOV", "dice_wm_fov"),
    ev.Column("Dice GM whole volume", "dice_gm_whole"),
    ev.Column("Dice WM whole volume", "dice_wm_whole"),
    ev.Column("folding %", "folding_fraction", 3, scale=100.0, std=False),
    ev.Column("s/pair", "seconds", 2),
]
METRICS = [
    ev.tre(),
    ev.folding(),
    ev.displacement("max", mm=True, key="max_displacement_mm"),
    ev.dice(("gm", "wm"), mode="nearest", mask="fov", suffix="_fov"),
    ev.dice(("gm", "wm"), mode="nearest", suffix="_whole"),
]


def _relative(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (no absolute paths in shipped results)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _figure(pair: ev.Pair, output: ev.MethodOutput, path: Path) -> None:
    """Slice through the centre of the ultrasound cone, parallel to its widest section.

    Each image is divided by its 99th percentile inside the cone (MR and ultrasound intensities differ in scale), so
    the shared grey window of :func:`save_registration_figure` shows both.
    """
    from monai_reg_ext.visualise import save_registration_figure

    fov = pair.masks["fov"].numpy() if "fov" in pair.masks else pair.fixed_image[0, 0].numpy() > 0
    idx = np.argwhere(fov)
    half = np.asarray(fov.shape) // 4
    lo = np.clip(np.round(idx.mean(0)).astype(int) - half, 0, np.asarray(fov.shape) - 2 * half)
    box = tuple(slice(int(a), int(a + 2 * h)) for a, h in zip(lo, half))
    crop = []
    for img in (pair.moving_image, pair.fixed_image, ev.warped_image(pair, output)):
        x = np.asarray(img[0, 0].detach().cpu(), dtype=np.float32)
        crop.append(np.clip(x / max(float(np.percentile(x[fov], 99)), 1e-6), 0.0, 1.0)[box])
    ddf = output.ddf[0].numpy()[(slice(None), *box)]
    axis = int(np.argmin(idx.max(0) - idx.min(0)))
    save_registration_figure(path, crop[0], crop[1], crop[2], ddf, axis=axis, grid_step=3)


def evaluate(
    bundle: str | Path, data: str | Path, split: str, output: str | Path, device: str = "cpu",
    figure_case: int = 0, instance_optimisation: int = 0, update_metadata: bool = False,
) -> dict:  # fmt: skip
    """Evaluate every pair of ``<data>/<split>/pairs.json``; write results.json, results.md and a PNG."""
    pairs_file, out = Path(data) / split / "pairs.json", Path(output)
    out.mkdir(parents=True, exist_ok=True)
    specs = ev.read_pairs(pairs_file)
    names = ["none", "network"] + ([f"network+io{instance_optimisation}"] if instance_optimisation > 0 else [])
    methods, _ = ev.select_methods(names, {"network": load_bundle(bundle, device=device)}, device)

    def figure(pair: ev.Pair, name: str, output: ev.MethodOutput) -> None:
        if name == "network" and pair.spec is specs[figure_case]:
            _figure(pair, output, out / f"{pair.name}.png")

    pairs = (ev.load_pair(s) for s in specs)
    rows = ev.evaluate_pairs(pairs, methods, METRICS, warmup={"network"}, on_output=figure)
    results = {
        "description": (
            "Held-out pairs, moving MR -> fixed ultrasound. TRE: landmark target registration error in mm "
            "(monai_reg_ext.metrics.landmark_tre); none = no registration. Dice: hidden GM/WM masks inside the "
            "ultrasound field of view. seconds: wall time of one monai_reg_ext.register call (no file writing)."
        ),
        "bundle": _relative(bundle),
        "pairs_file": _relative(pairs_file),
        "instance_optimisation_iterations": instance_optimisation,
        "device": device,
        **ev.results_by_method(rows),
    }
    labels = {"none": "no registration", "network": "this network"}
    labels[f"network+io{instance_optimisation}"] = (
        f"network + {instance_optimisation} iterations of instance optimisation"
    )
    table = ev.markdown_table(results["summary"], COLUMNS, labels, "")
    where = f"{_relative(pairs_file)}); device {device}, {torch.get_num_threads()} torch thread(s)"
    md = f"Held-out pairs: {len(specs)} ({where}.\n\n{table}"
    metadata = Path(bundle) / "configs" / "metadata.json" if update_metadata else None
    ev.publish(out, results, ev.select_eval_metrics(results["summary"], EVAL_METRICS), DIGITS, metadata, md)
    print(md)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, Path(__file__).resolve().parents[1], weights=False)
    ap.add_argument("--data", default=None, help="folder holding <split>/pairs.json (default <bundle>/data)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--figure-case", type=int, default=0, help="index of the pair drawn in the PNG")
    ap.add_argument("--instance-optimisation", type=int, default=0, help="also run network + N iterations")
    args = ev.parse_script_args(ap, argv)
    data = args.data or args.bundle / "data"
    evaluate(
        args.bundle,
        data,
        args.split,
        args.output,
        args.device,
        args.figure_case,
        args.instance_optimisation,
        args.update_metadata,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
