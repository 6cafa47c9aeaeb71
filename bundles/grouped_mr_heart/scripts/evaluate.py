"""Held-out evaluation of the grouped_mr_heart bundle: before/after numbers, ``results.json`` and a figure.

- ``--mode 3d`` (default): the synthetic phantom's test patients, every forward intra-patient pair (C0->DE, C0->T2,
  DE->T2): Dice per label (LV, myo, RV; moving label warped bilinearly, threshold 0.5) without registration
  (``none``) and with the network, mutual information (MONAI's GMI, 23 bins), LNCC (window 7) and mean squared
  difference, folding fraction and SD of log|J|.
- ``--mode 2d``: the real cine's held-out frames 12-15 (forward pairs, no labels): MI, LNCC and mean squared
  difference before and after, folding fraction (weights ``models/model_2d.pt``, network built with
  ``spatial_dims`` 2).

    python bundles/grouped_mr_heart/scripts/evaluate.py --mode 3d --update-metadata
    python bundles/grouped_mr_heart/scripts/evaluate.py --mode 2d --weights bundles/grouped_mr_heart/models/model_2d.pt

Writes ``docs/results/results.json`` (the entry of the mode is replaced) and ``docs/results/held_out_<mode>.png``;
``--update-metadata`` replaces the mode's numbers in ``configs/metadata.json`` ``eval_metrics`` (3 decimals).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import evaluation as ev
from monai_reg_ext import warp_image
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.data import GroupedDataset

BUNDLE = Path(__file__).resolve().parents[1]
LABELS = ("lv", "myo", "rv")
SETTINGS = {
    "3d": {"dataset": "data/phantom3d/test", "spatial_dims": 3, "spatial_size": [64, 64, 16], "labeled": True},
    "2d": {"dataset": "data/cine2d/test", "spatial_dims": 2, "spatial_size": [128, 128], "labeled": False},
}
EVAL_METRICS = {
    "3d": {
        **{f"test_mean_dice_{k}": ("network", f"dice_{k}") for k in LABELS},
        "test_mean_mutual_information": ("network", "mi"),
        "test_folding_fraction": ("network", "folding_fraction"),
        "test_sd_log_jacobian": ("network", "sd_log_jacobian"),
        **{f"no_registration_mean_dice_{k}": ("none", f"dice_{k}") for k in LABELS},
        "no_registration_mean_mutual_information": ("none", "mi"),
    },
    "2d": {
        "cine2d_test_mean_mutual_information": ("network", "mi"),
        "cine2d_no_registration_mean_mutual_information": ("none", "mi"),
        "cine2d_test_folding_fraction": ("network", "folding_fraction"),
    },
}


def held_out_pairs(dataset: Path, settings: dict) -> list[ev.Pair]:
    """The forward intra-patient pairs of ``dataset`` on the network grid (labels when the mode has them)."""
    ds = GroupedDataset(
        dataset,
        intra_group_prob=1.0,
        intra_group_option="forward",
        sample_image_in_group=False,
        labeled=settings["labeled"],
        spatial_size=settings["spatial_size"],
        sample_label="all",
        shuffle=False,
    )
    pairs = []
    for i in range(len(ds)):
        item = ds[i]
        t = {
            k: item[k][None].as_tensor()
            for k in ("moving_image", "fixed_image", "moving_label", "fixed_label")
            if k in item
        }
        ids = {"moving": item["moving_image_id"], "fixed": item["fixed_image_id"]}
        pairs.append(ev.Pair(f"{ids['moving']}->{ids['fixed']}", **t, info=ids))
    return pairs


def evaluate(
    mode: str, bundle: Path, weights: Path, output: Path, dataset_dir: Path | None = None, update_metadata: bool = False
) -> dict:
    """Evaluate ``mode`` (``3d`` or ``2d``); write the results and the figure; return the mode's results."""
    s = SETTINGS[mode]
    overrides = {"spatial_dims": s["spatial_dims"], "spatial_size": s["spatial_size"]}
    model = load_bundle(bundle, device="cpu", weights=weights, overrides=overrides)
    pairs = held_out_pairs(dataset_dir or bundle / s["dataset"], s)
    metrics = [ev.image_similarity(k, key="msd" if k == "ssd" else "") for k in ("mi", "lncc", "ssd")]
    metrics += [ev.folding(), ev.sdlogj(), ev.dice(LABELS)]
    methods = {"none": ev.identity(), "network": ev.network(model)}
    rows = ev.evaluate_pairs(pairs, methods, metrics, log=None)
    result = {"mode": mode, "data": s["dataset"], "weights": weights.name, "n_pairs": len(pairs)}
    result.update(ev.results_by_method(rows, exclude=("pair", "moving", "fixed", "seconds")))
    path = output / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[mode] = result
    eval_metrics = {**results.get("eval_metrics", {}), **ev.select_eval_metrics(result["summary"], EVAL_METRICS[mode])}
    metadata = bundle / "configs" / "metadata.json" if update_metadata else None
    ev.publish(output, results, eval_metrics, digits=3, metadata=metadata, merge=True)
    _figure(mode, pairs[0], methods["network"](pairs[0]), rows, output / f"held_out_{mode}.png")
    for method, summary in result["summary"].items():
        print(mode, method, {k: f"{v['mean']:.4f} +- {v['std']:.4f}" for k, v in summary.items()})
    return result


