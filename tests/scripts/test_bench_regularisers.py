"""scripts/bench_regularisers.py on tiny fields: it times both implementations and finds the same values/gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_regularisers  # noqa: E402


@pytest.mark.parametrize("size", [["9", "8"], ["7", "8", "6"]])
def test_bench_regularisers_rows(size, capsys):
    rows = bench_regularisers.main(["--size", *size, "--repeats", "1", "--warmup", "0"])
    assert [r["loss"].split()[0] for r in rows] == ["bending", "gradient"]
    for r in rows:
        assert r["monai_s"] > 0 and r["monai_reg_ext_s"] > 0
        assert r["value_rel_diff"] < 1e-5 and r["grad_max_rel_diff"] < 1e-5
    assert "| bending energy |" in capsys.readouterr().out
