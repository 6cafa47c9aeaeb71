"""Cross-validation of ``unpaired_us_prostate_cv``: train each fold rotation, test it, summarise mean ± std.

Rotation ``r`` (``configs/cv/rotation_<r>.json``, overriding ``configs/train.json``) tests on fold ``(9 + r) % 10``,
validates on fold ``(8 + r) % 10`` and trains on the other eight, each fold a directory. For every selected rotation
this script runs the bundle's training config (``python -m monai.bundle run training --config_file
"['configs/train.json','configs/cv/rotation_<r>.json']"``), takes the best-validation weights, evaluates them on the
rotation's test fold with ``evaluate.evaluate_fold`` (LNCC, hidden-mask Dice, folding, time) and writes
``cv_summary.json`` and ``cv_summary.md`` (per rotation, and mean ± std over rotations) into ``--output``::

    OMP_NUM_THREADS=1 python bundles/unpaired_us_prostate_cv/scripts/cross_validate.py \
        --rotations "[0,1,2,3,4,5,6,7,8,9]" --max_epochs 300 --output runs/cv_summary

``--max_epochs`` and ``--rotations`` trade time for completeness; the summary records both, so a short run is
labelled as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import fire

from monai_reg_ext.evaluation import mean_std

BUNDLE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import evaluate_fold, fold_pairs  # noqa: E402  (the sibling script of this bundle)

#: column of the summary -> (method, metric) of evaluate_fold's summary
KEYS = {
    f"{column}_{when}": (method, metric)
    for column, metric in (("lncc", "lncc"), ("dice_gland", "dice"))
    for when, method in (("before", "none"), ("after", "network"))
}
KEYS.update(folding_fraction=("network", "folding_fraction"), seconds_network=("network", "seconds"))


def _train(rotation: int, runs: Path, dataset_dir: Path, max_epochs: int, val_interval: int, extra: Sequence[str]):
    configs = f"['{BUNDLE / 'configs' / 'train.json'}','{BUNDLE / 'configs' / 'cv' / f'rotation_{rotation}.json'}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", configs,
           "--meta_file", str(BUNDLE / "configs" / "metadata.json"), "--bundle_root", str(BUNDLE),
           "--dataset_dir", str(dataset_dir), "--output_dir", str(runs), "--max_epochs", str(max_epochs),
           "--val_interval", str(val_interval), "--checkpoint_interval", str(max_epochs), "--num_workers", "0",
           *extra]  # fmt: skip
    runs.mkdir(parents=True, exist_ok=True)
    with open(runs / "train_log.txt", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})


def cross_validate(
    rotations: Sequence[int] = tuple(range(10)),
    max_epochs: int = 300,
    val_interval: int = 5,
    output: str = "runs/cv_summary",
    dataset_dir: str | None = None,
    extra: Sequence[str] = (),
    train: bool = True,
) -> dict:
    """Train (unless ``train=False``: reuse ``<output>/rotation_<r>/best_model.pt``) and test each rotation."""
    import torch

    from monai_reg_ext.bundle import load_bundle

    out = Path(output)
    data = Path(dataset_dir) if dataset_dir else BUNDLE / "data"
    rotations = [int(r) for r in (rotations if isinstance(rotations, (list, tuple)) else [rotations])]
    per_rotation = {}
    for r in rotations:
        cfg = json.loads((BUNDLE / "configs" / "cv" / f"rotation_{r}.json").read_text())
        runs = out / f"rotation_{r}"
        start = time.time()
        if train:
            _train(r, runs, data, max_epochs, val_interval, extra)
        weights = runs / "best_model.pt"
        if not weights.is_file():
            weights = runs / "model.pt"
        model = load_bundle(BUNDLE, weights=weights)
        pairs = fold_pairs([data / f"fold{f}" for f in cfg["test_folds"]])
        figure = out / f"rotation_{r}_test_pair0.png"
        s = evaluate_fold(model, pairs, figure)["summary"]
        per_rotation[r] = {
            "test_folds": cfg["test_folds"],
            "val_folds": cfg["val_folds"],
            "weights": weights.name,
            "wall_seconds": round(time.time() - start, 1),
            **{k: round(s[m][key]["mean"], 4) for k, (m, key) in KEYS.items()},
        }
        print(f"rotation {r}: " + ", ".join(f"{k} {v}" for k, v in per_rotation[r].items()), flush=True)
        _write(out, per_rotation, max_epochs, torch.get_num_threads())
    return _write(out, per_rotation, max_epochs, torch.get_num_threads())


def _write(out: Path, per_rotation: dict, max_epochs: int, threads: int) -> dict:
    over = {k: [v[k] for v in per_rotation.values()] for k in KEYS}
    summary = {k: mean_std(v) for k, v in over.items()}
    result = {
        "bundle": "unpaired_us_prostate_cv",
        "max_epochs_per_rotation": max_epochs,
        "torch_threads": threads,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rotations": {str(k): v for k, v in per_rotation.items()},
        "mean_std_over_rotations": summary,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv_summary.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Cross-validation: {len(per_rotation)} rotation(s), {max_epochs} epochs each; per-rotation values are means",
        "over the test fold's pairs; last row: mean ± std over rotations.",
        "",
        "| rotation | test fold | LNCC before | LNCC after | Dice before | Dice after | folding | s/pair |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, v in per_rotation.items():
        lines.append(
            f"| {r} | {v['test_folds'][0]} | {v['lncc_before']:.3f} | {v['lncc_after']:.3f} | "
            f"{v['dice_gland_before']:.3f} | {v['dice_gland_after']:.3f} | {v['folding_fraction']:.4f} | "
            f"{v['seconds_network']:.3f} |"
        )

    def f(k: str, d: int = 3) -> str:
        return f"{summary[k]['mean']:.{d}f} ± {summary[k]['std']:.{d}f}"

    lines.append(
        f"| **mean ± std** | | {f('lncc_before')} | {f('lncc_after')} | {f('dice_gland_before')} | "
        f"{f('dice_gland_after')} | {f('folding_fraction', 4)} | {f('seconds_network')} |"
    )
    (out / "cv_summary.md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    fire.Fire(cross_validate)
