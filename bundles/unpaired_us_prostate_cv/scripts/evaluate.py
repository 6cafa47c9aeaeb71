"""Held-out results of ``unpaired_us_prostate_cv``: LNCC, folding, hidden-mask Dice and time per pair, before/after.

Registers every pair ``(i, j), i < j`` of the subjects in the test fold(s) (default fold 9; 6 subjects -> 15 pairs)
with the bundle's network, on the network grid (the inference config's ``spatial_size``; the images preprocessed as
in training: linear resize, anti-aliased when the config says so, and min-max scaling), and writes ``results.json``,
``results.md`` and ``registration_test_pair0.png`` (the first pair) into ``--output``; ``--update-metadata`` writes
the means into ``configs/metadata.json`` ``eval_metrics``::

    OMP_NUM_THREADS=2 python bundles/unpaired_us_prostate_cv/scripts/evaluate.py --update-metadata

Metrics: LNCC (window 7, higher is better) between the warped moving and the fixed image; folding = fraction of
voxels with a non-positive Jacobian determinant; Dice of the generator's hidden gland masks (``gland_masks.h5``,
never used in training) after warping the moving mask (bilinear, threshold 0.5); seconds = network + warping per
pair (data loading excluded). ``none`` is no registration.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import BundleModel, load_bundle
from monai_reg_ext.evaluation.script import print_eval_metrics, publish_against_no_registration

BUNDLE = Path(__file__).resolve().parents[1]
EVAL_METRICS = ev.eval_metrics_spec(
    {"lncc": "lncc", "dice_hidden_gland": "dice"},
    {"test_folding_fraction": "folding_fraction", "test_seconds_per_pair_cpu": "seconds"},
)
COLUMNS = [
    ev.Column("LNCC", "lncc"),
    ev.Column("Dice of hidden gland masks", "dice"),
    ev.Column("folding fraction", "folding_fraction", 4),
    ev.Column("s/pair (CPU, network)", "seconds"),
]


def fold_pairs(fold_dirs: Sequence[str | Path]) -> list[ev.PairSpec]:
    """Every pair ``i < j`` of each fold: images from ``images.h5``, hidden masks from ``gland_masks.h5`` (H5 refs).

    Raises:
        FileNotFoundError: a fold without ``images.h5`` or ``gland_masks.h5`` (the path is named).
    """
    from monai_reg_ext.io import h5_ref, scan_h5_file

    out = []
    for d in fold_dirs:
        images, masks = Path(d) / "images.h5", Path(d) / "gland_masks.h5"
        for f in (images, masks):
            if not f.is_file():
                raise FileNotFoundError(f"expected {f} (the fold's images and its evaluation-only gland masks).")
        for a, b in combinations(scan_h5_file(images), 2):
            refs = [h5_ref(images, a), h5_ref(images, b), h5_ref(masks, a), h5_ref(masks, b)]
            out.append(ev.PairSpec(*refs, name=f"{a}->{b}"))
    return out


def evaluate_fold(model: BundleModel, specs: list[ev.PairSpec], figure: Path | None = None) -> dict:
    """No registration and the network on ``specs`` (network grid, the bundle's anti-aliasing); draws the first pair
    into ``figure``. Returns :func:`monai_reg_ext.evaluation.results_by_method` of the rows."""
    from monai_reg_ext.visualise import save_registration_figure

    pairs = [ev.preprocess_pair(s, model.spatial_size, model.anti_aliasing) for s in specs]
    methods = {"none": ev.identity(), "network": ev.network(model, with_label=True)}
    metrics = [ev.image_similarity("lncc"), ev.dice(), ev.folding()]
    rows = ev.evaluate_pairs(pairs, methods, metrics)
    if figure is not None:
        out = methods["network"](pairs[0])
        save_registration_figure(
            figure, pairs[0].moving_image[0], pairs[0].fixed_image[0], out.warped_image[0], out.ddf[0], axis=0
        )
    return ev.results_by_method(rows)


def evaluate(
    bundle: str | Path = BUNDLE,
    folds: Sequence[int] = (9,),
    dataset_dir: str | None = None,
    weights: str | None = None,
    output: str | Path | None = None,
    update_metadata: bool = False,
) -> dict:
    """Evaluate the bundle's weights on the pairs of ``folds``; write results.json / .md / PNG; return the dict."""
    root = Path(bundle)
    data = Path(dataset_dir) if dataset_dir else root / "data"
    out = Path(output) if output else root / "docs" / "results"
    folds = [int(f) for f in (folds if isinstance(folds, (list, tuple)) else [folds])]
    model = load_bundle(root, weights=weights)
    by_method = evaluate_fold(
        model, fold_pairs([data / f"fold{f}" for f in folds]), out / "registration_test_pair0.png"
    )
    results = {
        "bundle": "unpaired_us_prostate_cv",
        "test_folds": folds,
        "weights": Path(weights).name if weights else "models/model.pt",
        "device": "cpu",
        **by_method,
    }
    n = by_method["summary"]["network"]["lncc"]["n"]
    heading = f"Held-out pairs: {n} (folds {folds}), mean ± std over pairs."
    return publish_against_no_registration(root, out, results, COLUMNS, EVAL_METRICS, heading, update_metadata)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE)
    ap.add_argument("--folds", type=int, nargs="+", default=[9], help="test fold(s)")
    ap.add_argument("--dataset_dir", default=None, help="folder of the fold<k>/ folders (default <bundle>/data)")
    args = ev.parse_script_args(ap, argv)
    res = evaluate(args.bundle, args.folds, args.dataset_dir, args.weights, args.output, args.update_metadata)
    return print_eval_metrics(res)


if __name__ == "__main__":
    sys.exit(main())
