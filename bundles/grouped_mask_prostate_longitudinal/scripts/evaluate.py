"""Evaluate the bundle's network on every ordered pair of visits of the held-out (test) patients.

For each pair (moving visit -> fixed visit of the same patient, DeepReg's "unconstrained" intra-group pairs) it reports
the Dice of the warped moving mask against the fixed mask (bilinear warp, both thresholded at 0.5) without
registration (``none``) and with the network, the distance between the mask centroids in mm (spacing 1.5 x 1.5 x
2.5 mm), the fraction of folding voxels (Jacobian determinant <= 0) and the seconds the network took. Writes
``results.json`` and ``held_out_case.png`` (the pair with the lowest Dice before registration) into ``--output``;
``--update-metadata`` writes the means into ``configs/metadata.json`` ``eval_metrics``.

Usage (from the repository root)::

    python bundles/grouped_mask_prostate_longitudinal/scripts/evaluate.py --threads 2 --update-metadata
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.transforms import Compose, CopyItemsd

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.data import GroupedDataset
from monai_reg_ext.metrics import centroid_distance
from monai_reg_ext.transforms import registration_preprocessing

BUNDLE = Path(__file__).resolve().parents[1]
SPACING = (1.5, 1.5, 2.5)
EVAL_METRICS = ev.eval_metrics_spec(
    {"dice": "dice", "centroid_distance_mm": "centroid_mm"},
    {"test_folding_fraction": "folding_fraction", "test_seconds_per_pair_cpu": "seconds"},
)


def centroid_mm(spacing: Sequence[float] = SPACING) -> ev.Metric:
    """Plug-in metric: distance (mm) between the centroids of the warped (soft) moving mask and the fixed mask."""

    def metric(pair: ev.Pair, output: ev.MethodOutput) -> dict[str, float]:
        warped = ev.warped_label(pair, output)
        return {"centroid_mm": float(centroid_distance(warped, pair.fixed_label, spacing)[0, 0])}

    return metric


def held_out_pairs(data: Path, spatial_size: Sequence[int]) -> list[ev.Pair]:
    """Every ordered pair of visits of each patient in ``data`` (masks as images and as labels, network grid)."""
    copy = CopyItemsd(keys=["moving_image", "fixed_image"], times=1, names=["moving_label", "fixed_label"])
    ds = GroupedDataset(
        str(data),
        intra_group_prob=1.0,
        intra_group_option="unconstrained",
        sample_image_in_group=False,
        labeled=False,
        transform=Compose([registration_preprocessing(spatial_size), copy]),
        shuffle=False,
    )
    pairs = []
    for item in ds:
        moving, fixed = item["moving_image"][None].as_tensor(), item["fixed_image"][None].as_tensor()
        ids = {"moving": item["moving_image_id"], "fixed": item["fixed_image_id"]}
        name = f"{ids['moving']}->{ids['fixed']}"
        pairs.append(ev.Pair(name, moving, fixed, moving_label=moving, fixed_label=fixed, info=ids))
    return pairs


def evaluate(bundle: Path, data: Path, weights: Path | None, output: Path, update_metadata: bool = False) -> dict:
    """Run the network on every test pair; write ``results.json`` and the figure; return the results."""
    model = load_bundle(bundle, device="cpu", weights=weights)
    pairs = held_out_pairs(data, model.spatial_size)
    methods = {"none": ev.identity(), "network": ev.network(model, with_label=True)}
    metrics = [ev.dice(), centroid_mm(), ev.folding()]
    rows = ev.evaluate_pairs(pairs, methods, metrics, log=None)
    by_method = ev.results_by_method(rows, exclude=("pair", "moving", "fixed"))
    results = {
        "bundle": bundle.name,
        "data": "SYNTHETIC longitudinal prostate gland masks, test split (held-out patients)",
        "n_pairs": len(pairs),
        "patients": len({p.info["moving"].split("/")[0] for p in pairs}),
        "spacing_mm": list(SPACING),
        **by_method,
    }
    eval_metrics = ev.select_eval_metrics(by_method["summary"], EVAL_METRICS)
    metadata = bundle / "configs" / "metadata.json" if update_metadata else None
    ev.publish(output, results, eval_metrics, metadata=metadata)
    hardest = int(np.argmin([r["dice"] for r in rows["none"]]))
    _figure(pairs[hardest], methods["network"](pairs[hardest]), output / "held_out_case.png")
    return results


def _figure(pair: ev.Pair, output: ev.MethodOutput, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    moving, fixed = pair.moving_image[0, 0].numpy(), pair.fixed_image[0, 0].numpy()
    warped, ddf = ev.warped_label(pair, output)[0, 0].numpy(), output.ddf[0].numpy()
    dice = {k: ev.dice()(pair, o)["dice"] for k, o in (("before", ev.identity()(pair)), ("after", output))}
    z = int(np.argmax(fixed.sum((0, 1))))
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for ax, img, title in ((axes[0], moving, "before"), (axes[1], warped, "after")):
        ax.imshow(fixed[:, :, z].T, cmap="gray", origin="lower")
        ax.contour(img[:, :, z].T, levels=[0.5], colors="r", origin="lower")
        ax.set_title(f"{title}: Dice {dice[title]:.3f}")
    mag = np.sqrt((ddf[:, :, :, z] ** 2).sum(0))
    im = axes[2].imshow(mag.T, cmap="viridis", origin="lower")
    axes[2].contour(fixed[:, :, z].T, levels=[0.5], colors="w", origin="lower")
    axes[2].set_title("|DDF| (voxels)")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"SYNTHETIC held-out case {pair.info['moving']} -> {pair.info['fixed']} (slice {z}); "
        "grey: fixed mask, red: moving mask contour"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE)
    ap.add_argument("--data", default=None, help="grouped folder (default <bundle>/data/test)")
    args = ev.parse_script_args(ap, argv)
    data = Path(args.data) if args.data else args.bundle / "data" / "test"
    weights = Path(args.weights) if args.weights else None
    res = evaluate(args.bundle, data, weights, args.output, args.update_metadata)
    for method, summary in res["summary"].items():
        print(method, {k: round(v["mean"], 4) for k, v in summary.items()})
    print("eval_metrics", res["eval_metrics"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
