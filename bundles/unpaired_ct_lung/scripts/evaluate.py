"""Results of the unpaired_ct_lung network and of ANTs SyN on the 4 real inter-subject test pairs.

Every method (no registration, the network through :func:`monai_reg_ext.register` with one untimed warm-up, the
network + instance optimisation, ANTs SyN) registers each pair of ``data/test/pairs.json``; its DDF on the fixed
grid is scored by :mod:`monai_reg_ext.evaluation`: lung mask Dice (moving mask warped bilinearly, thresholded at
0.5), % of voxels of the whole grid with Jacobian determinant ``<= 0``, SD of ``log J``, and the seconds of the
registration call. There are no landmark correspondences between patients, so no TRE.

Usage (from the repository root; writes ``docs/results/results.{json,md}`` and the before/after figures)::

    OMP_NUM_THREADS=1 python bundles/unpaired_ct_lung/scripts/evaluate.py --instance-optimisation 50 --update-metadata
"""

from __future__ import annotations

import sys
from pathlib import Path

from monai_reg_ext import evaluation as ev

BUNDLE = Path(__file__).resolve().parents[1]
COLUMNS = [
    ev.Column("lung Dice", "dice"),
    ev.Column("folding (%)", "folding_pct"),
    ev.Column("SDlogJ", "sdlogj"),
    ev.Column("s / pair", "seconds", 2),
]
EVAL_METRICS = {
    **{f"test_mean_{k}": ("network:combined", k) for k in ("dice", "folding_pct", "sdlogj", "seconds")},
    "no_registration_mean_dice": ("none", "dice"),
    **{
        f"{m}_test_mean_{k}": (n, k)
        for m, n in (("combined_io50", "network:combined+io50"), ("ants_syn", "ants_syn"))
        for k in ("dice", "seconds")
    },
}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE, weights=False)
    ev.add_method_arguments(ap, ["test"], {"combined": "models/model.pt"}, ["ants_syn"])
    args = ev.parse_script_args(ap, argv)
    metrics = [ev.dice(), ev.folding(percent=True), ev.sdlogj(key="sdlogj")]
    results = ev.evaluate_bundle_splits(args, metrics, binarise=True)
    summary = results["splits"][args.splits[0]]["summary"]
    metadata = args.bundle / "configs" / "metadata.json" if args.update_metadata else None
    md = ev.splits_markdown(results, COLUMNS)
    ev.publish(args.output, results, ev.select_eval_metrics(summary, EVAL_METRICS), metadata=metadata, markdown=md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
