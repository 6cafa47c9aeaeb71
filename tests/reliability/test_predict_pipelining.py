"""``monai-reg predict`` with reading and writing overlapped with registration (``--prefetch``, the default) gives the
files, tables and errors of the sequential path (``--noprefetch``); ``--compile`` gives the eager DDF (issue 22)."""

from __future__ import annotations

import csv
import errno
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import monai_reg_ext.api
from monai_reg_ext import cli
from monai_reg_ext.api.compiling import compile_network, is_compiled
from monai_reg_ext.api.pipelining import BackgroundWriter, Prefetcher
from monai_reg_ext.api.result import RegistrationResult
from monai_reg_ext.networks.onednn import OneDNNConv3d

from .conftest import blob, pairs_file, predict_argv, tiny_net, write


def _without_seconds(path: Path) -> list[list[str]]:
    """A CSV file's rows without the timing (column or row ``seconds``), which differs between runs."""
    rows = list(csv.reader(path.open()))
    if rows and "seconds" in rows[0]:
        col = rows[0].index("seconds")
        return [r[:col] + r[col + 1 :] for r in rows]
    return [r for r in rows if not r or r[0] != "seconds"]


def _same_outputs(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*"))
    for rel in files_a:
        if (a / rel).is_dir() or rel.name == "summary.csv":  # summary: mean/median of the timing too
            continue
        if rel.suffix == ".csv":
            assert _without_seconds(a / rel) == _without_seconds(b / rel), rel
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        cli.main(argv)
        code = 0
    except SystemExit as stop:
        code = int(stop.code)
    return code, capsys.readouterr().err


def test_overlapped_predict_writes_what_the_sequential_path_writes(files, tmp_path, monkeypatch, capsys):
    """5 pairs, the 3rd truncated: the same files, tables, failure and exit status with and without --prefetch; the
    other pairs were registered from the images read ahead."""
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(Path(files["moving"]).read_bytes()[:200])
    pairs = pairs_file(tmp_path, files, 5, broken={2: str(trunc)})
    given: list[type] = []
    original = monai_reg_ext.api.register

    def register(moving, fixed, **kwargs):
        given.append(type(moving))
        return original(moving, fixed, **kwargs)

    monkeypatch.setattr(monai_reg_ext.api, "register", register)
    seq, ovl = tmp_path / "seq", tmp_path / "ovl"
    code_seq, err_seq = _run(predict_argv(files, pairs, seq, "--noprefetch"), capsys)
    assert given == [str] * 5  # the sequential path reads the files in register
    given.clear()
    code_ovl, err_ovl = _run(predict_argv(files, pairs, ovl), capsys)
    assert code_seq == code_ovl == 2
    assert err_ovl.replace(str(ovl), str(seq)) == err_seq and "1 of 5 pairs failed (pair_002" in err_ovl
    status = list(csv.DictReader((ovl / "status.csv").open()))
    assert [r["status"] for r in status] == ["ok", "ok", "failed", "ok", "ok"]
    assert "trunc.nii.gz" in status[2]["error"] and "moving" in status[2]["error"]
    assert given.count(str) == 1 and len(given) == 5  # read ahead, but the broken pair again from its paths
    _same_outputs(seq, ovl)
    assert not (ovl / "pair_002").exists()


def test_a_write_error_stops_predict_as_the_sequential_path_does(files, tmp_path, monkeypatch, capsys):
    """pair_001's folder cannot be written: predict stops with the same one-line error; pair_000 is written and no
    later pair (pair_002 was registered meanwhile by the overlapped path, but not written)."""
    pairs = pairs_file(tmp_path, files, 4)
    save = RegistrationResult.save

    def failing_save(self, output_dir, **kwargs):
        if Path(output_dir).name == "pair_001":
            time.sleep(0.5)  # pair_002 registers meanwhile: it must not be written after this error
            raise PermissionError(errno.EACCES, "cannot write (test)", str(output_dir))
        return save(self, output_dir, **kwargs)

    monkeypatch.setattr(RegistrationResult, "save", failing_save)
    results = {}
    for mode in ("--noprefetch", "--prefetch"):
        out = tmp_path / mode.strip("-")
        code, err = _run(predict_argv(files, pairs, out, mode), capsys)
        results[mode] = (code, err.replace(str(out), "OUT"))
        assert sorted(p.name for p in out.iterdir()) == ["pair_000"]  # no tables: the run stopped
    assert results["--noprefetch"] == results["--prefetch"]
    code, err = results["--prefetch"]
    assert code == 2 and "cannot write (test)" in err and "pair_001" in err


def test_a_pair_that_fails_while_written_is_recorded_for_that_pair(files, tmp_path, monkeypatch, capsys):
    """A pair error raised in the writer thread (e.g. a sheared fixed grid) is that pair's, recorded as failed."""
    pairs = pairs_file(tmp_path, files, 3)
    save = RegistrationResult.save

    def failing_save(self, output_dir, **kwargs):
        if Path(output_dir).name == "pair_000":
            raise ValueError("fixed: a sheared grid (test)")
        return save(self, output_dir, **kwargs)

    monkeypatch.setattr(RegistrationResult, "save", failing_save)
    out = tmp_path / "out"
    code, err = _run(predict_argv(files, pairs, out), capsys)
    assert code == 2 and "1 of 3 pairs failed (pair_000: fixed: a sheared grid (test)" in err
    status = list(csv.DictReader((out / "status.csv").open()))
    assert [(r["pair"], r["status"]) for r in status] == [
        ("pair_000", "failed"),
        ("pair_001", "ok"),
        ("pair_002", "ok"),
    ]
    assert [r["pair"] for r in csv.DictReader((out / "metrics.csv").open())] == ["pair_001", "pair_002"]


def test_prefetcher_reads_one_ahead_and_skips_unwanted_entries():
    read: list[int] = []
    with Prefetcher(lambda x: read.append(x) or x * 10, [0, 1, 2, 3], wanted=[True, False, True, True]) as ahead:
        assert ahead.take(0).result() == 0
        assert ahead.take(1) is None
        assert ahead.take(2).result() == 20 and ahead.take(3).result() == 30
    assert sorted(read) == [0, 2, 3]
    with Prefetcher(lambda x: x, [0, 1], enabled=False) as off:
        assert off.take(0) is None
    with BackgroundWriter(enabled=False) as inline:
        future = inline.submit(lambda: 1 / 0)
        assert future.done() and isinstance(future.exception(), ZeroDivisionError)


def test_compile_falls_back_to_eager_with_a_warning(files, tmp_path, monkeypatch, capsys):
    def no_compiler(self, *args, **kwargs):
        raise RuntimeError("no C compiler found (test)\nsecond line")

    monkeypatch.setattr(torch.nn.Module, "compile", no_compiler)
    net = tiny_net().eval()
    seconds, why = compile_network(net, (8, 8, 8))
    assert seconds is None and why == "RuntimeError: no C compiler found (test)" and not is_compiled(net)
    assert any(type(m) is OneDNNConv3d for m in net.modules())  # restored as it was
    pairs = pairs_file(tmp_path, files, 1)
    code, err = _run(predict_argv(files, pairs, tmp_path / "out", "--compile"), capsys)
    assert code == 0 and (tmp_path / "out" / "pair_000" / "ddf.nii.gz").is_file()
    warning = [line for line in err.splitlines() if "--compile" in line]
    why = "RuntimeError: no C compiler found (test)"
    assert warning == [f"monai-reg: warning: --compile: torch.compile failed ({why}); running eagerly."]


@pytest.fixture
def fresh_dynamo():
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow  # about 25 s of compilation on one CPU thread
def test_compiled_predict_gives_the_eager_ddf_without_recompiling(files, tmp_path, monkeypatch, capsys, fresh_dynamo):
    """--compile on the tiny bundle: the DDF of eager predict within 1e-4 voxels; the pairs (of two image sizes, all
    resized to the bundle grid) reuse the one compiled graph."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    big = write(tmp_path / "fixed12.nii.gz", blob((12, 12, 12), center=(6, 6, 6)))
    entries = [{"moving": str(files["moving"]), "fixed": str(files["fixed"])}] * 2
    entries.append({"moving": str(files["moving"]), "fixed": str(big)})
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(entries))
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    assert _run(predict_argv(files, pairs, eager), capsys)[0] == 0
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    code, err = _run(predict_argv(files, pairs, compiled, "--compile"), capsys)
    assert code == 0 and "compiled the network in" in err, err
    assert inductor_config.freezing is False  # set for the compilation only
    for name in ("pair_000", "pair_001", "pair_002"):
        a, b = (np.asarray(nib.load(str(o / name / "ddf.nii.gz")).dataobj) for o in (eager, compiled))
        assert a.shape == b.shape and np.abs(a).max() > 1e-3  # a DDF that is not zero
        assert np.abs(a - b).max() < 1e-4  # mm on a 1 mm grid: voxels
