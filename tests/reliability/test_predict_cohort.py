"""``monai-reg predict`` on a cohort (issue 22): restartable with --resume, and sharded across 2 processes by torchrun
(gloo on CPU) into one output folder with one set of tables written by rank 0."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import monai_reg_ext.api
from monai_reg_ext import cli

from .conftest import pairs_file, predict_argv

OUTPUTS = ["ddf.nii.gz", "metrics.csv", "warped_moving.nii.gz", "warped_moving_label.nii.gz"]


def _table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def _counting(monkeypatch) -> list[str]:
    seen: list[str] = []
    original = monai_reg_ext.api.register

    def counted(moving, fixed, **kwargs):
        seen.append(str(moving))
        return original(moving, fixed, **kwargs)

    monkeypatch.setattr(monai_reg_ext.api, "register", counted)
    return seen


def test_resume_registers_only_the_unfinished_pairs(files, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    pairs = pairs_file(tmp_path, files, 3)
    cli.main(predict_argv(files, pairs, out))
    assert sorted(p.name for p in (out / "pair_001").iterdir()) == OUTPUTS  # no PNG unless asked
    first = _table(out / "metrics.csv")
    (out / "pair_001" / "ddf.nii.gz").unlink()  # as if killed while writing pair_001
    (out / "pair_002").rename(tmp_path / "gone")
    with pytest.raises(FileExistsError, match="--resume"):
        cli.predict(files["bundle"], pairs, out, device="cpu")
    with pytest.raises(ValueError, match="choose one"):
        cli.predict(files["bundle"], pairs, out, device="cpu", resume=True, overwrite=True)
    seen = _counting(monkeypatch)
    cli.main(predict_argv(files, pairs, out, "--resume"))
    assert len(seen) == 2  # pair_000 kept, pair_001 (incomplete) and pair_002 (missing) registered
    assert [r["status"] for r in _table(out / "status.csv")] == ["ok", "ok", "ok"]
    again = _table(out / "metrics.csv")
    assert [r["pair"] for r in again] == ["pair_000", "pair_001", "pair_002"]
    for a, b in zip(first, again):  # the kept pair's metrics read back from its metrics.csv (6 digits)
        assert float(a["dice_label0_after"]) == pytest.approx(float(b["dice_label0_after"]), rel=1e-5)
    assert (out / "pair_001" / "ddf.nii.gz").is_file()
    cli.main(predict_argv(files, pairs, out, "--resume", "--figure"))  # the PNG was not written: every pair again
    assert len(seen) == 5 and (out / "pair_002" / "registration.png").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_share_the_pairs(files, tmp_path, capsys):
    """4 pairs over 2 gloo processes; pair 1 (rank 1's) is truncated, so its failure must reach rank 0's tables."""
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(Path(files["moving"]).read_bytes()[:200])
    pairs = pairs_file(tmp_path, files, 4, broken={1: str(trunc)})
    out, single = tmp_path / "out", tmp_path / "single"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "monai_reg_ext", *predict_argv(files, pairs, out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0 and "1 of 4 pairs failed (pair_001" in res.stderr, res.stderr[-3000:]
    assert res.stdout.count("wrote 3 of 4 pairs") == 1  # rank 0 alone writes and reports
    status = _table(out / "status.csv")
    assert [(r["pair"], r["status"]) for r in status] == [
        ("pair_000", "ok"), ("pair_001", "failed"), ("pair_002", "ok"), ("pair_003", "ok")
    ]  # fmt: skip
    assert "trunc.nii.gz" in status[1]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "pair_000", "pair_002", "pair_003", "status.csv",
                                                     "summary.csv"]  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main(predict_argv(files, pairs, single))  # one process, same pairs: the same rows
    sharded, alone = ([{k: v for k, v in r.items() if k != "seconds"} for r in _table(o / "metrics.csv")]
                      for o in (out, single))  # fmt: skip
    assert sharded == alone
