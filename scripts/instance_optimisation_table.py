"""Network alone versus network + instance optimisation on the held-out pairs of a bundle with true DDFs.

For every pair of ``pairs.json`` (``moving, fixed, moving_label, fixed_label, ddf`` = true pull DDF in fixed voxels):

- ``N = 0``: ``monai_reg_ext.api.register(moving, fixed, bundle=...)`` (the network alone);
- ``N > 0``: the same call with ``instance_optimisation=max(N)``; the DDF after ``N`` iterations is taken from the
  optimiser's callback (the best parameters seen up to iteration ``N``, which is exactly what a run of ``N``
  iterations returns: Adam's trajectory does not depend on the budget), so one run per pair gives every ``N``.
  Its time is the network part of that call plus the optimisation time elapsed when iteration ``N`` was scored.

Scoring reuses ``scripts/compare_registration.py`` (``load_pair``, ``evaluate_ddf``): Dice GM/WM (moving one-hot
labels + background warped bilinearly, argmax), mean displacement error in mm inside the fixed brain (GM or WM)
against the true DDF, folding percentage and SDlogJ in the brain. Summary: mean and population std over the pairs.

Usage::

    python scripts/instance_optimisation_table.py --pairs bundles/unpaired_mr_brain/data/test/pairs.json \\
        --bundle bundles/unpaired_mr_brain --threads 2

Writes ``docs/instance_optimisation.json`` and the table section of ``docs/optimisation.md`` (between the markers
``<!-- io-table:start -->`` and ``<!-- io-table:end -->``; the rest of that file is kept).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# run as `python scripts/instance_optimisation_table.py`: its own folder is on sys.path, so the sibling script imports
from compare_registration import configure_threads, evaluate_ddf, load_pair

from monai_reg_ext.api import register
from monai_reg_ext.api.settings import instance_optimisation_settings
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.spatial import resize_ddf

__all__ = ["run_pair", "summarise", "markdown_table", "main"]

START, END = "<!-- io-table:start -->", "<!-- io-table:end -->"
KEYS = ("seconds", "dice_gm", "dice_wm", "error_mm", "folding_pct", "sdlogj", "io_loss")


def run_pair(pair: dict[str, Any], model, budgets: list[int], device: str) -> list[dict[str, Any]]:
    """Rows ``{n, seconds, dice_gm, dice_wm, error_mm, folding_pct, sdlogj, io_loss}`` of one pair for each budget."""
    moving, fixed = str(pair["paths"]["moving"]), str(pair["paths"]["fixed"])
    fixed_size = tuple(pair["fixed"].shape)
    rows = []
    start = time.perf_counter()
    alone = register(moving, fixed, bundle=model, device=device)
    seconds = time.perf_counter() - start
    rows.append({"n": 0, "seconds": seconds, **evaluate_ddf(pair, alone.ddf.double().numpy()), "io_loss": None})
    top = max(budgets)
    if top == 0:
        return rows
    snaps: dict[int, tuple[float, float, torch.Tensor]] = {}
    best: dict[str, Any] = {"loss": float("inf"), "ddf": None}

    def callback(level: int, iteration: int, loss: float, ddf: torch.Tensor) -> None:
        if loss < best["loss"]:
            best["loss"], best["ddf"] = loss, ddf
        if iteration in budgets:
            snaps[iteration] = (time.perf_counter(), best["loss"], best["ddf"].clone())

    start = time.perf_counter()
    refined = register(
        moving, fixed, bundle=model, device=device, instance_optimisation=top, io_kwargs={"callback": callback}
    )
    total = time.perf_counter() - start
    io_seconds = refined.metrics["instance_optimisation_seconds"]
    io_start = snaps[top][0] - io_seconds
    final = resize_ddf(snaps[top][2].float(), fixed_size)[0].cpu()
    if not torch.allclose(final, refined.ddf, atol=1e-5):
        raise RuntimeError("the callback's DDF at the last iteration differs from register's result.")
    for n in sorted(b for b in budgets if b > 0):
        t, loss, ddf = snaps[n]
        ddf = resize_ddf(ddf.float(), fixed_size)[0].cpu().double().numpy()
        row = {"n": n, "seconds": total - io_seconds + (t - io_start), **evaluate_ddf(pair, ddf), "io_loss": loss}
        rows.append(row)
    rows[0]["io_loss"] = snaps[0][1]
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, float]]]:
    """Mean and population std over the pairs of every metric, per budget ``n``."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for n in sorted({r["n"] for r in rows}):
        nrows = [r for r in rows if r["n"] == n]
        out[n] = {}
        for k in KEYS:
            vals = np.asarray([r[k] for r in nrows if r.get(k) is not None], dtype=np.float64)
            if vals.size:
                out[n][k] = {"mean": float(vals.mean()), "std": float(vals.std()), "n": int(vals.size)}
    return out


