"""monai_reg_ext.evaluation.summary: statistics, tables, results files and eval_metrics."""

from __future__ import annotations

import json
import math

import pytest

from monai_reg_ext.evaluation import (
    Column,
    format_stat,
    markdown_table,
    mean_std,
    publish,
    results_by_method,
    round_metrics,
    select_eval_metrics,
    statistics,
    summarise,
    update_eval_metrics,
)
from monai_reg_ext.reporting import mean_std as reporting_mean_std


def test_statistics_of_a_known_list():
    s = statistics([1.0, 2.0, 4.0, None, float("nan"), 5.0])
    assert s == {"mean": 3.0, "std": pytest.approx(math.sqrt(2.5)), "median": 3.0, "min": 1.0, "max": 5.0, "n": 4}
    empty = statistics([float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["mean"])
    assert mean_std([1.0, 2.0, 4.0]) == reporting_mean_std([1.0, 2.0, 4.0]) == {"mean": 2.3333, "std": 1.2472, "n": 3}


def test_summarise_skips_text_and_missing_columns():
    rows = [{"pair": "a", "group": "g", "dice": 0.5, "tre_mm": 2.0}, {"pair": "b", "group": "g", "dice": 1.0}]
    s = summarise(rows, exclude=("pair",))
    assert set(s) == {"dice", "tre_mm"} and s["dice"]["mean"] == 0.75 and s["tre_mm"]["n"] == 1
    by = results_by_method({"none": rows})
    assert by["summary"]["none"]["dice"]["median"] == 0.75 and by["pairs"]["none"] == rows


def test_markdown_table_formats_and_rounds_first():
    summaries = {"none": summarise([{"d": 0.71149}, {"d": 0.71151}]), "net": {}}
    cols = [Column("Dice", "d", 3, bold=True), Column("x", "x")]
    table = markdown_table(summaries, cols, {"none": "no registration"})
    assert table.splitlines() == [
        "| method | Dice | x |",
        "|---|---|---|",
        "| no registration | **0.712** ± 0.000 | – |",
        "| net | – | – |",
    ]
    assert "0.711" in markdown_table({"m": {"d": {"mean": 0.71149, "std": 0.0, "n": 1}}}, cols[:1])
    assert "0.712" in markdown_table({"m": {"d": {"mean": 0.71149, "std": 0.0, "n": 1}}}, cols[:1], round_first=4)
    assert format_stat({"mean": 3.26e-5, "std": 0.0, "n": 2}, 2, std=False, fmt="e") == "3.26e-05"
    assert format_stat({"mean": 0.0012, "std": 0.0, "n": 2}, 3, scale=100.0) == "0.120 ± 0.000"


def test_eval_metrics_rounding_and_metadata(tmp_path):
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"version": "1.0", "eval_metrics": {"old": 1.0, "keep": 2.0}}))
    summaries = {"network": {"error_mm": {"mean": 4.2847, "n": 4}, "dice": {"mean": 0.90606, "n": 4}}}
    chosen = select_eval_metrics(summaries, {"err": ("network", "error_mm"), "dice": ("network", "dice")})
    chosen |= select_eval_metrics(summaries, {"absent": ("none", "dice")})
    assert chosen == {"err": 4.2847, "dice": 0.90606}
    assert round_metrics(chosen, {"err": 2}) == {"err": 4.28, "dice": 0.9061}  # 4.2847 -> 4.28, never 4.29
    written = update_eval_metrics(meta, chosen, {"err": 2, "dice": 3})
    assert written == {"err": 4.28, "dice": 0.906}
    text = meta.read_text()
    assert json.loads(text) == {"version": "1.0", "eval_metrics": {"err": 4.28, "dice": 0.906}}
    assert text.endswith("}\n") and '\n    "version"' in text and not list(tmp_path.glob(".tmp-*"))
    update_eval_metrics(meta, {"new": 1.23456}, merge=True)
    assert json.loads(meta.read_text())["eval_metrics"] == {"err": 4.28, "dice": 0.906, "new": 1.2346}
    with pytest.raises(FileNotFoundError, match="nope.json"):
        update_eval_metrics(tmp_path / "nope.json", {})


def test_publish_writes_results_and_metadata(tmp_path):
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"eval_metrics": {}}))
    results = {"summary": {}}
    out = publish(tmp_path / "res", results, {"a": 0.123456}, digits=3, metadata=meta, markdown="| t |\n")
    assert out == {"a": 0.123} and json.loads(meta.read_text())["eval_metrics"] == out
    written = json.loads((tmp_path / "res" / "results.json").read_text())
    assert written["eval_metrics"] == out and "torch_threads" in written["environment"]
    assert (tmp_path / "res" / "results.md").read_text() == "| t |\n"
