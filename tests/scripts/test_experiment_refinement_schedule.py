"""scripts/experiment_refinement_schedule.py: schedule parsing, cost order and the fixed selection rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import experiment_refinement_schedule as ers  # noqa: E402


def test_parse_schedule():
    assert ers.parse_schedule("2,1:20,10") == {"levels": (2, 1), "iterations": (20, 10)}
    assert ers.parse_schedule("2:40") == {"levels": (2,), "iterations": (40,)}
    assert ers.parse_schedule("2,1:20,8@0.3") == {"levels": (2, 1), "iterations": (20, 8), "lr": 0.3}
    for bad in ("2,1:20", "2,1", "a:1", "0:5", "2:0", ":", "2:5@0", "2:5@fast", "2:5@-1"):
        with pytest.raises(ValueError, match="LEVELS:ITERATIONS"):
            ers.parse_schedule(bad)


def test_cost_order_counts_finest_steps_first():
    names = ["2,1:20,20", "2,1:40,5", "2,1:20,5", "2:40", "2,1:20,10@0.2"]
    ordered = sorted(names, key=lambda n: ers.cost_key(ers.parse_schedule(n)))
    assert ordered == ["2:40", "2,1:20,5", "2,1:40,5", "2,1:20,10@0.2", "2,1:20,20"]


def test_pick_applies_dice_and_error_rule():
    schedules = {n: ers.parse_schedule(n) for n in ("2,1:20,20", "2,1:20,10", "2:40")}
    rows = {
        "brain": {
            "2,1:20,20": {"dice_minus_pipeline": -0.0001, "error_ratio": 1.10, "time_ratio": 0.6},
            "2,1:20,10": {"dice_minus_pipeline": -0.0025, "error_ratio": 1.35, "time_ratio": 0.4},  # error too large
            "2:40": {"dice_minus_pipeline": -0.035, "error_ratio": 2.9, "time_ratio": 0.3},
        },
        "lung": {n: {"dice_minus_pipeline": 0.0, "time_ratio": 0.5} for n in schedules},  # no true DDF: Dice only
    }
    assert ers.pick(rows, schedules) == "2,1:20,20"
    rows["brain"]["2,1:20,10"]["error_ratio"] = ers.ERROR_RATIO
    assert ers.pick(rows, schedules) == "2,1:20,10"
    for row in rows["brain"].values():
        row["dice_minus_pipeline"] = -2 * ers.TOLERANCE
    assert ers.pick(rows, schedules) is None
