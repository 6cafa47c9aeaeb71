"""One error policy for every command (issue 20): a user error (input, output folder, permissions, disk, device,
checkpoint) is one line ``monai-reg: error: ...`` naming the file and the problem, exit 2; ``--debug`` shows the
traceback. ``predict`` checks the pairs file before writing, keeps going past a pair that fails and writes a
per-pair ``status.csv``; ``warp`` refuses outputs without a known suffix and never leaves a temporary file."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_reg_ext import cli
from monai_reg_ext.api.result import write_metric_tables
from monai_reg_ext.io import save_ddf
from tests.reliability.conftest import SHAPE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_logging_errors(monkeypatch):
    """A log handler left by an earlier test on a closed stream prints "--- Logging error ---" with a traceback on
    stderr: not the command's traceback, so silenced here (``logging.raiseExceptions``)."""
    import logging

    monkeypatch.setattr(logging, "raiseExceptions", False)


def _main(argv, capsys) -> tuple[int, str]:
    """``cli.main(argv)``: exit status and stderr (0 when it returns)."""
    capsys.readouterr()
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _register(files, out, *extra):
    return ["register", "--bundle", files["bundle"], "--moving", files["moving"], "--fixed", files["fixed"],
            "--output", out, "--device", "cpu", "--figure", "False", "--quiet", *extra]  # fmt: skip


def _ddf(tmp_path: Path, name="ddf.nii.gz", scale=0.5) -> Path:
    torch.manual_seed(0)
    path = tmp_path / name
    save_ddf(path, scale * torch.randn(3, *SHAPE), np.eye(4))
    return path


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith((".tmp-", ".monai-reg-"))]


# --- devices ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu0", "cuda:7" if torch.cuda.is_available() else "cuda"])
def test_unknown_device_every_command(device, files, tmp_path, capsys):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"moving": str(files["moving"]), "fixed": str(files["fixed"])}]))
    commands = {
        "register": [
            "register",
            "--bundle",
            files["bundle"],
            "--moving",
            files["moving"],
            "--fixed",
            files["fixed"],
            "--output",
            tmp_path / "r",
            "--device",
            device,
        ],  # fmt: skip
        "predict": [
            "predict",
            "--bundle",
            files["bundle"],
            "--pairs",
            pairs,
            "--output",
            tmp_path / "p",
            "--device",
            device,
        ],  # fmt: skip
        "evaluate": [
            "evaluate",
            "--bundle",
            files["bundle"],
            "--pairs",
            pairs,
            "--output",
            tmp_path / "e",
            "--device",
            device,
        ],  # fmt: skip
        "train": [
            "train",
            "--bundle",
            ROOT / "bundles" / "unpaired_mr_brain",
            "--device",
            device,
            "--output_dir",
            tmp_path / "t",
            "--dataset_dir",
            tmp_path / "nowhere",
        ],  # fmt: skip
    }
    for name, argv in commands.items():
        line = _one_line(*_main(argv, capsys))
        assert f"'{device}'" in line and "device" in line, (name, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.json"]


# --- output folders: permissions, no space, a file in the way --------------------------------------------------


def _fail_replace(monkeypatch, code: int) -> None:
    real = os.replace

    def replace(src, dst):
        if Path(str(dst)).name.startswith(".") or Path(str(src)).name.startswith(".tmp-") or ".monai-reg-" in str(src):
            raise OSError(code, os.strerror(code), str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC, errno.EROFS], ids=["EACCES", "ENOSPC", "EROFS"])
