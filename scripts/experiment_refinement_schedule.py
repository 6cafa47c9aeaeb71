"""How many finest-level iterations does the deformable stage need after ``universal_3d``? (issue 18)

``universal_3d`` followed by the pipeline's deformable stage reached the bundle-free pipeline's accuracy in 0.62-0.69×
its time with ``registration_refinement`` = levels 2, 1 and 20 + 20 Adam steps (``docs/generalisation.md``). The
finest level costs about 0.3 s per step on an 88x104x88 brain (one thread), so its step count sets the time. This
script runs, on **selection sets** (by default the bundles' own test pairs, ``brain_own`` and ``lung_own``, which the
generalisation targets do not score), the bundle-free pipeline and ``universal_3d`` + deformable with each schedule in
``--schedules``, interleaved pair by pair, and picks by a rule fixed before the run: **the cheapest schedule (fewest
finest-level steps, then fewest steps) whose mean Dice on every selection set is at least the pipeline's - 0.005 and
whose mean displacement error (where the set has a true DDF) is at most 1.25x the pipeline's**.
A pick is worth shipping in ``bundles/universal_3d/configs/inference.json`` only when the same schedule after the affine
stage without the network (``--short``) does not reach the accuracy as fast (else the schedule, not the network, saves
the time); it is then measured on the unseen sets by ``scripts/benchmark_generalisation.py --universal --refine``.

Usage (from the repository root; writes ``docs/benchmarks/refinement_schedule.{json,md}``)::

    python scripts/experiment_refinement_schedule.py --threads 1 --short
    python scripts/experiment_refinement_schedule.py --schedules 2,1:20,10 2:40 --sets brain_own --max-pairs 2

A schedule is ``LEVELS:ITERATIONS[@LR]`` (comma-separated downsampling factors and Adam steps per level, optionally
Adam's learning rate in level voxels; default 0.1). With ``--short`` each schedule also runs after the pipeline's affine
stage without the network (``pipeline_short[NAME]``): whether the network, not the schedule, saves the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark_generalisation as bg  # noqa: E402  (a sibling script, not a package)
import benchmark_pairwise as bp  # noqa: E402

from monai_reg_ext import evaluation as ev  # noqa: E402

ROOT = bp.ROOT
BUNDLE = ROOT / "bundles" / "universal_3d"
DEFAULT_SCHEDULES = (
    "2,1:20,20",
    "2,1:20,10",
    "2,1:30,10",
    "2,1:20,5",
    "2,1:40,5",
    "2:40",
    "2,1:20,10@0.2",
    "2,1:20,10@0.3",
    "2,1:20,8@0.3",
)
TOLERANCE = 0.005
"""Largest mean-Dice deficit to the bundle-free pipeline on a selection set that still counts as "reaches it"."""
ERROR_RATIO = 1.25
"""Largest ratio of mean displacement error (mm) to the pipeline's that still counts as "reaches it"."""


def parse_schedule(text: str) -> dict[str, Any]:
    """``"2,1:20,10@0.2"`` -> ``{"levels": (2, 1), "iterations": (20, 10), "lr": 0.2}`` (no ``lr`` without ``@``).

    Raises:
        ValueError: not ``LEVELS:ITERATIONS[@LR]`` with equally many positive ints on both sides and ``LR > 0``.
    """
    steps, at, rate = text.partition("@")
    head, sep, tail = steps.partition(":")
    try:
        levels = tuple(int(v) for v in head.split(","))
        iterations = tuple(int(v) for v in tail.split(","))
        lr = float(rate) if at else 0.1
    except ValueError:
        levels, iterations, lr = (), (), 0.0
    if not sep or not levels or len(levels) != len(iterations) or min(levels + iterations) < 1 or lr <= 0:
        raise ValueError(f"--schedules: expected LEVELS:ITERATIONS[@LR] such as '2,1:20,10@0.2', got {text!r}.")
    return {"levels": levels, "iterations": iterations, **({"lr": lr} if at else {})}


