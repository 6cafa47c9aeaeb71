"""Held-out results of the ``paired_mrus_prostate`` bundle: Dice, TRE, folding and time per pair, before and after.

Registers every pair of ``data/test_pairs.json`` (parts 9 and 10) with :func:`monai_reg_ext.register` (the same
path as ``monai-reg register``) and writes ``results.json`` (per pair and mean ± std), ``results.md`` (the README
table) and ``registration_<name>.png`` (the first pair, before/after) into ``--output``; ``--update_metadata``
copies the means into ``configs/metadata.json`` ``eval_metrics``::

    OMP_NUM_THREADS=2 python bundles/paired_mrus_prostate/scripts/evaluate_results.py --update_metadata True

Metrics: Dice of the gland (label 0) and transition zone (label 1) after thresholding at 0.5; TRE = mean distance
(mm) between the fixed landmarks mapped through the DDF and the moving landmarks; folding = fraction of fixed voxels
with a non-positive Jacobian determinant; seconds = the ``register`` call (loading, resampling, network, warping)
and the network part alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import fire
import numpy as np
import torch

from monai_reg_ext.reporting import mean_std, run_environment, update_eval_metrics, write_evaluation

BUNDLE = Path(__file__).resolve().parents[1]
METRICS = {
    "dice_gland": ("dice_label0_before", "dice_label0_after"),
    "dice_transition_zone": ("dice_label1_before", "dice_label1_after"),
    "tre_mm": ("tre_mm_before", "tre_mm_after"),
}


def contour_figure(path: Path, result, moving_label: str, fixed_label: str) -> None:
    """TRUS (fixed) slices with the gland outline of the TRUS label and of the MR label before and after."""
    import matplotlib
    import nibabel as nib
    import torch.nn.functional as F

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = result.fixed.as_tensor()[0].numpy()
    fixed_lab = np.asarray(nib.load(fixed_label).dataobj)[..., 0] > 0
    mov = torch.as_tensor(np.asarray(nib.load(moving_label).dataobj)[..., 0], dtype=torch.float32)[None, None]
    # same field of view (voxel centres span the same extent): align_corners resize = world resampling
    before = F.interpolate(mov, size=fixed_lab.shape, mode="trilinear", align_corners=True)[0, 0].numpy() >= 0.5
    after = result.warped_label.as_tensor()[0].numpy() > 0
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


def evaluate(
    bundle: str = str(BUNDLE),
    pairs: str | None = None,
    output: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    update_metadata: bool = False,
) -> dict:
    """Register the test pairs, write results.json / results.md / the figure, and return the summary dict."""
    from monai_reg_ext import register
    from monai_reg_ext.bundle import load_bundle
    from monai_reg_ext.visualise import save_registration_figure

    root = Path(bundle)
    pairs_path = Path(pairs) if pairs else root / "data" / "test_pairs.json"
    out = Path(output) if output else root / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    items = json.loads(pairs_path.read_text())
    model = load_bundle(root, device=device, weights=weights)
    rows = []
    for i, item in enumerate(items):
        path = {k: str(pairs_path.parent / v) for k, v in item.items() if k != "name"}
        start = time.perf_counter()
        result = register(
            path["moving"],
            path["fixed"],
            bundle=model,
            moving_label=path["moving_label"],
            fixed_label=path["fixed_label"],
            moving_landmarks=path["moving_landmarks"],
            fixed_landmarks=path["fixed_landmarks"],
            landmark_space="physical",
            device=device,
        )
        wall = time.perf_counter() - start
        m = dict(result.metrics)
        row = {"pair": item.get("name", str(i)), "seconds_register": round(wall, 3), "seconds_network": m["seconds"]}
        for key, (before, after) in METRICS.items():
            row[f"{key}_before"], row[f"{key}_after"] = m[before], m[after]
        row["folding_fraction"] = m["folding_fraction"]
        row["sd_log_jacobian"] = m["sd_log_jacobian"]
        rows.append(row)
        if i == 0:
            contour_figure(out / f"contours_{row['pair']}.png", result, path["moving_label"], path["fixed_label"])
            save_registration_figure(
                out / f"registration_{row['pair']}.png",
                result.moving_on_fixed.as_tensor(),
                result.fixed.as_tensor(),
                result.warped_image.as_tensor(),
                result.ddf,
                axis=2,
            )
        print(f"{row['pair']}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "pair"))
    keys = [k for k in rows[0] if k != "pair"]
    summary = {k: mean_std([r[k] for r in rows]) for k in keys}
    results = {
        "bundle": "paired_mrus_prostate",
        "pairs_file": pairs_path.name,
        "device": device,
        **run_environment(),
        "summary": summary,
        "pairs": rows,
    }
    write_evaluation(out, results, _markdown(summary, len(rows)))
    if update_metadata:
        update_eval_metrics(
            root,
            {
                "test_mean_dice_gland": summary["dice_gland_after"]["mean"],
                "test_mean_dice_transition_zone": summary["dice_transition_zone_after"]["mean"],
                "test_mean_tre_mm": summary["tre_mm_after"]["mean"],
                "test_folding_fraction": summary["folding_fraction"]["mean"],
                "test_seconds_per_pair_cpu": summary["seconds_register"]["mean"],
                "no_registration_mean_dice_gland": summary["dice_gland_before"]["mean"],
                "no_registration_mean_dice_transition_zone": summary["dice_transition_zone_before"]["mean"],
                "no_registration_mean_tre_mm": summary["tre_mm_before"]["mean"],
            },
        )
    return results


def _markdown(s: dict, n: int) -> str:
    def f(key: str, digits: int = 3) -> str:
        return f"{s[key]['mean']:.{digits}f} ± {s[key]['std']:.{digits}f}"

    lines = [
        f"Held-out pairs: {n} (parts 9-10), mean ± std over pairs.",
        "",
        "| | Dice gland | Dice transition zone | TRE (mm) | folding fraction | s/pair (CPU) |",
        "|---|---|---|---|---|---|",
        f"| no registration | {f('dice_gland_before')} | {f('dice_transition_zone_before')} | {f('tre_mm_before', 2)}"
        " | 0 | 0 |",
        f"| this network | {f('dice_gland_after')} | {f('dice_transition_zone_after')} | {f('tre_mm_after', 2)}"
        f" | {f('folding_fraction', 4)} | {f('seconds_register', 2)} |",
        "",
        f"Network part alone: {f('seconds_network', 3)} s per pair.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    fire.Fire(evaluate)
