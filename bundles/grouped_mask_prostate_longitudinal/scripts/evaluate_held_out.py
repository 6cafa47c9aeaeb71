"""Evaluate the bundle's network on every ordered pair of visits of the held-out (test) patients.

For each pair (moving visit -> fixed visit of the same patient, DeepReg's "unconstrained" intra-group pairs) it reports
the Dice of the warped moving mask against the fixed mask (both thresholded at 0.5) before and after registration,
the distance between the mask centroids in mm, the fraction of folding voxels (Jacobian determinant <= 0) and the
seconds the network took. Writes ``results.json`` and ``held_out_case.png`` into ``--output``.

Usage (from the repository root)::

    python bundles/grouped_mask_prostate_longitudinal/scripts/evaluate_held_out.py --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, CopyItemsd

from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.data import GroupedDataset
from monai_reg_ext.metrics import centroid_distance, folding_fraction, label_dice
from monai_reg_ext.transforms import registration_preprocessing

BUNDLE = Path(__file__).resolve().parents[1]


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std()), 4), "min": round(float(a.min()), 4)}


def evaluate(bundle: Path, data: Path, weights: Path | None, output: Path, spacing: list[float]) -> dict:
    """Run the network on every test pair; return (and write) the results."""
    model = load_bundle(bundle, device="cpu", weights=weights)
    net = model.network.eval()
    transform = Compose(
        [
            registration_preprocessing(model.spatial_size),
            CopyItemsd(keys=["moving_image", "fixed_image"], times=1, names=["moving_label", "fixed_label"]),
        ]
    )
    ds = GroupedDataset(
        str(data),
        intra_group_prob=1.0,
        intra_group_option="unconstrained",
        sample_image_in_group=False,
        labeled=False,
        transform=transform,
        shuffle=False,
    )
    rows, best = [], None
    for item in ds:
        moving, fixed = item["moving_image"][None].as_tensor(), item["fixed_image"][None].as_tensor()
        with torch.no_grad():
            t0 = time.perf_counter()
            out = net(moving, fixed, moving_label=moving)
            seconds = time.perf_counter() - t0
        warped, ddf = out["pred_fixed_label"], out["ddf"]
        row = {
            "moving": item["moving_image_id"],
            "fixed": item["fixed_image_id"],
            "dice_before": float(label_dice(moving, fixed)[0, 0]),
            "dice_after": float(label_dice(warped, fixed)[0, 0]),
            "centroid_mm_before": float(centroid_distance(moving, fixed, spacing)[0, 0]),
            "centroid_mm_after": float(centroid_distance(warped, fixed, spacing)[0, 0]),
            "folding_fraction": float(folding_fraction(ddf)[0]),
            "seconds": seconds,
        }
        rows.append(row)
        if best is None or row["dice_before"] < best[0]["dice_before"]:  # the hardest pair makes the figure
            best = (row, moving[0, 0].numpy(), fixed[0, 0].numpy(), warped[0, 0].numpy(), ddf[0].numpy())
    keys = [k for k in rows[0] if k not in ("moving", "fixed")]
    results = {
        "bundle": bundle.name,
        "data": "SYNTHETIC longitudinal prostate gland masks, test split (held-out patients)",
        "pairs": len(rows),
        "patients": len({r["moving"].split("/")[0] for r in rows}),
        "spacing_mm": spacing,
        "date": datetime.date.today().isoformat(),
        "torch_threads": torch.get_num_threads(),
        "summary": {k: _stats([r[k] for r in rows]) for k in keys},
        "per_pair": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    _figure(best, output / "held_out_case.png")
    return results


def _figure(case, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row, moving, fixed, warped, ddf = case
    z = int(np.argmax(fixed.sum((0, 1))))
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for ax, img, title in (
        (axes[0], moving, f"before: Dice {row['dice_before']:.3f}"),
        (axes[1], warped, f"after: Dice {row['dice_after']:.3f}"),
    ):
        ax.imshow(fixed[:, :, z].T, cmap="gray", origin="lower")
        ax.contour(img[:, :, z].T, levels=[0.5], colors="r", origin="lower")
        ax.set_title(title)
    mag = np.sqrt((ddf[:, :, :, z] ** 2).sum(0))
    im = axes[2].imshow(mag.T, cmap="viridis", origin="lower")
    axes[2].contour(fixed[:, :, z].T, levels=[0.5], colors="w", origin="lower")
    axes[2].set_title("|DDF| (voxels)")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"SYNTHETIC held-out case {row['moving']} -> {row['fixed']} (slice {z}); "
        "grey: fixed mask, red: moving mask contour"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(BUNDLE))
    ap.add_argument("--data", default=None, help="grouped folder (default <bundle>/data/test)")
    ap.add_argument("--weights", default=None, help="weights file (default <bundle>/models/model.pt)")
    ap.add_argument("--output", default=None, help="output folder (default <bundle>/docs/results)")
    ap.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 2.5], help="voxel spacing in mm")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = Path(args.bundle)
    res = evaluate(
        bundle,
        Path(args.data) if args.data else bundle / "data" / "test",
        Path(args.weights) if args.weights else None,
        Path(args.output) if args.output else bundle / "docs" / "results",
        list(args.spacing),
    )
    for k, v in res["summary"].items():
        print(f"{k}: {v['mean']:.4f} +- {v['std']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
