"""scripts/benchmark_pairwise.py: the synthetic pair builder on a tiny analytic template, the set runner with the
cheapest methods, and the whole command on one real lung pair with a few iterations (the benchmark itself is run by
hand, not by tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_reg_ext import evaluation as ev

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import benchmark_pairwise as bp  # noqa: E402

TINY = {
    **bp.GENERATOR,
    "grid": {
        "brain_unseen": {"shape": [20, 20, 20], "spacing": 4.0},
        "multimodal": {"shape": [20, 20, 20], "spacing": 4.0},
    },
    "smooth_max_mm": 4.0,
    "smooth_sigma_mm": 16.0,
    "moving_max_mm": 2.0,
}
FEW = {"affine_iterations": [3, 3], "iterations": [3, 3, 3]}


def _template() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An analytic 'brain' on a 2 mm grid: WM core (bright), GM shell, T1 intensities as the MNI's (0..1)."""
    shape = (40, 40, 40)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    r = np.sqrt((((grid - 19.5) / np.array([14.0, 12.0, 13.0])[:, None, None, None]) ** 2).sum(0))
    wm, gm = (r < 0.6).astype(float), ((r >= 0.6) & (r < 1.0)).astype(float)
    t1 = 0.85 * wm + 0.65 * gm + 0.05 * np.sin(grid[0] / 2) * (r < 1)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -39.0
    return {"t1": t1, "gm": gm, "wm": wm}, affine


@pytest.mark.parametrize("kind", ["brain_unseen", "multimodal"])
def test_build_pairs_known_ddf(tmp_path, kind):
    volumes, affine = _template()
    path = bp.build_pairs(volumes, affine, tmp_path, kind, 1, TINY)
    pair = ev.load_pair(ev.read_pairs(path)[0])
    assert pair.name == f"{kind}_00" and pair.true_ddf.shape == (1, 3, 20, 20, 20)
    metrics = bp.brain_metrics()
    before = ev.score_pair(pair, ev.identity()(pair), metrics)
    truth = ev.score_pair(pair, ev.true_ddf()(pair), metrics)
    assert before["error_mm"] > 2.0 and truth["error_mm"] == 0.0  # the affine moves the brain by millimetres
    assert truth["dice_gm"] > before["dice_gm"] + 0.1 and truth["dice_wm"] > 0.85  # the labels follow the true DDF
    again = ev.load_pair(ev.read_pairs(bp.build_pairs(volumes, affine, tmp_path / "again", kind, 1, TINY))[0])
    assert torch.equal(again.fixed_image, pair.fixed_image)  # deterministic seeds
    with pytest.raises(ValueError, match="kind must be"):
        bp.build_pairs(volumes, affine, tmp_path, "lung", 1, TINY)


def test_remap_contrast_swaps_grey_and_white_matter():
    t1 = np.array([0.0, 0.25, 0.65, 0.85])  # background, CSF, GM, WM of a T1 whose WM is at 0.85
    out = bp.remap_contrast(t1, 0.85, TINY["remap_t1"], TINY["remap_value"])
    assert out[0] < out[1] < out[3] < out[2]  # GM brightest: related to the T1 by no monotonic function


def test_run_set_ratios_and_markdown(tmp_path):
    volumes, affine = _template()
    specs = ev.read_pairs(bp.build_pairs(volumes, affine, tmp_path, "brain_unseen", 1, TINY))
    pairs = bp.PairSet("brain_unseen", specs, bp.brain_metrics(), bp.BRAIN_BUNDLE, {}, ("dice_gm", "dice_wm"), "tiny")
    methods, skipped = bp.make_methods(
        ["none", "pipeline"], pairs, 1, 0, {"stages": "affine", "affine_iterations": [20, 10]}
    )
    res = bp.run_set(pairs, methods, log=None)
    summary = res["summary"]
    assert summary["pipeline"]["error_mm"]["mean"] < summary["none"]["error_mm"]["mean"]
    assert {"dice_mean", "load_1min", "cpu_seconds"} <= set(summary["pipeline"])
    assert res["load_average_1_5_15min"]["start"] is not None and skipped == {}
    res.update(description="tiny", ratios={"pipeline": bp.ratios(res)})
    table = bp.set_table("brain_unseen", res)
    assert "bundle-free pipeline (LNCC)" in table and "error mm" in table


def test_main_on_one_lung_pair(tmp_path):
    """The whole command on one real lung pair, no registration and the pipeline with 3 iterations per level."""
    out = tmp_path / "out"
    argv = ["--sets", "lung", "--methods", "none", "pipeline", "--max-pairs", "1", "--output", str(out)]
    res = bp.main([*argv, "--pipeline_options", json.dumps(FEW), "--name", "t"])
    saved = json.loads((out / "t.json").read_text())
    lung = saved["sets"]["lung"]
    assert saved["threads"] == 1 and saved["pipeline_options"] == FEW and list(lung["summary"]) == ["none", "pipeline"]
    assert lung["summary"]["pipeline"]["seconds"]["n"] == 1 and "dice_lung" in lung["summary"]["none"]
    assert "## `lung` (1 pairs)" in (out / "t.md").read_text() and res["sets"]["lung"]["ratios"]["pipeline"] == {}
    assert bp.parse_args([]).threads == 1 and bp.parse_args([]).sets == list(bp.SETS)


def test_benchmark_pairwise_section(monkeypatch, tmp_path):
    """scripts/benchmark.py's opt-in ``pairwise`` section calls this script (its --quick variant: 2 brain pairs)."""
    import benchmark

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return {"command": "python scripts/benchmark_pairwise.py", "sets": {"brain": {"ratios": {"pipeline": {}}}}}

    monkeypatch.setattr(benchmark.benchmark_pairwise, "main", fake_main)
    res = benchmark.pairwise(tmp_path, threads=1, quick=True)
    assert seen["argv"][:2] == ["--threads", "1"] and "--max-pairs" in seen["argv"]
    assert res["ratios"] == {"brain": {"pipeline": {}}}
    assert "pairwise" in benchmark.SECTIONS and "pairwise" not in benchmark.DEFAULT_SECTIONS
