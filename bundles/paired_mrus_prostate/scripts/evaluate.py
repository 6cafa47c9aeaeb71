"""Held-out results of the ``paired_mrus_prostate`` bundle: Dice, TRE, folding and time per pair, before and after.

Registers every pair of ``data/test_pairs.json`` (parts 9 and 10) with :func:`monai_reg_ext.register` (the same
path as ``monai-reg register``: the MR resampled onto the native TRUS grid in world coordinates, network, warping)
and scores the DDF on the TRUS grid; ``none`` is no registration. Writes ``results.json`` (per pair and mean ± std),
``results.md`` (the README table) and ``contours_<name>.png`` / ``registration_<name>.png`` (the first pair) into
``--output``; ``--update-metadata`` writes the means into ``configs/metadata.json`` ``eval_metrics``::

    OMP_NUM_THREADS=2 python bundles/paired_mrus_prostate/scripts/evaluate.py --update-metadata

Metrics: Dice of the gland (label 0) and transition zone (label 1) after warping (bilinear, threshold 0.5); TRE =
mean distance (mm) between the fixed landmarks mapped through the DDF and the moving landmarks; folding = fraction of
fixed voxels with a non-positive Jacobian determinant; seconds = the ``register`` call (loading, resampling,
network, warping) and ``network_seconds`` the network part alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.evaluation.script import print_eval_metrics, publish_against_no_registration

BUNDLE = Path(__file__).resolve().parents[1]
EVAL_METRICS = ev.eval_metrics_spec(
    {k: k for k in ("dice_gland", "dice_transition_zone", "tre_mm")},
    {"test_folding_fraction": "folding_fraction", "test_seconds_per_pair_cpu": "seconds"},
)
COLUMNS = [
    ev.Column("Dice gland", "dice_gland"),
    ev.Column("Dice transition zone", "dice_transition_zone"),
    ev.Column("TRE (mm)", "tre_mm", 2),
    ev.Column("folding fraction", "folding_fraction", 4),
    ev.Column("s/pair (CPU)", "seconds", 2),
]


def contour_figure(path: Path, pair: ev.Pair, output: ev.MethodOutput) -> None:
    """TRUS (fixed) slices with the gland outline of the TRUS label and of the MR label before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = pair.fixed_image[0, 0].numpy()
    fixed_lab = pair.fixed_label[0, 0].numpy() >= 0.5
    before = pair.moving_label[0, 0].numpy() >= 0.5  # the MR label resampled onto the TRUS grid
    after = ev.warped_label(pair, output)[0, 0].numpy() >= 0.5
    z = int(np.argmax(fixed_lab.sum(axis=(0, 1))))
    x = int(np.argmax(fixed_lab.sum(axis=(1, 2))))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    for ax, sl, title in (
        (axes[0], np.s_[:, :, z], f"slice {z} of axis 2"),
        (axes[1], np.s_[x, :, :], f"slice {x} of axis 0"),
    ):
        ax.imshow(fixed[sl].T, cmap="gray", origin="lower")
        for lab, colour, style in ((fixed_lab, "lime", "-"), (before, "red", "--"), (after, "yellow", "-")):
            ax.contour(lab[sl].T.astype(float), [0.5], colors=colour, linewidths=1.3, linestyles=style)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(
        "synthetic TRUS (fixed); gland: green = TRUS label, red dashed = MR label before, yellow = after", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figures(out: Path, pair: ev.Pair, output: ev.MethodOutput) -> None:
    from monai_reg_ext.visualise import save_registration_figure

    contour_figure(out / f"contours_{pair.name}.png", pair, output)
    path = out / f"registration_{pair.name}.png"
    save_registration_figure(
        path, pair.moving_image[0], pair.fixed_image[0], output.warped_image[0], output.ddf[0], axis=2
    )


def evaluate(
    bundle: str | Path = BUNDLE,
    pairs: str | None = None,
    output: str | Path | None = None,
    weights: str | None = None,
    device: str = "cpu",
    update_metadata: bool = False,
) -> dict:
    """Register the test pairs, write results.json / results.md / the figures, and return the results dict."""
    root = Path(bundle)
    pairs_path = Path(pairs) if pairs else root / "data" / "test_pairs.json"
    out = Path(output) if output else root / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    model = load_bundle(root, device=device, weights=weights)
    loaded = [ev.load_pair(s, resample_moving=True, dtype=torch.float32) for s in ev.read_pairs(pairs_path)]
    methods = {"none": ev.identity(), "network": ev.register_bundle(model, device)}
    metrics = [ev.dice(("gland", "transition_zone")), ev.tre(), ev.folding(), ev.sdlogj()]

    def figures(pair: ev.Pair, name: str, output: ev.MethodOutput) -> None:
        if name == "network" and pair is loaded[0]:
            _figures(out, pair, output)

    rows = ev.evaluate_pairs(loaded, methods, metrics, on_output=figures)
    results = {
        "bundle": "paired_mrus_prostate",
        "pairs_file": pairs_path.name,
        "device": device,
        **ev.results_by_method(rows),
    }
    heading = f"Held-out pairs: {len(loaded)} (parts 9-10), mean ± std over pairs."
    seconds = ev.format_stat(results["summary"]["network"]["network_seconds"], 3)
    footer = f"\nNetwork part alone: {seconds} s per pair.\n"
    return publish_against_no_registration(root, out, results, COLUMNS, EVAL_METRICS, heading, update_metadata, footer)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE)
    ap.add_argument("--pairs", default=None, help="pairs JSON (default <bundle>/data/test_pairs.json)")
    args = ev.parse_script_args(ap, argv)
    return print_eval_metrics(
        evaluate(args.bundle, args.pairs, args.output, args.weights, args.device, args.update_metadata)
    )


if __name__ == "__main__":
    sys.exit(main())
