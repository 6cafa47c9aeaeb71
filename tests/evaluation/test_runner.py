"""monai_reg_ext.evaluation.runner: the loop, plug-in metrics, warm-up and hooks."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.evaluation import (
    MethodOutput,
    Pair,
    dice,
    evaluate_pair_files,
    evaluate_pairs,
    identity,
    precomputed,
    summarise,
    tre,
    true_ddf,
)


def _pairs(n: int = 3) -> list[Pair]:
    out = []
    for i in range(n):
        fixed = torch.zeros(1, 1, 12, 12)
        fixed[..., 2:6, 2:6] = 1.0
        out.append(Pair(f"p{i}", fixed.roll(i, dims=2), fixed, fixed.roll(i, dims=2), fixed, info={"k": i}))
    return out


def test_rows_per_method_and_pair_with_a_plugin_metric():
    pairs = _pairs()
    calls = []

    def plugin(pair: Pair, output: MethodOutput) -> dict[str, float]:
        calls.append((pair.name, output.identity))
        return {"gap_px": float(output.ddf.abs().amax())}

    shift = {p.name: torch.zeros(1, 2, 12, 12) for p in pairs}
    for i, p in enumerate(pairs):
        shift[p.name][:, 0] = float(i)  # pull from i rows below: undoes the roll
    rows = evaluate_pairs(pairs, {"none": identity(), "net": precomputed(shift, 0.5)}, [dice(), plugin], log=None)
    assert [r["pair"] for r in rows["net"]] == ["p0", "p1", "p2"] and rows["net"][2]["k"] == 2
    assert [r["dice"] for r in rows["net"]] == [1.0, 1.0, 1.0] and rows["net"][0]["seconds"] == 0.5
    assert rows["none"][1]["dice"] == pytest.approx(2 * 12 / 32)
    assert len(calls) == 6 and ("p2", False) in calls
    assert summarise(rows["net"], exclude=("pair", "k"))["gap_px"]["mean"] == pytest.approx(1.0)


def test_warmup_runs_once_untimed_and_hooks_see_every_output():
    pairs, seen, counts = _pairs(2), [], {"n": 0}
    base = identity()

    def counting(pair: Pair) -> MethodOutput:
        counts["n"] += 1
        return base(pair)

    lines = []
    evaluate_pairs(
        pairs, {"m": counting}, [dice()], warmup={"m"}, on_output=lambda p, m, o: seen.append(p.name), log=lines.append
    )
    assert counts["n"] == 3 and seen == ["p0", "p1"] and lines[0].startswith("p0 m: seconds 0")


def test_pair_files(slab_pair):
    root, _ = slab_pair
    res = evaluate_pair_files(
        {"test": root / "pairs.json"}, {"none": identity(), "true": true_ddf()}, [tre()], log=None
    )
    summary = res["test"]["summary"]
    assert summary["none"]["tre_mm"]["mean"] == pytest.approx(3.0) and summary["true"]["tre_mm"]["mean"] < 1e-9
    assert res["test"]["pairs"]["none"][0]["subject"] == "s1" and "subject" not in summary["none"]
