"""Downloads, indexes, checkpoints and configs under attack (issue 20): archive bombs and false zip headers, malformed
index entries, pickles anywhere in a bundle, truncated or pickled ``--resume_from`` checkpoints, bundle configs that
run code. Each case is refused before anything is installed, as one error naming the file (or index entry) and the
problem; through the CLI: exit 2, one line.

``python -m tests.reliability.test_archives`` prints the table of ``docs/reliability.md`` (case, outcome, seconds).
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from monai_reg_ext import cli, hub
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.hub import BundleConfigWarning, UnsafeBundleError

ROOT = Path(__file__).resolve().parents[2]
NAME = "toy_bundle"
META = json.dumps({"version": "0.1.0", "changelog": {"0.1.0": "x"}}).encode()
MiB = 2**20


# ---- a zip writer that can lie ------------------------------------------------------------------------------------


@dataclass
class Member:
    """A zip member: ``data`` (deflated here) or ``raw`` (deflated already, with ``crc`` and ``size``); the
    ``declared_*`` fields make its headers lie."""

    name: str
    data: bytes = b""
    raw: bytes | None = None
    crc: int = 0
    size: int = 0
    declared_size: int | None = None
    declared_crc: int | None = None
    declared_compressed: int | None = None


def write_zip(path: Path, members: list[Member]) -> Path:
    """A deflated zip, local headers and central directory agreeing (both carry the ``declared_*`` values)."""
    out, central = bytearray(), bytearray()
    for m in members:
        if m.raw is None:
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            comp, crc, size = co.compress(m.data) + co.flush(), zlib.crc32(m.data), len(m.data)
        else:
            comp, crc, size = m.raw, m.crc, m.size
        usize = size if m.declared_size is None else m.declared_size
        dcrc = crc if m.declared_crc is None else m.declared_crc
        csize = len(comp) if m.declared_compressed is None else m.declared_compressed
        name, offset = m.name.encode(), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, dcrc, csize, usize, len(name), 0)
        out += name + comp
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 0x0314, 20, 0, 8, 0, 0x21, dcrc, csize, usize, len(name), 0, 0, 0, 0,
            0o100644 << 16, offset,
        )  # fmt: skip
        central += name
    n = len(members)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


@functools.lru_cache(maxsize=4)
def zeros_deflated(total: int, chunk: int = 4 * MiB) -> tuple[bytes, int]:
    """``total`` zero bytes as a raw deflate stream built from one fully flushed block, and their CRC-32 (a real,
    valid stream: 2 GiB give 2.1 MB)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(bytes(chunk)) + co.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(chunk)
    for _ in range(total // chunk):
        crc = zlib.crc32(zeros, crc)
    return block * (total // chunk) + b"\x03\x00", crc


def release(tmp: Path, extra: list[Member]) -> Path:
    """``tmp/rel/toy_bundle_v0.1.0.zip`` (metadata + ``extra``) and its index beside it; returns the index."""
    z = write_zip(tmp / "rel" / f"{NAME}_v0.1.0.zip", [Member(f"{NAME}/configs/metadata.json", META), *extra])
    index = hub.make_index([z], url_template=z.parent.as_uri() + "/{name}_v{version}.zip")
    (z.parent / "model_info.json").write_text(json.dumps(index))
    return z.parent / "model_info.json"


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Payload:
    """Unpickling it creates ``marker``: it must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---- the cases: each builds a release in tmp and says what download must raise --------------------------------------


@dataclass
class Case:
    row: str  # the case, as docs/reliability.md names it
    build: Callable[[Path], dict]  # tmp -> keyword arguments of hub.download (besides name / bundle_dir)
    error: type
    match: str
    env: dict | None = None


def _random(n: int) -> bytes:
    return os.urandom(n)


def _bomb(tmp: Path, total: int = 2 * 2**30) -> dict:
    raw, crc = zeros_deflated(total)
    return {"index": str(release(tmp, [Member(f"{NAME}/data/zeros.bin", raw=raw, crc=crc, size=total)]))}


def _many_small_zeros(tmp: Path) -> dict:
    raw, crc = zeros_deflated(MiB, chunk=MiB)
    members = [Member(f"{NAME}/data/z{i:03d}.bin", raw=raw, crc=crc, size=MiB) for i in range(300)]
    return {"index": str(release(tmp, members))}


def _index_with(tmp: Path, value) -> dict:
    idx = release(tmp, [])
    data = json.loads(idx.read_text())
    data[f"{NAME}_v0.1.0"] = value
    idx.write_text(json.dumps(data))
    return {"index": str(idx)}


def _index_other(tmp: Path, key: str, value) -> dict:
    idx = release(tmp, [])
    data = json.loads(idx.read_text())
    data[key] = value
    idx.write_text(json.dumps(data))
    return {"index": str(idx)}


def _entry_field(tmp: Path, field: str, value) -> dict:
    idx = release(tmp, [])
    data = json.loads(idx.read_text())
    data[f"{NAME}_v0.1.0"][field] = value
    idx.write_text(json.dumps(data))
    return {"index": str(idx)}


def _weights_at(rel: str, payload: bool = True):
    def build(tmp: Path) -> dict:
        obj = {"w": torch.ones(1), "obj": Payload(tmp / "PWNED")} if payload else {"w": torch.ones(1)}
        return {"index": str(release(tmp, [Member(f"{NAME}/{rel}", _torch_bytes(obj))]))}

    return build


def _plain_pickle(tmp: Path) -> dict:
    import pickle

    data = pickle.dumps(Payload(tmp / "PWNED"), protocol=4)
    return {"index": str(release(tmp, [Member(f"{NAME}/data/cache.pkl", data)]))}


DATA = f"{NAME}/data/a.bin"
CASES: dict[str, Case] = {
    # archives: false headers
    "header_size_smaller": Case(
        "zip member whose header declares fewer bytes (1000) than its data (1 MiB)",
        lambda t: {"index": str(release(t, [Member(DATA, _random(MiB), declared_size=1000)]))},
        UnsafeBundleError, r"_v0\.1\.0\.zip: member 'toy_bundle/data/a\.bin': its data does not match its header",
    ),
    "header_size_larger": Case(
        "zip member whose header declares more bytes (10 MiB) than its data (1 MiB)",
        lambda t: {"index": str(release(t, [Member(DATA, _random(MiB), declared_size=10 * MiB)]))},
        UnsafeBundleError, r"member 'toy_bundle/data/a\.bin' unpacks to 1048576 bytes, its header declares 10485760",
    ),
    "header_compressed_too_large": Case(
        "zip member whose compressed size exceeds the whole archive",
        lambda t: {"index": str(release(t, [Member(DATA, b"x" * 100, declared_compressed=10**9)]))},
        UnsafeBundleError, r"zip: member 'toy_bundle/data/a\.bin'.*more than the whole archive",
    ),
    "header_bad_crc": Case(
        "zip member with a wrong CRC-32",
        lambda t: {"index": str(release(t, [Member(DATA, b"hello" * 1000, declared_crc=1234)]))},
        UnsafeBundleError, r"member 'toy_bundle/data/a\.bin': its data does not match its header.*CRC",
    ),
    "not_a_zip": Case(
        "file that is not a zip (valid sha256 given)",
        lambda t: {"url": (t / "x.zip").as_uri(), "sha256": _write_sha(t / "x.zip", b"not a zip" * 100)},
        UnsafeBundleError, r"x\.zip: not a valid zip file",
    ),
    # archives: bombs
    "bomb_2gib": Case(
        "2 GiB of zeros in a 2.1 MB zip with a valid sha256 (one member)",
        _bomb, UnsafeBundleError,
        r"member 'toy_bundle/data/zeros\.bin' unpacks 2091522 bytes to 2147483648 \(1027:1\), over the 200:1 compr",
    ),
    "bomb_many_members": Case(
        "300 members of 1 MiB of zeros each (each under the 1 MiB per-member threshold; 1009:1 overall)",
        _many_small_zeros, UnsafeBundleError, r"the archive unpacks \d+ bytes to 3145728\d\d \(1009:1\), over the 200",
    ),
    "total_over_limit": Case(
        "2 MiB of zeros with MONAI_REG_MAX_UNPACKED_BYTES=1000000 (and the ratio limit raised)",
        lambda t: {"index": str(release(t, [Member(DATA, bytes(2 * MiB))]))},
        UnsafeBundleError, r"unpacks to 2097\d+ bytes, over the limit of 1000000 \(MONAI_REG_MAX_UNPACKED_BYTES\)",
        env={"MONAI_REG_MAX_UNPACKED_BYTES": "1000000", "MONAI_REG_MAX_COMPRESSION_RATIO": "100000"},
    ),
    "bad_limit": Case(
        "MONAI_REG_MAX_COMPRESSION_RATIO=abc",
        lambda t: {"index": str(release(t, []))},
        ValueError, r"\$MONAI_REG_MAX_COMPRESSION_RATIO='abc': expected a positive number",
        env={"MONAI_REG_MAX_COMPRESSION_RATIO": "abc"},
    ),
    # index entries
    "index_entry_int": Case(
        "index entry that is an int", lambda t: _index_with(t, 5),
        ValueError, r"entry 'toy_bundle_v0\.1\.0' must be an object with 'name'.*got int 5",
    ),
    "index_entry_list": Case(
        "index entry that is a list", lambda t: _index_with(t, ["toy_bundle", "0.1.0"]),
        ValueError, r"entry 'toy_bundle_v0\.1\.0' must be an object .*got list \['toy_bundle', '0\.1\.0'\]",
    ),
    "index_other_entry_null": Case(
        "another bundle's index entry is null", lambda t: _index_other(t, "other_v1.0.0", None),
        ValueError, r"entry 'other_v1\.0\.0' must be an object .*got NoneType None",
    ),
    "index_name_not_string": Case(
        "index entry whose name is a number", lambda t: _entry_field(t, "name", 7),
        ValueError, r"entry 'toy_bundle_v0\.1\.0': 'name' must be a non-empty string, got 7",
    ),
    "index_size_string": Case(
        "index entry whose size is a string", lambda t: _entry_field(t, "size", "big"),
        ValueError, r"entry 'toy_bundle_v0\.1\.0': 'size' must be a non-negative integer",
    ),
    "index_sha256_short": Case(
        "index entry whose sha256 is not 64 hex digits", lambda t: _entry_field(t, "sha256", "abc"),
        ValueError, r"entry 'toy_bundle_v0\.1\.0': 'sha256' must be 64 hex digits",
    ),
    "sha256_argument": Case(
        "--sha256 that is not 64 hex digits", lambda t: {"url": "file:///x.zip", "sha256": "12345"},
        ValueError, r"--sha256 must be 64 hex digits",
    ),
    # pickles anywhere
    "pickle_models_sub_pt": Case(
        "pickle payload at models/sub/x.pt", _weights_at("models/sub/x.pt"),
        UnsafeBundleError, r"zip: toy_bundle/models/sub/x\.pt: does not load with torch\.load\(weights_only=True\)",
    ),
    "pickle_models_pth": Case(
        "pickle payload at models/x.pth", _weights_at("models/x.pth"),
        UnsafeBundleError, r"toy_bundle/models/x\.pth: does not load with torch\.load\(weights_only=True\)",
    ),
    "pickle_ckpt_uppercase": Case(
        "pickle payload at data/deep/er/X.CKPT", _weights_at("data/deep/er/X.CKPT"),
        UnsafeBundleError, r"toy_bundle/data/deep/er/X\.CKPT: does not load",
    ),
    "pickle_pkl": Case(
        "plain pickle payload at data/cache.pkl", _plain_pickle,
        UnsafeBundleError, r"toy_bundle/data/cache\.pkl: does not load",
    ),
    "pickle_renamed": Case(
        "torch pickle payload renamed docs/notes.txt (found by content)", _weights_at("docs/notes.txt"),
        UnsafeBundleError, r"toy_bundle/docs/notes\.txt: does not load",
    ),
}  # fmt: skip


def _write_sha(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hub.sha256_file(path)


def _set_env(monkeypatch, case: Case) -> None:
    for k, v in (case.env or {}).items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize("key", list(CASES))
def test_download_refuses(key, tmp_path, monkeypatch):
    """API: the right exception naming the zip / member / index entry; nothing installed, no temporary folder left,
    no payload run."""
    case = CASES[key]
    _set_env(monkeypatch, case)
    kwargs = case.build(tmp_path)
    dest = tmp_path / "bundles"
    with pytest.raises(case.error, match=case.match):
        hub.download(NAME, bundle_dir=dest, **kwargs)
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("key", ["header_size_smaller", "index_entry_int", "index_entry_list", "pickle_models_pth"])
def test_cli_download_one_line(key, tmp_path, monkeypatch, capsys):
    case = CASES[key]
    kwargs = case.build(tmp_path)
    argv = ["download", NAME, "--bundle_dir", str(tmp_path / "b")]
    for k, v in kwargs.items():
        argv += [f"--{k}", str(v)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("monai-reg: error:") and "\n" not in err and "Traceback" not in err, err
    assert __import__("re").search(case.match, err), err


def test_bomb_is_refused_before_extracting(tmp_path):
    """The 2 GiB bomb: refused on its central directory, in well under a second once built, no byte unpacked."""
    kwargs = _bomb(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(UnsafeBundleError, match="compression ratio"):
        hub.download(NAME, bundle_dir=tmp_path / "b", **kwargs)
    assert time.perf_counter() - t0 < 5.0
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 5 * MiB


def test_writer_control_and_limits_allow_real_bundles(tmp_path, monkeypatch):
    """Controls: a clean zip from the same writer installs; a raised limit lets the 300 x 1 MiB archive through; the
    real bundle with the highest ratio (59:1, a model.pt of zeros) passes the default limits."""
    ok = {"w": torch.ones(3)}
    idx = release(tmp_path / "a", [Member(f"{NAME}/models/sub/ok.pth", _torch_bytes(ok)), Member(DATA, _random(MiB))])
    path = hub.download(NAME, index=str(idx), bundle_dir=tmp_path / "a" / "b")
    assert (path / "models" / "sub" / "ok.pth").is_file() and (path / "data" / "a.bin").stat().st_size == MiB
    kwargs = _many_small_zeros(tmp_path / "m")
    path = hub.download(NAME, bundle_dir=tmp_path / "m" / "b", max_compression_ratio=2000, **kwargs)
    assert len(list((path / "data").iterdir())) == 300
    z = hub.make_bundle_zip(ROOT / "bundles" / "classical_mr_prostate_nonrigid", tmp_path / "real")
    import zipfile

    with zipfile.ZipFile(z) as zf:
        assert hub.check_zip(zf, "classical_mr_prostate_nonrigid", archive_size=z.stat().st_size)
    assert hub.archive_limits() == (4 * 2**30, 200.0)
    monkeypatch.setenv("MONAI_REG_MAX_UNPACKED_BYTES", "1e9")
    assert hub.archive_limits(max_ratio=50) == (10**9, 50.0)


def test_extraction_counts_bytes_against_the_header(tmp_path, monkeypatch):
    """A member that yields more bytes than its header declares is stopped while writing (zipfile itself stops at
    the declared size; this guards the count) and the partly extracted folder is removed."""
    import zipfile

    z = write_zip(tmp_path / "t.zip", [Member(f"{NAME}/configs/metadata.json", META), Member(DATA, b"x" * 100)])
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *a, **k):
        if getattr(info, "filename", info) == DATA:
            return io.BytesIO(b"x" * 10_000)
        return real_open(self, info, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    with pytest.raises(UnsafeBundleError, match=r"t\.zip: member '[^']*a\.bin' unpacks to more than the 100 "):
        hub.safe_extract(z, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


# ---- checkpoints -------------------------------------------------------------------------------------------------


def _checkpoints(tmp: Path) -> dict[str, Path]:
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    good = tmp / "checkpoint_epoch=2.pt"
    torch.save({"network": net.state_dict(), "optimizer": opt.state_dict(), "trainer": {"epoch": 2}}, good)
    trunc = tmp / "truncated.pt"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    weights = tmp / "model.pt"
    torch.save(net.state_dict(), weights)
    pickled = tmp / "pickled.pt"
    torch.save({"network": net.state_dict(), "optimizer": {}, "trainer": Payload(tmp / "PWNED")}, pickled)
    return {"good": good, "truncated": trunc, "weights": weights, "pickled": pickled}


def test_check_checkpoint(tmp_path):
    ck = _checkpoints(tmp_path)
    assert hub.check_checkpoint(ck["good"], resume=True)["trainer"] == {"epoch": 2}
    trunc = r"--resume_from .*truncated\.pt: cannot load the checkpoint with torch\.load\(weights_only=True\) \(trunc"
    with pytest.raises(ValueError, match=trunc):
        hub.check_checkpoint(ck["truncated"], resume=True, what="--resume_from")
    with pytest.raises(ValueError, match=r"model\.pt: not a training checkpoint to resume from: no \['network'"):
        hub.check_checkpoint(ck["weights"], resume=True)
    assert hub.check_checkpoint(ck["weights"])  # as --ckpt_path (weights only): fine
    with pytest.raises(ValueError, match=r"pickled\.pt: cannot load .*weights_only"):
        hub.check_checkpoint(ck["pickled"], resume=True)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        hub.check_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(IsADirectoryError):
        hub.check_checkpoint(tmp_path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "command, option, kind, match",
    [
        ("train", "resume_from", "truncated", r"--resume_from .*truncated\.pt: cannot load the checkpoint"),
        ("train", "resume_from", "weights", r"--resume_from .*model\.pt: not a training checkpoint"),
        ("train", "resume_from", "pickled", r"--resume_from .*pickled\.pt: cannot load"),
        ("evaluate", "ckpt_path", "truncated", r"--ckpt_path .*truncated\.pt: cannot load the checkpoint"),
    ],
)
def test_cli_bad_checkpoint_one_line(command, option, kind, match, tmp_path, capsys):
    """``monai-reg train --resume_from`` / ``evaluate --ckpt_path``: one line, exit 2, before the config is parsed
    (nothing written to the output folder, no payload run)."""
    ck = _checkpoints(tmp_path)
    bundle = ROOT / "bundles" / "unpaired_mr_brain"
    argv = [command, "--bundle", str(bundle), f"--{option}", str(ck[kind]), "--output_dir", str(tmp_path / "runs")]
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert __import__("re").search(match, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "PWNED").exists()
    assert not [w for w in caught if "GHSA-873f" in str(w.message)]  # refused before any config was parsed


# ---- configs -----------------------------------------------------------------------------------------------------


def _code_bundle(tmp: Path, marker: Path) -> Path:
    """The reliability suite's tiny bundle, whose inference.json and train.json run ``$`` code creating ``marker``."""
    from tests.reliability.conftest import NET, tiny_net

    b = tmp / "code_bundle"
    (b / "configs").mkdir(parents=True)
    (b / "models").mkdir()
    expr = f"$__import__('pathlib').Path({str(marker)!r}).touch() or [8, 8, 8]"
    (b / "configs" / "inference.json").write_text(json.dumps({"spatial_size": expr, "network_def": NET}))
    (b / "configs" / "train.json").write_text(json.dumps({"x": expr}))
    (b / "configs" / "metadata.json").write_text(META.decode())
    torch.save(tiny_net().state_dict(), b / "models" / "model.pt")
    return b


def test_download_never_parses_a_config(tmp_path, monkeypatch):
    """A bundle whose configs run code downloads without any config being parsed: no warning, no marker."""
    from monai.bundle import ConfigParser

    marker = tmp_path / "RAN"
    src = _code_bundle(tmp_path / "src", marker)
    (src / "configs" / "metadata.json").write_text(
        json.dumps({"version": "0.1.0", "changelog": {"0.1.0": "x"}, "x": f"$open({str(marker)!r}, 'w')"})
    )
    z = hub.make_bundle_zip(src, tmp_path / "rel")
    idx = hub.make_index([z], url_template=z.parent.as_uri() + "/{name}_v{version}.zip")
    (z.parent / "model_info.json").write_text(json.dumps(idx))

    def forbidden(*a, **k):
        raise AssertionError("download parsed a bundle config")

    for attr in ("read_config", "parse", "get_parsed_content", "load_config_file", "load_config_files"):
        monkeypatch.setattr(ConfigParser, attr, forbidden)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = hub.download("code_bundle", index=str(z.parent / "model_info.json"), bundle_dir=tmp_path / "b")
    assert (path / "configs" / "inference.json").is_file()
    assert not marker.exists()
    assert not [w for w in caught if issubclass(w.category, BundleConfigWarning) or "GHSA" in str(w.message)]


def test_load_bundle_warns_once_per_config_before_parsing(tmp_path):
    """register / predict / evaluate --pairs parse configs/inference.json through load_bundle: one
    BundleConfigWarning per file, before any ``$`` expression runs."""
    marker = tmp_path / "RAN"
    b = _code_bundle(tmp_path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BundleConfigWarning)  # the warning comes first: nothing has run yet
        with pytest.raises(BundleConfigWarning, match=r"inference\.json: parsing this bundle config runs code"):
            load_bundle(b)
    assert not marker.exists()
    hub._WARNED_CONFIGS.clear()
    with pytest.warns(BundleConfigWarning) as record:
        load_bundle(b)
        load_bundle(b)  # the same file again: no second warning
    ours = [w for w in record if issubclass(w.category, BundleConfigWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    msg = str(ours[0].message)
    assert "1 '$' expression(s)" in msg and "1 '_target_' component(s)" in msg and "docs/security.md" in msg
    assert marker.exists()  # the warning informs; the trusted bundle's code then runs (docs/security.md)
    data_only = tmp_path / "data.json"
    data_only.write_text(json.dumps({"spatial_size": [8, 8, 8], "ref": "@spatial_size"}))
    assert hub.warn_bundle_config(data_only) is False  # no code: no warning


def test_cli_register_warns_once(tmp_path, capsys):
    """``monai-reg register`` with a bundle whose inference.json runs ``$`` code: exactly one warning."""
    from tests.reliability.conftest import blob, write

    b = _code_bundle(tmp_path, tmp_path / "RAN")
    moving, fixed = write(tmp_path / "m.nii.gz", blob(center=(4, 5, 5))), write(tmp_path / "f.nii.gz", blob())
    argv = ["register", "--bundle", str(b), "--moving", str(moving), "--fixed", str(fixed)]
    argv += ["--output", str(tmp_path / "out"), "--device", "cpu", "--figure", "False"]
    with pytest.warns(BundleConfigWarning) as record:
        cli.main(argv)
    ours = [w for w in record if issubclass(w.category, BundleConfigWarning)]
    assert len(ours) == 1 and "inference.json" in str(ours[0].message)
    assert (tmp_path / "out" / "ddf.nii.gz").is_file()


def test_cli_train_shows_monai_warning_once(tmp_path, capsys):
    """``monai-reg train`` parses through MONAI's runner, which warns itself: exactly one warning (ours is not added
    on top). The empty dataset folder then stops the run with one error line."""
    (tmp_path / "data").mkdir()
    argv = ["train", "--bundle", str(ROOT / "bundles" / "unpaired_mr_brain"), "--dataset_dir", str(tmp_path / "data")]
    argv += ["--output_dir", str(tmp_path / "runs"), "--max_epochs", "1", "--num_workers", "0"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
    assert exc.value.code == 2
    shown = [w for w in caught if "GHSA-873f" in str(w.message)]
    assert len(shown) == 1, [str(w.message)[:80] for w in shown]


# ---- the table of docs/reliability.md ----------------------------------------------------------------------------


def main() -> None:  # pragma: no cover (a report, run by hand)
    import tempfile

    print("| # | case | outcome (first line) | s |\n|---|---|---|---|")
    for i, case in enumerate(CASES.values(), 1):
        with tempfile.TemporaryDirectory() as tmp:
            old = {k: os.environ.get(k) for k in case.env or {}}
            os.environ.update(case.env or {})
            t0 = time.perf_counter()
            try:
                kwargs = case.build(Path(tmp))
                t0 = time.perf_counter()
                hub.download(NAME, bundle_dir=Path(tmp) / "b", **kwargs)
                outcome = "**installed**" + (" (payload ran)" if (Path(tmp) / "PWNED").exists() else "")
            except BaseException as err:  # noqa: BLE001 (a report of whatever happens)
                where = str(err).replace(tmp, "…").replace(Path(tmp).as_uri(), "file://…")
                outcome = f"`{type(err).__name__}: {where.splitlines()[0][:150] if where else ''}`"
            dt = time.perf_counter() - t0
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v
            shutil.rmtree(Path(tmp) / "b", ignore_errors=True)
        print(f"| {i} | {case.row} | {outcome} | {dt:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    main()
