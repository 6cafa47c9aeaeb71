"""Held-out evaluation of the grouped_mr_heart bundle: before/after numbers, ``results.json`` and a figure.

- ``--mode 3d`` (default): the synthetic phantom's test patients, every forward intra-patient pair (C0->DE, C0->T2,
  DE->T2): Dice per label (LV, myo, RV) before and after, mutual information (MONAI's GMI, 23 bins) before and after,
  folding fraction and SD of log|J|.
- ``--mode 2d``: the real cine's held-out frames 12-15 (forward pairs, no labels): MI, LNCC (window 7) and mean
  squared difference before and after, folding fraction.

    python bundles/grouped_mr_heart/scripts/evaluate.py --mode 3d
    python bundles/grouped_mr_heart/scripts/evaluate.py --mode 2d --weights bundles/grouped_mr_heart/models/model_2d.pt

Writes ``docs/results/results.json`` (the entry of the mode is replaced) and ``docs/results/held_out_<mode>.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_reg_ext import warp_image
from monai_reg_ext.data import GroupedDataset
from monai_reg_ext.losses import GlobalMutualInformationLoss
from monai_reg_ext.metrics import folding_fraction, image_lncc, image_ssd, label_dice, sd_log_jacobian

BUNDLE = Path(__file__).resolve().parents[1]
LABELS = ("lv", "myo", "rv")
SETTINGS = {
    "3d": {"dataset": "data/phantom3d/test", "spatial_dims": 3, "spatial_size": [64, 64, 16], "labeled": True},
    "2d": {"dataset": "data/cine2d/test", "spatial_dims": 2, "spatial_size": [128, 128], "labeled": False},
}


def build_network(bundle: Path, spatial_dims: int, weights: Path) -> torch.nn.Module:
    """The bundle's ``network_def`` (inference.json) with ``spatial_dims`` overridden, weights loaded."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    parser["spatial_dims"] = spatial_dims
    net = parser.get_parsed_content("network_def", instantiate=True)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def _stats(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}


def evaluate(mode: str, bundle: Path, weights: Path, output: Path, dataset_dir: Path | None = None) -> dict:
    s = SETTINGS[mode]
    torch.set_grad_enabled(False)
    net = build_network(bundle, s["spatial_dims"], weights)
    ds = GroupedDataset(
        dataset_dir or bundle / s["dataset"],
        intra_group_prob=1.0,
        intra_group_option="forward",
        sample_image_in_group=False,
        labeled=s["labeled"],
        spatial_size=s["spatial_size"],
        sample_label="all",
        shuffle=False,
    )
    mi = GlobalMutualInformationLoss(reduction="none")
    rows, figure_case = [], None
    for i in range(len(ds)):
        item = ds[i]
        mov, fix = item["moving_image"][None].as_tensor(), item["fixed_image"][None].as_tensor()
        out = net(mov, fix)
        ddf, warped = out["ddf"], out["pred_fixed_image"]
        row = {"moving": item["moving_image_id"], "fixed": item["fixed_image_id"]}
        for tag, img in (("before", mov), ("after", warped)):
            row[f"mi_{tag}"] = float(-mi(img, fix).mean())
            row[f"lncc_{tag}"] = float(image_lncc(img, fix).mean())
            row[f"msd_{tag}"] = float(image_ssd(img, fix).mean())
        row["folding_fraction"] = float(folding_fraction(ddf).mean())
        row["sd_log_jacobian"] = float(sd_log_jacobian(ddf).mean())
        if s["labeled"]:
            ml, fl = item["moving_label"][None].as_tensor(), item["fixed_label"][None].as_tensor()
            wl = warp_image(ml, ddf, mode="bilinear")
            for tag, lab in (("before", ml), ("after", wl)):
                for k, v in enumerate(label_dice(lab, fl)[0].tolist()):
                    row[f"dice_{LABELS[k]}_{tag}"] = v
        rows.append(row)
        if figure_case is None:
            figure_case = (row, mov, fix, warped, ddf, item.get("moving_label"), item.get("fixed_label"))
    keys = [k for k in rows[0] if k not in ("moving", "fixed")]
    summary = {k: _stats([r[k] for r in rows]) for k in keys}
    result = {
        "mode": mode,
        "data": str(s["dataset"]),
        "weights": weights.name,
        "pairs": len(rows),
        "summary": summary,
        "per_pair": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    output.mkdir(parents=True, exist_ok=True)
    path = output / "results.json"
    allres = json.loads(path.read_text()) if path.is_file() else {}
    allres[mode] = result
    path.write_text(json.dumps(allres, indent=2) + "\n")
    _figure(mode, figure_case, output / f"held_out_{mode}.png")
    for k, v in summary.items():
        print(f"{mode} {k}: {v['mean']:.4f} +- {v['std']:.4f}")
    return result


def _figure(mode: str, case, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row, mov, fix, warped, ddf, ml, fl = case

    def sl(x):
        x = x[0, 0] if x.ndim > 3 else x[0]
        return (x[..., x.shape[-1] // 2] if x.ndim == 3 else x).numpy().T

    panels = [("moving " + row["moving"], mov), ("fixed " + row["fixed"], fix), ("warped moving", warped)]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(sl(img), cmap="gray", origin="lower")
        ax.set_title(title, fontsize=8)
    if ml is not None:
        for ax, lab in ((axes[0], ml[None]), (axes[1], fl[None]), (axes[2], warp_image(ml[None].as_tensor(), ddf))):
            for k, c in enumerate(("r", "y", "c")):
                x = lab[0, k]
                ax.contour((x[..., x.shape[-1] // 2]).numpy().T > 0.5, levels=[0.5], colors=c, linewidths=0.8)
    axes[3].imshow(np.abs(sl(fix) - sl(mov)), cmap="magma", origin="lower")
    axes[3].set_title(f"|fixed - moving| (MI {row['mi_before']:.3f})", fontsize=8)
    axes[4].imshow(np.abs(sl(fix) - sl(warped)), cmap="magma", origin="lower")
    axes[4].set_title(f"|fixed - warped| (MI {row['mi_after']:.3f})", fontsize=8)
    for ax in axes:
        ax.axis("off")
    kind = "SYNTHETIC phantom, mid slice" if mode == "3d" else "REAL cine (ami.js), held-out frames"
    fig.suptitle(f"grouped_mr_heart, {kind}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(SETTINGS), default="3d")
    ap.add_argument("--weights", default=None, help="default: models/model.pt (3d), models/model_2d.pt (2d)")
    ap.add_argument("--output", default=str(BUNDLE / "docs" / "results"))
    ap.add_argument("--dataset_dir", default=None)
    args = ap.parse_args()
    weights = Path(args.weights or BUNDLE / "models" / ("model.pt" if args.mode == "3d" else "model_2d.pt"))
    ddir = Path(args.dataset_dir) if args.dataset_dir else None
    evaluate(args.mode, BUNDLE, weights, Path(args.output), ddir)


if __name__ == "__main__":
    main()
