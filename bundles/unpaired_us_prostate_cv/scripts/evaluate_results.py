"""Held-out results of ``unpaired_us_prostate_cv``: LNCC, folding, hidden-mask Dice and time per pair, before/after.

Registers every pair ``(i, j), i < j`` of the subjects in the test fold(s) (default fold 9; 6 subjects -> 15 pairs)
with the bundle's network, on the network grid (the inference config's ``spatial_size``; the images preprocessed as
in training: linear resize, anti-aliased when the config says so, and min-max scaling), and writes ``results.json``,
``results.md`` and ``registration_<pair>.png`` (the first pair) into ``--output``; ``--update_metadata`` copies the
means into ``configs/metadata.json`` ``eval_metrics``::

    OMP_NUM_THREADS=2 python bundles/unpaired_us_prostate_cv/scripts/evaluate_results.py --update_metadata True

Metrics: LNCC (window 7, higher is better) between the warped moving and the fixed image; folding = fraction of
voxels with a non-positive Jacobian determinant; Dice of the generator's hidden gland masks (``gland_masks.h5``,
never used in training) after warping the moving mask (bilinear, threshold 0.5); seconds = network + warping per
pair (data loading excluded).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import fire
import torch

from monai_reg_ext.reporting import mean_std, run_environment, update_eval_metrics, write_evaluation

BUNDLE = Path(__file__).resolve().parents[1]


def fold_pairs(fold_dirs: Sequence[str | Path]) -> list[tuple[str, str, str, str]]:
    """``(moving_image, fixed_image, moving_mask, fixed_mask)`` H5 references of every pair ``i < j`` of each fold.

    Raises:
        FileNotFoundError: a fold without ``images.h5`` or ``gland_masks.h5`` (the path is named).
    """
    from monai_reg_ext.data import h5_ref, scan_h5_file

    out = []
    for d in fold_dirs:
        images, masks = Path(d) / "images.h5", Path(d) / "gland_masks.h5"
        for f in (images, masks):
            if not f.is_file():
                raise FileNotFoundError(f"expected {f} (the fold's images and its evaluation-only gland masks).")
        keys = scan_h5_file(images)
        for a, b in combinations(keys, 2):
            out.append((h5_ref(images, a), h5_ref(images, b), h5_ref(masks, a), h5_ref(masks, b)))
    return out


def evaluate_pairs(
    network: torch.nn.Module,
    pairs: list[tuple[str, str, str, str]],
    spatial_size: Sequence[int],
    figure: Path | None,
    anti_aliasing: bool = False,
) -> list[dict]:
    """Before/after metrics of each pair (see the module docstring); draws the first pair into ``figure``.

    ``anti_aliasing`` must be the training preprocessing's (the bundle's inference config records it).
    """
    from monai_reg_ext.metrics import folding_fraction, image_lncc, label_dice
    from monai_reg_ext.transforms import registration_preprocessing
    from monai_reg_ext.visualise import save_registration_figure

    pre = registration_preprocessing(spatial_size, anti_aliasing=anti_aliasing)
    rows = []
    network = network.eval()
    for k, (mi, fi, ml, fl) in enumerate(pairs):
        s = pre({"moving_image": mi, "fixed_image": fi, "moving_label": ml, "fixed_label": fl})
        m, f = s["moving_image"].as_tensor()[None], s["fixed_image"].as_tensor()[None]
        mm, fm = s["moving_label"].as_tensor()[None], s["fixed_label"].as_tensor()[None]
        start = time.perf_counter()
        with torch.no_grad():
            out = network(m, f, mm)
        seconds = time.perf_counter() - start
        warped, ddf, warped_mask = out["pred_fixed_image"], out["ddf"], (out["pred_fixed_label"] >= 0.5).float()
        name = f"{mi.split('::')[-1]}->{fi.split('::')[-1]}"
        rows.append(
            {
                "pair": name,
                "lncc_before": float(image_lncc(m, f)[0]),
                "lncc_after": float(image_lncc(warped, f)[0]),
                "dice_gland_before": float(label_dice((mm >= 0.5).float(), (fm >= 0.5).float())[0, 0]),
                "dice_gland_after": float(label_dice(warped_mask, (fm >= 0.5).float())[0, 0]),
                "folding_fraction": float(folding_fraction(ddf)[0]),
                "seconds_network": round(seconds, 4),
            }
        )
        if k == 0 and figure is not None:
            save_registration_figure(figure, m[0], f[0], warped[0], ddf[0], axis=0)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Mean ± std of every numeric column."""
    return {k: mean_std([r[k] for r in rows]) for k in rows[0] if k != "pair"}


def evaluate(
    bundle: str = str(BUNDLE),
    folds: Sequence[int] = (9,),
    dataset_dir: str | None = None,
    weights: str | None = None,
    output: str | None = None,
    update_metadata: bool = False,
) -> dict:
    """Evaluate the bundle's weights on the pairs of ``folds``; write results.json / .md / PNG; return the dict."""
    from monai_reg_ext.bundle import load_bundle

    root = Path(bundle)
    data = Path(dataset_dir) if dataset_dir else root / "data"
    out = Path(output) if output else root / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    folds = [int(f) for f in (folds if isinstance(folds, (list, tuple)) else [folds])]
    model = load_bundle(root, weights=weights)
    pairs = fold_pairs([data / f"fold{f}" for f in folds])
    rows = evaluate_pairs(
        model.network, pairs, model.spatial_size, out / "registration_test_pair0.png", model.anti_aliasing
    )
    summary = summarise(rows)
    results = {
        "bundle": "unpaired_us_prostate_cv",
        "test_folds": folds,
        "weights": Path(weights).name if weights else "models/model.pt",
        "device": "cpu",
        **run_environment(),
        "summary": summary,
        "pairs": rows,
    }
    write_evaluation(out, results, markdown(summary, f"folds {folds}"))
    for r in rows:
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    if update_metadata:
        update_eval_metrics(
            root,
            {
                "test_mean_lncc": summary["lncc_after"]["mean"],
                "test_mean_dice_hidden_gland": summary["dice_gland_after"]["mean"],
                "test_folding_fraction": summary["folding_fraction"]["mean"],
                "test_seconds_per_pair_cpu": summary["seconds_network"]["mean"],
                "no_registration_mean_lncc": summary["lncc_before"]["mean"],
                "no_registration_mean_dice_hidden_gland": summary["dice_gland_before"]["mean"],
            },
        )
    return results


def markdown(s: dict, where: str) -> str:
    """The README table of a summary."""

    def f(key: str, digits: int = 3) -> str:
        return f"{s[key]['mean']:.{digits}f} ± {s[key]['std']:.{digits}f}"

    n = s["lncc_after"]["n"]
    return "\n".join(
        [
            f"Held-out pairs: {n} ({where}), mean ± std over pairs.",
            "",
            "| | LNCC | Dice of hidden gland masks | folding fraction | s/pair (CPU, network) |",
            "|---|---|---|---|---|",
            f"| no registration | {f('lncc_before')} | {f('dice_gland_before')} | 0 | 0 |",
            f"| this network | {f('lncc_after')} | {f('dice_gland_after')} | {f('folding_fraction', 4)}"
            f" | {f('seconds_network', 3)} |",
            "",
        ]
    )


if __name__ == "__main__":
    fire.Fire(evaluate)
