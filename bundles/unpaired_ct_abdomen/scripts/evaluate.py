"""Held-out comparison of the three unpaired_ct_abdomen trainings: Dice per organ, folding, before/after.

Two held-out sets, each model (combined = ``models/model.pt``, unsupervised, weakly supervised) on the same pairs:

- ``test``: every ordered pair of ``data/test`` (4 subjects, 12 pairs); subject 000 is the real CT itself (not in
  training), subjects 001-003 are held-out random warps of it (seeds never used in training).
- ``slab``: one restricted field-of-view pair (72 x 56 x 8 voxels of 4 mm) between two REAL patients: moving = the
  3 mm CT patient, fixed = the DICOM-series patient (never seen in any form in training). Pre-aligned by translation
  only. The network runs on this smaller grid (it is fully convolutional); this is outside its training distribution.

Metrics: Dice per organ (liver, spleen, stomach, pancreas) of the warped moving label (bilinear, threshold 0.5) with
the fixed label, before (no registration) and after, and their mean (``dice_mean``, a plug-in metric; the slab leaves
out the pancreas); folding fraction (share of voxels with det J <= 0); SD of log det J; mean squared intensity
difference (images in [0, 1]). Labels are TotalSegmentator output.

    python bundles/unpaired_ct_abdomen/scripts/evaluate.py              # writes docs/results/*
    python bundles/unpaired_ct_abdomen/scripts/evaluate.py --update-metadata   # also sets metadata eval_metrics

Writes ``docs/results/results.json``, ``docs/results/results.md``, ``docs/results/held_out_test.png`` (test pair 0,
combined model) and ``docs/results/held_out_slab.png``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.visualise import save_registration_figure

BUNDLE = Path(__file__).resolve().parents[1]
ORGANS = ("liver", "spleen", "stomach", "pancreas")
#: organs in the slab pair's mean Dice: its fixed slab holds 5 voxels (0.3 ml) of pancreas, too few to score
SLAB_MEAN_ORGANS = ("liver", "spleen", "stomach")
#: model name -> weights file (relative to the bundle)
MODELS = {
    "combined": "models/model.pt",
    "unsupervised": "models/model_unsupervised.pt",
    "weakly_supervised": "models/model_weakly_supervised.pt",
}
EVAL_METRICS = {
    **{f"test_mean_dice_{o}": ("test", "combined", f"dice_{o}") for o in ORGANS},
    "test_mean_dice": ("test", "combined", "dice_mean"),
    "test_folding_fraction": ("test", "combined", "folding_fraction"),
    "test_sd_log_jacobian": ("test", "combined", "sd_log_jacobian"),
    "unsupervised_test_mean_dice": ("test", "unsupervised", "dice_mean"),
    "weakly_supervised_test_mean_dice": ("test", "weakly_supervised", "dice_mean"),
    **{f"no_registration_mean_dice_{o}": ("test", "before", f"dice_{o}") for o in ORGANS},
    "no_registration_mean_dice": ("test", "before", "dice_mean"),
    "slab_mean_dice": ("slab", "combined", "dice_mean"),
    "slab_no_registration_mean_dice": ("slab", "before", "dice_mean"),
}
COLUMNS = [
    *[ev.Column(f"Dice {o}", f"dice_{o}") for o in ORGANS],
    ev.Column("mean Dice", "dice_mean", bold=True),
    ev.Column("folding fraction", "folding_fraction", 2, std=False, fmt="e"),
    ev.Column("SD log J", "sd_log_jacobian", std=False),
    ev.Column("MSD", "msd", 4, std=False),
]
SETS = {
    "test": "Test pairs (12 ordered pairs of 4 held-out subjects)",
    "slab": "Real inter-patient slab (1 pair, 72x56x8, restricted field of view)",
}


def organ_dice(mean_organs: Sequence[str] = ORGANS) -> ev.Metric:
    """Plug-in metric: Dice per organ and ``dice_mean``, their NaN-ignoring mean over ``mean_organs``."""
    per_organ = ev.dice(ORGANS)

    def metric(pair: ev.Pair, output: ev.MethodOutput) -> dict[str, float]:
        d = per_organ(pair, output)
        return {**d, "dice_mean": float(np.nanmean([d[f"dice_{o}"] for o in mean_organs]))}

    return metric


def load_pairs(folder: Path, spatial_size: Sequence[int] | None) -> list[ev.Pair]:
    """Pairs of ``folder/pairs.json`` preprocessed as in training (``(1, C, *S)``, images min-max to [0, 1]).

    Raises:
        FileNotFoundError: when ``pairs.json`` or a file it names is missing.
    """
    specs = ev.read_pairs(folder / "pairs.json")
    stem = lambda path: Path(path).name.split(".")[0]  # noqa: E731
    return [ev.preprocess_pair(s, spatial_size, name=f"{stem(s.moving)}->{stem(s.fixed)}") for s in specs]


def evaluate_set(pairs: list[ev.Pair], nets: dict[str, ev.Method], mean_organs: Sequence[str] = ORGANS) -> dict:
    """Per-pair rows and summaries of ``before`` (identity) and of each network on ``pairs``."""
    metrics = [organ_dice(mean_organs), ev.image_similarity("ssd", key="msd"), ev.folding(), ev.sdlogj()]
    metrics.append(ev.displacement(key="mean_abs_disp_vox"))
    with torch.no_grad():
        rows = ev.evaluate_pairs(pairs, {"before": ev.identity(), **nets}, metrics, log=None)
    deformation = ("seconds", "folding_fraction", "sd_log_jacobian", "mean_abs_disp_vox")
    rows["before"] = [{k: v for k, v in r.items() if k not in deformation} for r in rows["before"]]
    return {"pairs": len(pairs), "mean_dice_organs": list(mean_organs), **ev.results_by_method(rows)}


def markdown(results: dict) -> str:
    """The results tables (one per set)."""
    lines = [
        "# unpaired_ct_abdomen: held-out results",
        "",
        "Written by `scripts/evaluate.py` (do not edit by hand). Dice of the warped moving organ labels (bilinear, "
        "threshold 0.5) with the fixed labels, mean +- std over pairs; labels are TotalSegmentator model output. "
        "Folding: share of voxels with det J <= 0. MSD: mean squared difference of the [0, 1] images. Means and stds "
        "rounded to 4 decimals, then shown to 3.",
        "",
    ]
    for set_name, title in SETS.items():
        lines += [f"## {title}", "", ev.markdown_table(results[set_name]["summary"], COLUMNS, round_first=4)]
    lines += [f"Weights: {', '.join(f'{k} = `{v}`' for k, v in results['weights'].items())}.", ""]
    return "\n".join(lines)


def run(
    bundle: Path = BUNDLE, data: Path | None = None, output: Path | None = None, update_metadata: bool = False
) -> dict:
    """Evaluate the three models on both held-out sets and write the results files (see the module docstring)."""
    torch.manual_seed(0)
    data = Path(data) if data else bundle / "data"
    output = Path(output) if output else bundle / "docs" / "results"
    models = {name: load_bundle(bundle, weights=bundle / weights) for name, weights in MODELS.items()}
    nets = {name: ev.network(model) for name, model in models.items()}
    results = {"weights": dict(MODELS), "organs": list(ORGANS)}
    first = {}
    for set_name, size, organs in (("test", models["combined"].spatial_size, ORGANS), ("slab", None, SLAB_MEAN_ORGANS)):
        pairs = load_pairs(data / set_name, size)
        results[set_name] = evaluate_set(pairs, nets, organs)
        first[set_name] = pairs[0]
        print(set_name, {m: round(s["dice_mean"]["mean"], 4) for m, s in results[set_name]["summary"].items()})
    eval_metrics = {k: results[s]["summary"][m][key]["mean"] for k, (s, m, key) in EVAL_METRICS.items()}
    metadata = bundle / "configs" / "metadata.json" if update_metadata else None
    ev.publish(output, results, eval_metrics, metadata=metadata, markdown=markdown(results))
    for set_name, pair in first.items():
        out = nets["combined"](pair)
        path = output / f"held_out_{set_name}.png"
        save_registration_figure(
            path, pair.moving_image, pair.fixed_image, out.warped_image, out.ddf, axis=2, grid_step=3
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = ev.script_parser(__doc__, BUNDLE, weights=False)
    ap.add_argument("--data", default=None, help="data folder with test/ and slab/ (default <bundle>/data)")
    args = ev.parse_script_args(ap, argv)
    run(args.bundle, args.data, args.output, args.update_metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
