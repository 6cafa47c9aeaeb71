from __future__ import annotations

import json

import pytest

from monai_reg_ext.bundle import run_pairs


def test_run_pairs_selects_shards_and_writes_metrics(tmp_path):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"name": n} for n in ("a", "b", "c")]))
    seen = []

    def one(entry, data_dir, out_dir):
        seen.append((entry["name"], data_dir, out_dir))
        return {"value": len(seen)}

    summary = run_pairs(pairs, tmp_path / "out", one, pairs=["a", "c"])
    assert list(summary) == ["a", "c"] and seen[0][1] == tmp_path
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == summary
    summary = run_pairs(pairs, tmp_path / "out", one, shard=(1, 2))
    assert list(summary) == ["b"] and (tmp_path / "out" / "metrics_rank1.json").is_file()
    with pytest.raises(ValueError, match=r"unknown \['z'\]"):
        run_pairs(pairs, tmp_path / "out", one, pairs=["z"])
