"""Does integrating a DVF network's velocity on a coarser grid keep its accuracy? (issue 22, a measured negative)

The ``unpaired_mr_brain`` network (RegUNet, DVF with 7 scaling-and-squaring steps at 64x80x64) spends about a quarter
of its forward pass in the 7 full-resolution ``grid_sample`` calls of the integration. VoxelMorph integrates at half
resolution by default (``int_downsize=2``). This script swaps the integration of the **shipped weights, without
retraining**, and scores the bundle's 4 test pairs (Dice GM / WM, mean displacement error in mm against the true DDF,
SD of log Jacobian) with ``bundles/unpaired_mr_brain/scripts/evaluate.py``'s comparison, and times the network alone
(median of 10 forward passes after 3 warm-ups, one torch thread):

- ``full``: the shipped integration (7 steps at 64x80x64);
- ``half``: the velocity resized to 32x40x32 (trilinear, values / 2), integrated there, the DDF resized back (x 2);
- ``half_correction``: ``ddf = v + up(exp(v_half) - v_half)``: the first-order term at full resolution, the non-linear
  part of the exponential from the half grid.

Usage (from the repository root; writes ``docs/benchmarks/integration_grid.{json,md}``)::

    OMP_NUM_THREADS=1 python scripts/experiment_integration_grid.py

The bundle's published accuracy tolerance is 0.002 Dice / 0.02 mm (``tests/bundles/published.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

import monai_reg_ext.networks.registration as registration
from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"
KEYS = ("dice_gm", "dice_wm", "error_mm", "sdlogj", "folding_pct")


def _half(integrate: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(dvf: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
        small = F.interpolate(dvf, scale_factor=0.5, mode="trilinear", align_corners=False) / 2.0
        ddf = integrate(small, num_steps) * 2.0
        return F.interpolate(ddf, size=dvf.shape[2:], mode="trilinear", align_corners=False)

    return run


def _half_correction(integrate: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(dvf: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
        small = F.interpolate(dvf, scale_factor=0.5, mode="trilinear", align_corners=False) / 2.0
        correction = (integrate(small, num_steps) - small) * 2.0
        return dvf + F.interpolate(correction, size=dvf.shape[2:], mode="trilinear", align_corners=False)

    return run


VARIANTS: dict[str, Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]] | None] = {
    "full": None,
    "half": _half,
    "half_correction": _half_correction,
}


@contextmanager
def integration(variant: str) -> Iterator[None]:
    """Swap :func:`monai_reg_ext.networks.registration.integrate_velocity` (what the network's DDF path calls)."""
    original = registration.integrate_velocity
    make = VARIANTS[variant]
    if make is not None:
        registration.integrate_velocity = make(original)
    try:
        yield
    finally:
        registration.integrate_velocity = original


def network_seconds(repeats: int = 10) -> float:
    """Median seconds of one forward pass of the bundle's network on a random pair at its grid."""
    model = load_bundle(str(BUNDLE))
    x = torch.rand(1, 2, *model.spatial_size)
    with torch.inference_mode():
        for _ in range(3):
            model.network(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.network(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    """Run every variant; write ``<output>/integration_grid.{json,md}``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pairs = BUNDLE / "data" / "test" / "pairs.json"
    results: dict = {
        "command": "OMP_NUM_THREADS=1 python scripts/experiment_integration_grid.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "variants": {},
    }
    for name in VARIANTS:
        with integration(name), tempfile.TemporaryDirectory() as tmp:
            res = ev.compare_methods(pairs, BUNDLE, ["network"], tmp, "cpu", 1, figure=False)
            summary = res["summary"]["network"]
            row = {k: summary[k]["mean"] for k in KEYS if k in summary}
            row["network_seconds"] = network_seconds()
        results["variants"][name] = row
        print(name, row, flush=True)
    full = results["variants"]["full"]
    lines = [
        "# Integrating `unpaired_mr_brain`'s velocity on a coarser grid (shipped weights, no retraining)",
        "",
        f"Command: `{results['command']}`; {results['date']}; the bundle's 4 test pairs; network seconds: median "
        "of 10 forward passes, one thread.",
        "",
        "| variant | Dice GM | Dice WM | error mm | SD log J | network s | Δ Dice GM / WM vs full |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results["variants"].items():
        delta = f"{row['dice_gm'] - full['dice_gm']:+.4f} / {row['dice_wm'] - full['dice_wm']:+.4f}"
        lines.append(
            f"| {name} | {row['dice_gm']:.4f} | {row['dice_wm']:.4f} | {row['error_mm']:.3f} | "
            f"{row.get('sdlogj', float('nan')):.3f} | {row['network_seconds']:.3f} | {delta} |"
        )
    out = Path(args.output)
    ev.write_text(out / "integration_grid.json", json.dumps(results, indent=1) + "\n")
    ev.write_text(out / "integration_grid.md", "\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    main()
