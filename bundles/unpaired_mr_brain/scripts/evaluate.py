"""Held-out results of ``unpaired_mr_brain``: the network against ANTs SyN and elastix on pairs with a known DDF.

The 4 test pairs of ``data/test/pairs.json`` (synthetic deformations of the real MNI template, true DDF known) are
registered by no registration, the network (:func:`monai_reg_ext.register`, one untimed warm-up), ANTs SyN with its
defaults and with a full-resolution level, and elastix's default B-spline map (peers skipped when their package is
missing), and scored by :func:`monai_reg_ext.evaluation.compare_methods`: Dice GM / WM (one-hot labels + background
warped bilinearly, argmax), mean displacement error in mm, folding % and SDlogJ inside the fixed brain, seconds.

Usage (from the repository root; writes ``docs/results/results.{json,csv,md}`` and ``error_maps.png``)::

    python bundles/unpaired_mr_brain/scripts/evaluate.py --threads 2 --update-metadata
    python bundles/unpaired_mr_brain/scripts/evaluate.py --methods none network --output /tmp/brain  # no peers
"""

from __future__ import annotations

import sys
from pathlib import Path

from monai_reg_ext import evaluation as ev

BUNDLE = Path(__file__).resolve().parents[1]
METHODS = ("none", "network", "ants_syn", "ants_syn_full", "elastix_bspline")
EVAL_METRICS = ev.eval_metrics_spec(
    {"dice_gm": "dice_gm", "dice_wm": "dice_wm", "displacement_error_mm": "error_mm"},
    {"test_folding_fraction": "folding_fraction", "test_sd_log_jacobian": "sdlogj"},
)
DIGITS = {k: 2 if k.endswith("_mm") else 3 for k in EVAL_METRICS}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE, weights=False)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), help=f"among {ev.KNOWN_METHODS}")
    args = ev.parse_script_args(ap, argv)
    pairs = args.bundle / "data" / "test" / "pairs.json"
    folding_fraction = ev.folding("label")  # the metadata's folding is a fraction, the table's a percentage
    res = ev.compare_methods(
        pairs, args.bundle, args.methods, args.output, args.device, args.threads or 2, metrics=[folding_fraction]
    )
    summary = res["summary"]
    metadata = args.bundle / "configs" / "metadata.json" if args.update_metadata else None
    ev.publish(
        args.output, res, ev.select_eval_metrics(summary, EVAL_METRICS), DIGITS, metadata, ev.speed_table(summary)
    )
    print("eval_metrics", res["eval_metrics"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