def test_output_write_errors_are_one_line(code, files, tmp_path, capsys, monkeypatch):
    ddf = _ddf(tmp_path)
    _fail_replace(monkeypatch, code)
    line = _one_line(*_main(_register(files, tmp_path / "out"), capsys))
    assert os.strerror(code) in line and str(tmp_path / "out") in line and ".monai-reg-" not in line, line
    line = _one_line(*_main(["warp", "--image", files["moving"], "--ddf", ddf, "--output", tmp_path / "w.nii.gz"],
                            capsys))  # fmt: skip
    assert os.strerror(code) in line and str(tmp_path / "w.nii.gz") in line and ".tmp-" not in line, line
    assert not _temporaries(tmp_path) and not (tmp_path / "w.nii.gz").exists()
    assert not list((tmp_path / "out").glob("*.nii.gz"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(files, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = _one_line(*_main(_register(files, folder / "out"), capsys))
    finally:
        folder.chmod(0o700)
    assert "Permission denied" in line and str(folder / "out") in line


def test_output_under_a_file(files, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    ddf = _ddf(tmp_path)
    for argv in (
        _register(files, tmp_path / "afile" / "out"),
        ["warp", "--image", files["moving"], "--ddf", ddf, "--output", tmp_path / "afile" / "w.nii.gz"],
    ):
        line = _one_line(*_main(argv, capsys))
        assert f"'{tmp_path / 'afile'}' is a file, not a folder" in line, line
    assert (tmp_path / "afile").read_text() == "x"


# --- --debug -----------------------------------------------------------------------------------------------------


def test_debug_shows_the_traceback(files, tmp_path):
    args = [sys.executable, "-m", "monai_reg_ext", "warp", "--image", str(tmp_path / "missing.nii.gz"), "--ddf",
            str(_ddf(tmp_path)), "--output", str(tmp_path / "w.nii.gz")]  # fmt: skip
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=120)
    loud = subprocess.run([*args, "--debug"], capture_output=True, text=True, timeout=120)
    assert "missing.nii.gz" in _one_line(quiet.returncode, quiet.stderr)
    assert loud.returncode == 2 and "Traceback (most recent call last)" in loud.stderr, loud.stderr
    assert "monai-reg: error:" in loud.stderr.splitlines()[-1]


def test_debug_flag_is_not_passed_to_the_command(files, tmp_path, capsys):
    code, err = _main(["warp", "--debug", "--image", files["moving"], "--ddf", _ddf(tmp_path), "--output",
                       tmp_path / "w.nii.gz"], capsys)  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "w.nii.gz").is_file()


# --- warp ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["warped", "warped.", "warped.png", "warped.nii.bak"])
def test_warp_output_without_a_known_suffix(name, files, tmp_path, capsys):
    out = tmp_path / "out" / name
    line = _one_line(*_main(["warp", "--image", files["moving"], "--ddf", _ddf(tmp_path), "--output", out], capsys))
    assert ".nii, .nii.gz, .mha, .nrrd" in line and str(out) in line
    assert not (tmp_path / "out").exists(), list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_warp_truncated_ddf(suffix, files, tmp_path, capsys):
    ddf = _ddf(tmp_path, f"ddf{suffix}")
    data = ddf.read_bytes()
    bad = tmp_path / f"trunc{suffix}"
    bad.write_bytes(data[: len(data) * 2 // 3])
    line = _one_line(*_main(["warp", "--image", files["moving"], "--ddf", bad, "--output", tmp_path / "w.nii.gz"],
                            capsys))  # fmt: skip
    assert str(bad) in line and ("truncated" in line or "cannot read" in line), line
    assert not (tmp_path / "w.nii.gz").exists() and not _temporaries(tmp_path)


# --- predict ------------------------------------------------------------------------------------------------------


def _pairs(tmp_path: Path, files, second: dict) -> Path:
    path = tmp_path / "pairs.json"
    first = {"moving": str(files["moving"]), "fixed": str(files["fixed"])}
    path.write_text(json.dumps([first, {**first, **second}, first]))
    return path


def _predict(files, pairs, out, *extra):
    return ["predict", "--bundle", files["bundle"], "--pairs", pairs, "--output", out, "--device", "cpu", *extra]


def test_predict_checks_every_pair_before_writing(files, tmp_path, capsys):
    pairs = _pairs(tmp_path, files, {"moving": str(tmp_path / "missing.nii.gz")})
    line = _one_line(*_main(_predict(files, pairs, tmp_path / "out"), capsys))
    assert "entry 1" in line and "missing.nii.gz" in line
    assert not (tmp_path / "out").exists()
    pairs.write_text(json.dumps([{"moving": str(files["moving"])}]))
    assert "entry 0" in _one_line(*_main(_predict(files, pairs, tmp_path / "out"), capsys))
    assert not (tmp_path / "out").exists()


def test_predict_failing_pair_status_table(files, tmp_path, capsys):
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(Path(files["moving"]).read_bytes()[:200])
    pairs = _pairs(tmp_path, files, {"moving": str(trunc)})
    out = tmp_path / "out"
    line = _one_line(*_main(_predict(files, pairs, out), capsys))
    assert "1 of 3 pairs failed" in line and "pair_001" in line and "trunc.nii.gz" in line and "status.csv" in line
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "pair_000", "pair_002", "status.csv",
                                                     "summary.csv"]  # fmt: skip
    for name in ("pair_000", "pair_002"):
        assert (out / name / "ddf.nii.gz").is_file() and (out / name / "warped_moving.nii.gz").is_file()
    status = list(csv.DictReader((out / "status.csv").open()))
    assert [r["status"] for r in status] == ["ok", "failed", "ok"]
    assert "trunc.nii.gz" in status[1]["error"] and status[0]["error"] == ""
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["pair"] for r in metrics] == ["pair_000", "pair_002"]
    summary = {r["metric"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert summary["folding_fraction"]["n"] == "2"
    assert not _temporaries(out)
    # fixed, then run again with --overwrite: every pair ok, status.csv all ok, exit 0
    pairs = _pairs(tmp_path, files, {})
    code, err = _main(_predict(files, pairs, out, "--overwrite"), capsys)
    assert code == 0, err
    assert [r["status"] for r in csv.DictReader((out / "status.csv").open())] == ["ok", "ok", "ok"]
    assert (out / "pair_001" / "ddf.nii.gz").is_file()


def test_predict_overwrite_removes_the_stale_outputs_of_a_failing_pair(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(_predict(files, _pairs(tmp_path, files, {}), out), capsys)[0] == 0
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(Path(files["moving"]).read_bytes()[:200])
    _one_line(*_main(_predict(files, _pairs(tmp_path, files, {"moving": str(trunc)}), out, "--overwrite"), capsys))
    assert not (out / "pair_001").exists(), "the previous run's pair_001 would sit beside this run's status"


def test_predict_refuses_existing_pair_folders(files, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "pair_001").mkdir(parents=True)
    (out / "pair_001" / "ddf.nii.gz").write_bytes(b"earlier run")
    line = _one_line(*_main(_predict(files, _pairs(tmp_path, files, {}), out), capsys))
    assert "pair_001" in line and "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == ["pair_001"]


def test_metric_tables_are_written_atomically(tmp_path):
    rows = [{"pair": "pair_000", "dice": 0.5}, {"pair": "pair_001", "dice": 0.7}]
    write_metric_tables(tmp_path, rows)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert "dice,0.6,0.6,0.1,2" in before["summary.csv"].decode()

    class Unwritable:
        def __str__(self):
            raise RuntimeError("simulated crash while writing")

    with pytest.raises(RuntimeError, match="simulated crash"):
        write_metric_tables(tmp_path, [{"pair": "pair_000", "dice": 0.1}, {"pair": Unwritable(), "dice": 0.2}])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
