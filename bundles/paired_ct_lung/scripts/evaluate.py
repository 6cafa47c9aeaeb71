"""Results of the paired_ct_lung networks and of classical peers on the held-out pairs: Dice, TRE, folding, seconds.

For every pair of ``data/<split>/pairs.json`` and every method (no registration, each network through
:func:`monai_reg_ext.register`, the first network + instance optimisation, ANTs SyN...), the DDF on the fixed grid is
scored by :mod:`monai_reg_ext.evaluation`:

- ``dice``: lung mask Dice, the moving mask warped bilinearly and thresholded at 0.5, against the fixed mask;
- ``tre_mm``: target registration error of the vessel landmarks in mm (fixed landmark ``f`` carried to
  ``f + ddf(f)`` and compared with its moving landmark);
- ``error_mm``: mean ``|R (ddf - ddf_true)|`` in the fixed lungs (the synthetic breathing motion is known);
- ``folding_pct``: % of voxels of the whole grid with Jacobian determinant ``<= 0``; ``sdlogj``: SD of ``log J``;
- ``seconds``: wall time of the registration call (network: ``register`` on the two files, bundle loaded once, one
  untimed warm-up; ANTs: ``ants.registration``).

Usage (from the repository root; writes ``docs/results/results.{json,md}`` and the before/after figures)::

    OMP_NUM_THREADS=1 python bundles/paired_ct_lung/scripts/evaluate.py --instance-optimisation 50 --update-metadata
"""

from __future__ import annotations

import sys
from pathlib import Path

from monai_reg_ext import evaluation as ev

BUNDLE = Path(__file__).resolve().parents[1]
NETWORKS = {"combined": "models/model.pt", "unsupervised": "models/model_unsup.pt"}
METRICS = [ev.dice(), ev.tre(), ev.ddf_error("label"), ev.folding(percent=True), ev.sdlogj(key="sdlogj")]
COLUMNS = [
    ev.Column("Dice (lungs)", "dice"),
    ev.Column("TRE (mm)", "tre_mm", 2),
    ev.Column("DDF error in lungs (mm)", "error_mm", 2),
    ev.Column("folding (%)", "folding_pct"),
    ev.Column("SDlogJ", "sdlogj"),
    ev.Column("s / pair", "seconds", 2),
]
NETWORK_KEYS = ("dice", "tre_mm", "error_mm", "folding_pct", "sdlogj", "seconds")
EVAL_METRICS = {
    **{f"test_mean_{k}": ("network:combined", k) for k in NETWORK_KEYS},
    **{f"no_registration_mean_{k}": ("none", k) for k in ("dice", "tre_mm", "error_mm")},
    **{f"unsupervised_test_mean_{k}": ("network:unsupervised", k) for k in ("dice", "tre_mm", "seconds")},
    **{f"combined_io50_test_mean_{k}": ("network:combined+io50", k) for k in ("dice", "tre_mm", "seconds")},
    **{f"ants_syn_test_mean_{k}": ("ants_syn", k) for k in ("dice", "tre_mm", "seconds")},
}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring); ``eval_metrics`` come from the ``test`` split."""
    ap = ev.add_method_arguments(
        ev.script_parser(__doc__, BUNDLE, weights=False), ("test", "val"), NETWORKS, ["ants_syn"]
    )
    args = ev.parse_script_args(ap, argv)
    results = ev.evaluate_bundle_splits(args, METRICS, binarise=True)
    eval_metrics = ev.select_eval_metrics(results["splits"]["test"]["summary"], EVAL_METRICS)
    metadata = args.bundle / "configs" / "metadata.json" if args.update_metadata else None
    ev.publish(args.output, results, eval_metrics, metadata=metadata, markdown=ev.splits_markdown(results, COLUMNS))
    print((args.output / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