def _fmt(stat: dict[str, float] | None, digits: int) -> str:
    return "–" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(summary: dict[int, dict[str, dict[str, float]]]) -> str:
    """Markdown table: iterations | s/pair | Dice GM | Dice WM | error mm | folding % | SDlogJ | optimised loss."""
    lines = [
        "| instance optimisation iterations | s/pair | Dice GM | Dice WM | error mm | folding % | SDlogJ | "
        "optimised loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, s in summary.items():
        label = "0 (network alone)" if n == 0 else str(n)
        lines.append(
            f"| {label} | {_fmt(s.get('seconds'), 2)} | {_fmt(s.get('dice_gm'), 4)} | {_fmt(s.get('dice_wm'), 4)} | "
            f"{_fmt(s.get('error_mm'), 3)} | {_fmt(s.get('folding_pct'), 3)} | {_fmt(s.get('sdlogj'), 3)} | "
            f"{_fmt(s.get('io_loss'), 4)} |"
        )
    return "\n".join(lines) + "\n"


def _write_markdown(path: Path, section: str) -> None:
    block = f"{START}\n{section}{END}\n"
    text = path.read_text() if path.is_file() else "# Optimisation-based registration\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(
    pairs: str = "bundles/unpaired_mr_brain/data/test/pairs.json",
    bundle: str = "bundles/unpaired_mr_brain",
    iterations: tuple[int, ...] | list[int] = (0, 25, 50, 100, 200),
    device: str = "cpu",
    threads: int = 2,
    output_json: str = "docs/instance_optimisation.json",
    output_md: str = "docs/optimisation.md",
    warmup: bool = True,
) -> dict[str, Any]:
    """Run the comparison and write the JSON and the Markdown table (see the module docstring)."""
    env_threads = configure_threads(threads)
    budgets = sorted({int(n) for n in iterations} | {0})
    pairs_path = Path(pairs)
    items = json.loads(pairs_path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    loaded = [load_pair(item, pairs_path.parent) for item in items]
    model = load_bundle(bundle, device=device)
    settings = instance_optimisation_settings(model, None)
    if warmup:  # one untimed call of each kind (allocations, lazy imports)
        p = loaded[0]["paths"]
        register(str(p["moving"]), str(p["fixed"]), bundle=model, device=device, instance_optimisation=2)
    rows = []
    for i, pair in enumerate(loaded):
        for row in run_pair(pair, model, budgets, device):
            rows.append({"pair": i, **row})
            print(
                f"pair {i} N={row['n']:4d} {row['seconds']:7.2f} s  Dice GM {row['dice_gm']:.4f} "
                f"WM {row['dice_wm']:.4f}  error {row['error_mm']:.3f} mm  folding {row['folding_pct']:.3f} %",
                flush=True,
            )
    summary = summarise(rows)
    table = markdown_table(summary)
    command = " ".join(["python", "scripts/instance_optimisation_table.py", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    loss_desc = ", ".join(f"{k}={v}" for k, v in settings.items())
    section = (
        f"Command: `{command}`  \n"
        f"Date (UTC): {date}; device: {device}; torch threads: {torch.get_num_threads()} "
        f"(machine: {os.cpu_count()} CPUs, shared with other jobs: seconds are noisy); torch {torch.__version__}.  \n"
        f"Pairs: {len(loaded)} held-out pairs of `{pairs}`; mean ± population std over pairs.  \n"
        f"Instance optimisation: `register(..., instance_optimisation=N)` with the bundle's settings ({loss_desc}); "
        "Adam, residual on control points every 4 voxels (linear interpolation), network grid, full resolution.\n\n"
        + table
    )
    _write_markdown(Path(output_md), section)
    results = {
        "description": __doc__.split("Usage::")[0].strip(),
        "command": command,
        "environment": {
            "date": date,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "device": device,
            **env_threads,
            "torch": torch.__version__,
        },
        "instance_optimisation_settings": {k: repr(v) for k, v in settings.items()},
        "summary": {str(n): s for n, s in summary.items()},
        "pairs": rows,
    }
    Path(output_json).write_text(json.dumps(results, indent=2) + "\n")
    print(table, flush=True)
    return results


if __name__ == "__main__":
    import functools

    import fire

    @functools.wraps(main)
    def _cli(*args: Any, **kwargs: Any) -> None:  # main's signature for --help; the table is printed, not returned
        main(*args, **kwargs)

    fire.Fire(_cli)