def _figure(mode: str, pair: ev.Pair, output: ev.MethodOutput, rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def sl(x):
        x = x[0, 0] if x.ndim > 3 else x[0]
        return (x[..., x.shape[-1] // 2] if x.ndim == 3 else x).numpy().T

    mov, fix, warped, ddf = pair.moving_image, pair.fixed_image, ev.warped_image(pair, output), output.ddf
    panels = [("moving " + pair.info["moving"], mov), ("fixed " + pair.info["fixed"], fix), ("warped moving", warped)]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(sl(img), cmap="gray", origin="lower")
        ax.set_title(title, fontsize=8)
    if pair.moving_label is not None:
        labels = (pair.moving_label, pair.fixed_label, warp_image(pair.moving_label, ddf))
        for ax, lab in zip(axes, labels):
            for k, c in enumerate(("r", "y", "c")):
                x = lab[0, k]
                ax.contour((x[..., x.shape[-1] // 2]).numpy().T > 0.5, levels=[0.5], colors=c, linewidths=0.8)
    mi = {m: rows[m][0]["mi"] for m in ("none", "network")}
    axes[3].imshow(np.abs(sl(fix) - sl(mov)), cmap="magma", origin="lower")
    axes[3].set_title(f"|fixed - moving| (MI {mi['none']:.3f})", fontsize=8)
    axes[4].imshow(np.abs(sl(fix) - sl(warped)), cmap="magma", origin="lower")
    axes[4].set_title(f"|fixed - warped| (MI {mi['network']:.3f})", fontsize=8)
    for ax in axes:
        ax.axis("off")
    kind = "SYNTHETIC phantom, mid slice" if mode == "3d" else "REAL cine (ami.js), held-out frames"
    fig.suptitle(f"grouped_mr_heart, {kind}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE)
    ap.add_argument("--mode", choices=sorted(SETTINGS), default="3d")
    ap.add_argument("--dataset_dir", default=None, help="default: <bundle>/data/phantom3d/test or data/cine2d/test")
    args = ev.parse_script_args(ap, argv)
    torch.set_grad_enabled(False)
    weights = Path(args.weights or args.bundle / "models" / ("model.pt" if args.mode == "3d" else "model_2d.pt"))
    ddir = Path(args.dataset_dir) if args.dataset_dir else None
    evaluate(args.mode, args.bundle, weights, args.output, ddir, args.update_metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
