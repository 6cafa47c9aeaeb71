"""Plumbing of scripts/benchmark.py on a tiny throwaway bundle (the real benchmark is run by hand, not by tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import make_tiny_bundle

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import benchmark  # noqa: E402


@pytest.fixture
def tiny(tmp_path):
    """A tiny bundle (LocalNet, 16^3 grid) and one pair with labels and a true DDF on a 12x14x10 grid."""
    root = make_tiny_bundle(tmp_path / "bundle")
    data = tmp_path / "pairs"
    data.mkdir()
    shape = (12, 14, 10)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    for name, shift in (("moving", 0.15), ("fixed", 0.0)):
        img = np.exp(-(((grid - shift) ** 2).sum(0)) * 3).astype(np.float32)
        nib.save(nib.Nifti1Image(img, aff), data / f"{name}.nii.gz")
        lab = np.stack([img > 0.6, (img > 0.3) & (img <= 0.6)], -1).astype(np.float32)
        nib.save(nib.Nifti1Image(lab, aff), data / f"{name}_label.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((*shape, 3), np.float32), aff), data / "ddf.nii.gz")
    entry = {k: f"{k}.nii.gz" for k in ("moving", "fixed", "moving_label", "fixed_label", "ddf")}
    (data / "pairs.json").write_text(json.dumps([entry]))
    reuse = tmp_path / "results.json"
    rows = [
        {"pair": 0, "method": m, "seconds": s, "dice_gm": 0.9, "dice_wm": 0.9, "error_mm": e, "folding_pct": 0.0,
         "sdlogj": 0.1}
        for m, s, e in (("none", 0.0, 3.0), ("ants_syn", 4.0, 1.5), ("elastix_bspline", 20.0, 0.9))
    ]  # fmt: skip
    reuse.write_text(json.dumps({"environment": {"date": "test"}, "pairs": rows}))
    return root, data / "pairs.json", reuse


def test_quick_plumbing(tiny, tmp_path):
    bundle, pairs, reuse = tiny
    out = tmp_path / "out"
    res = benchmark.main(
        quick=True,
        sections=["inference", "register_io", "peers"],
        bundle=str(bundle),
        pairs=str(pairs),
        sizes=[16, 24],
        repeats=1,
        io_iterations=2,
        reuse=str(reuse),
        fresh_process=False,
        output=str(out),
        name="t",
    )
    for f in ("t.json", "t_inference.csv", "t_peers.csv", "t_inference.png", "t_peers.png"):
        assert (out / f).is_file(), f
    rows = res["inference"]["rows"]
    assert [r["size"] for r in rows] == [16, 24] and all(r["seconds_median"] > 0 for r in rows)
    assert {"r2", "loglog_exponent", "linear"} <= set(res["inference"]["fit"])
    assert res["register_io"]["register_call_seconds_median"] > 0
    summary = res["peers"]["summary"]
    assert {"network", "ants_syn", "elastix_bspline"} <= set(summary)
    assert summary["ants_syn"]["speed_ratio_vs_ants_syn"] == pytest.approx(1.0)
    if "network_io" not in res["peers"]["notes"]:  # instance optimisation available
        assert "network_io2" in summary
    saved = json.loads((out / "t.json").read_text())
    assert saved["environment_start"]["cpu_model"] and saved["threads"] == 1


def test_parse_training_log():
    log = (
        "INFO - Epoch: 1/2, Iter: 4/4 -- train_loss: -0.6\n"
        "x - SupervisedTrainer - INFO - Epoch[1] Complete. Time taken: 00:00:07.563\n"
        "x - SupervisedTrainer - INFO - Epoch[2] Complete. Time taken: 00:01:02.500\n"
        "x - SupervisedTrainer - INFO - Epoch[2] Complete. Time taken: 00:01:01.000\n"
    )
    parsed = benchmark.parse_training_log(log)
    assert parsed["iterations_per_epoch_per_rank"] == 4
    assert parsed["epoch_seconds"] == {1: pytest.approx(7.563), 2: pytest.approx(62.5)}


def test_unknown_section(tmp_path):
    with pytest.raises(ValueError, match="unknown sections"):
        benchmark.main(sections=["nope"], output=str(tmp_path))


@pytest.mark.slow
def test_training_scale_one_process():
    res = benchmark.training_scale(nprocs=(1,), max_epochs=2)
    assert res["rows"][0]["pairs_per_second_total"] > 0


def test_speed_section_and_tables(tiny):
    bundle, pairs, _ = tiny
    res = benchmark.speed(bundle, pairs, repeats=1, peer_names=())
    rows = {r["method"]: r for r in res["rows"]}
    expected = {"network", "register", "register_save", "network_compiled", "register_compiled"}
    if res["notes"]["compile"].startswith("not compiled"):  # no C compiler for inductor: the eager rows only
        expected -= {"network_compiled", "register_compiled"}
    assert set(rows) == expected and all(r["seconds_median"] > 0 for r in rows.values())
    cold = {"rows": [{"command": "import torch", "seconds_median": 2.0, "ratio_to_import_torch": 1.0}]}
    row = {"processes": 1, "pairs": 8, "wall_seconds": 20.0, "pairs_per_second": 0.4, "speedup_vs_first": 1.0}
    scale = {"rows": [{**row, "pairs_per_second_after_startup": None, "speedup_after_startup": None}]}
    text = benchmark.markdown_tables({"speed": res, "cold_start": cold, "predict_scale": scale})
    assert "| register_save |" in text and "| `import torch` | 2.00 | 1.00× |" in text
    assert "| 1 | (default) | 8 | 20.0 |" in text


@pytest.mark.slow
def test_predict_scale_two_processes(tiny):
    bundle, pairs, _ = tiny
    res = benchmark.predict_scale(bundle, pairs, copies=2)
    runs = [(r["processes"], r["options"]) for r in res["rows"]]
    assert runs == [(1, ""), (2, ""), (1, "--noprefetch"), (1, "--compile")]
    assert all(r["pairs_ok"] == 2 for r in res["rows"])