def cost_key(schedule: Mapping[str, Sequence[int]]) -> tuple[int, int]:
    """Sort key of a schedule's cost: Adam steps on level 1 (0 when it is not used), then all steps."""
    finest = min(schedule["levels"])
    steps = dict(zip(schedule["levels"], schedule["iterations"]))
    return (steps[finest] if finest == 1 else 0, sum(schedule["iterations"]))


def reaches(row: Mapping[str, float]) -> bool:
    """Whether a :func:`relative` row counts as reaching the pipeline (:data:`TOLERANCE`, :data:`ERROR_RATIO`)."""
    error_ok = "error_ratio" not in row or row["error_ratio"] <= ERROR_RATIO
    return row["dice_minus_pipeline"] >= -TOLERANCE and error_ok


def pick(
    relative_rows: Mapping[str, Mapping[str, Mapping[str, float]]], schedules: Mapping[str, Mapping[str, Sequence[int]]]
) -> str | None:
    """The cheapest schedule that :func:`reaches` the pipeline on every set (None: none does).

    Args:
        relative_rows: ``{set: {NAME: relative row}}`` (:func:`relative`).
        schedules: ``{NAME: schedule}``.
    """
    ok = [name for name in schedules if all(reaches(rows[name]) for rows in relative_rows.values())]
    return min(ok, key=lambda name: cost_key(schedules[name])) if ok else None


def methods_for(schedules: Mapping[str, Mapping[str, Any]], threads: int, short: bool = False) -> dict[str, ev.Method]:
    """The bundle-free pipeline and ``universal_3d`` + deformable per schedule (with ``short`` also the schedule after
    the affine stage without the network), each on ``threads`` torch threads."""
    from monai_reg_ext.bundle import load_bundle

    model = load_bundle(BUNDLE, device="cpu")
    methods: dict[str, ev.Method] = {"pipeline": ev.register_pipeline("cpu", stages=("affine", "deformable"))}
    for name, schedule in schedules.items():
        config = {**model.config, "registration_refinement": dict(schedule)}
        variant = dataclasses.replace(model, config=config)
        methods[f"universal_3d+deformable[{name}]"] = ev.register_bundle(variant, "cpu", stages=("deformable",))
        if short:
            methods[f"pipeline_short[{name}]"] = ev.register_pipeline(
                "cpu", stages=("affine", "deformable"), **schedule
            )
    return {k: bp.with_threads(m, None, threads) for k, m in methods.items()}


def markdown(results: Mapping[str, Any]) -> str:
    """The per-set tables, the mean-Dice / time summary against the pipeline, and the pick."""
    env = results["environment"]
    lines = [
        "# `universal_3d` + deformable: refinement schedules on selection sets",
        "",
        f"Command: `{results['command']}`  ",
        f"Date (UTC): {env['date_start']} to {env.get('date_end', '?')}; {env['cpu_model']}; "
        f"**{results['threads']} thread(s)**; load average {env['load_start']} at the start.",
        "",
        f"Rule (fixed before the run): the cheapest schedule whose mean Dice on every set is >= the pipeline's - "
        f"{TOLERANCE} and whose mean error is <= {ERROR_RATIO}x the pipeline's. **Pick: `{results.get('pick')}`**.",
        "",
        "| schedule | "
        + " | ".join(f"{s} Dice − pipeline | {s} error / pipeline | {s} time / pipeline" for s in results["sets"])
        + " |",
        "|---" * (1 + 3 * len(results["sets"])) + "|",
    ]

    def cells(key: str, name: str) -> str:
        out = []
        for res in results["sets"].values():
            row = res[key][name]
            error = f"{row['error_ratio']:.2f}" if "error_ratio" in row else "–"
            out += [f"{row['dice_minus_pipeline']:+.4f}", error, f"{row['time_ratio']:.2f}"]
        return " | ".join(out)

    for name in results["schedules"]:
        lines.append(f"| `{name}` after `universal_3d` | {cells('relative', name)} |")
        if all(name in res.get("relative_short", {}) for res in results["sets"].values()):
            lines.append(f"| `{name}` after the affine stage, no network | {cells('relative_short', name)} |")
    lines.append("")
    for name, res in results["sets"].items():
        lines += [f"## `{name}`", "", bp.set_table(name, res, labels={m: m for m in res["summary"]}), ""]
    return "\n".join(lines)


def relative(res: Mapping[str, Any], names: Sequence[str], prefix: str = "universal_3d+deformable") -> dict:
    """Per schedule (method ``prefix[NAME]``): mean Dice minus the pipeline's, ratio of mean errors (when the set has
    them) and of median seconds."""

    def values(method: str, key: str) -> np.ndarray:
        return np.array([float(r[key]) for r in res["pairs"][method]])

    pipe_dice, pipe_s = values("pipeline", "dice_mean"), values("pipeline", "seconds")
    out = {}
    for name in names:
        method = f"{prefix}[{name}]"
        if method not in res["pairs"]:
            continue
        dice, secs = values(method, "dice_mean"), values(method, "seconds")
        out[name] = {
            "dice_minus_pipeline": float(dice.mean() - pipe_dice.mean()),
            "time_ratio": float(np.median(secs) / np.median(pipe_s)),
        }
        if all("error_mm" in r for r in res["pairs"][method] + res["pairs"]["pipeline"]):
            out[name]["error_ratio"] = float(values(method, "error_mm").mean() / values("pipeline", "error_mm").mean())
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the schedules on the selection sets; write ``<output>/<name>.{json,md}``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schedules", nargs="+", default=list(DEFAULT_SCHEDULES))
    ap.add_argument("--sets", nargs="+", default=["brain_own", "lung_own"], choices=bg.SETS)
    ap.add_argument("--max-pairs", type=int, default=None)
    ap.add_argument("--short", action="store_true", help="also each schedule after the affine stage, no network")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mni-source", default=None, help="nilearn wheel / folder (only for brain_unseen)")
    ap.add_argument("--data", default=None, help="folder for generated pairs (default: a temporary one)")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks"))
    ap.add_argument("--name", default="refinement_schedule")
    args = ap.parse_args(argv)
    schedules = {text: parse_schedule(text) for text in args.schedules}
    env_threads = ev.configure_threads(args.threads)
    results: dict[str, Any] = {
        "command": " ".join(["python", "scripts/experiment_refinement_schedule.py", *(argv or sys.argv[1:])]),
        "threads": args.threads,
        "schedules": schedules,
        "tolerance": TOLERANCE,
        "error_ratio": ERROR_RATIO,
        "environment": {
            "date_start": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_model": bp._cpu_model(),
            "load_start": bp.load_average(),
            "versions": bp._versions(),
            **env_threads,
        },
        "sets": {},
    }
    methods = methods_for(schedules, args.threads, args.short)
    with tempfile.TemporaryDirectory(prefix="schedule_") as tmp:
        data = Path(args.data or tmp)
        for name in args.sets:
            print(f"== {name} (load {bp.load_average()})", flush=True)
            pairs, _ = bg.pair_set(name, data / name, args.mni_source, args.max_pairs)
            res = bp.run_set(pairs, methods, warmup=["pipeline"])
            res["relative"] = relative(res, list(schedules))
            if args.short:
                res["relative_short"] = relative(res, list(schedules), prefix="pipeline_short")
            results["sets"][name] = res
    results["pick"] = pick({s: res["relative"] for s, res in results["sets"].items()}, schedules)
    results["environment"]["date_end"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out = Path(args.output)
    ev.write_text(out / f"{args.name}.json", json.dumps(results, indent=1, default=str) + "\n")
    ev.write_text(out / f"{args.name}.md", markdown(results))
    print(markdown(results), flush=True)
    return results


if __name__ == "__main__":
    main()
