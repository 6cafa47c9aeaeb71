"""Bundle distribution: packaging, index, download with sha256 verification, safe extraction, version records."""

from __future__ import annotations

import importlib.util
import json
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from monai_reg_ext import cli, hub
from monai_reg_ext.hub import UnsafeBundleError

ROOT = Path(__file__).resolve().parents[1]
NAME = "toy_bundle"


class _Pickled:  # not loadable with weights_only=True
    pass


def _script():
    spec = importlib.util.spec_from_file_location("package_bundles", ROOT / "scripts" / "package_bundles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _make_bundle(parent: Path, name: str = NAME, version: str = "0.1.0", weights=None) -> Path:
    b = parent / name
    for sub in ("configs", "models", "scripts", "docs", "data", "runs", "scripts/__pycache__", "eval"):
        (b / sub).mkdir(parents=True, exist_ok=True)
    meta = {"version": version, "changelog": {version: "first"}, "monai_version": "1.6.1"}
    (b / "configs" / "metadata.json").write_text(json.dumps(meta))
    (b / "configs" / "inference.json").write_text('{"a": 1}')
    torch.save(weights if weights is not None else {"w": torch.ones(2), "meta": {"epoch": 3}}, b / "models/model.pt")
    (b / "scripts" / "tool.py").write_text("x = 1\n")
    (b / "scripts" / "__pycache__" / "tool.cpython-311.pyc").write_bytes(b"\0")
    (b / "docs" / "README.md").write_text("# toy\n")
    (b / "data" / "a.txt").write_text("demo data\n")
    (b / "runs" / "model.pt").write_bytes(b"junk")
    (b / "eval" / "out.csv").write_text("x\n")
    (b / "LICENSE").write_text("Apache-2.0\n")
    return b


def _index_for(zip_path: Path) -> Path:
    """Write model_info.json beside a zip named ``<name>_v<version>.zip``."""
    idx = hub.make_index([zip_path], url_template=zip_path.parent.as_uri() + "/{name}_v{version}.zip")
    f = zip_path.parent / "model_info.json"
    f.write_text(json.dumps(idx))
    return f


@pytest.fixture
def release(tmp_path):
    """A toy bundle packaged by scripts/package_bundles.py into ``tmp/release`` (zip + model_info.json)."""
    bundles = tmp_path / "src"
    bundles.mkdir()
    _make_bundle(bundles)
    hub.record_versions(bundles)
    out = tmp_path / "release"
    url_template = out.as_uri() + "/{name}_v{version}.zip"
    _script().package(bundles=str(bundles), output=str(out), url_template=url_template, wheel=False)
    return out


def test_package_layout_and_index(release, tmp_path):
    z = release / f"{NAME}_v0.1.0.zip"
    with zipfile.ZipFile(z) as zf:
        names = sorted(zf.namelist())
    assert all(n.startswith(f"{NAME}/") for n in names)
    rel = {n.split("/", 1)[1] for n in names}
    assert rel == {
        "LICENSE",
        "configs/inference.json",
        "configs/metadata.json",
        "data/a.txt",
        "docs/README.md",
        "models/model.pt",
        "scripts/tool.py",
    }  # no runs/, eval/, __pycache__
    index = json.loads((release / "model_info.json").read_text())
    entry = index[f"{NAME}_v0.1.0"]
    assert entry["name"] == NAME and entry["version"] == "0.1.0"
    assert entry["sha256"] == hub.sha256_file(z) and entry["size"] == z.stat().st_size
    assert entry["source"] == z.as_uri()
    # reproducible: packaging again gives the same bytes
    again = hub.make_bundle_zip(tmp_path / "src" / NAME, tmp_path / "again")
    assert hub.sha256_file(again) == entry["sha256"]


def test_package_url_template_must_have_fields(tmp_path):
    with pytest.raises(ValueError, match="url_template"):
        _script().package(bundles=str(tmp_path), output=str(tmp_path / "o"), url_template="https://x/y.zip")


def test_download_via_index(release, tmp_path):
    dest = tmp_path / "bundles"
    path = hub.download(NAME, index=str(release / "model_info.json"), bundle_dir=dest)
    assert path == dest / NAME
    assert (path / "models" / "model.pt").is_file() and (path / "LICENSE").is_file()
    assert (path / "scripts" / "tool.py").read_text() == "x = 1\n"
    assert [p.name for p in dest.iterdir()] == [NAME]  # no leftover temporary folder or zip


def test_download_url_uses_sibling_index_and_refuses_overwrite(release, tmp_path):
    url = (release / f"{NAME}_v0.1.0.zip").as_uri()
    dest = tmp_path / "bundles"
    hub.download(NAME, url=url, bundle_dir=dest)
    (dest / NAME / "marker").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        hub.download(NAME, url=url, bundle_dir=dest)
    assert (dest / NAME / "marker").is_file()
    hub.download(NAME, url=url, bundle_dir=dest, overwrite=True)
    assert not (dest / NAME / "marker").exists()


def test_download_picks_newest_version(tmp_path):
    out = tmp_path / "release"
    for v in ("0.2.0", "0.10.0", "0.9.1"):
        src = tmp_path / f"src{v}"
        src.mkdir()
        hub.make_bundle_zip(_make_bundle(src, version=v), out)
    idx = hub.make_index(sorted(out.glob("*.zip")), url_template=out.as_uri() + "/{name}_v{version}.zip")
    (out / "model_info.json").write_text(json.dumps(idx))
    path = hub.download(NAME, index=str(out / "model_info.json"), bundle_dir=tmp_path / "b")
    assert hub.read_version(path)[0] == "0.10.0"
    path = hub.download(NAME, version="0.2.0", index=str(out / "model_info.json"), bundle_dir=tmp_path / "b2")
    assert hub.read_version(path)[0] == "0.2.0"
    with pytest.raises(ValueError, match="no toy_bundle version 9.9"):
        hub.download(NAME, version="9.9", index=str(out / "model_info.json"), bundle_dir=tmp_path / "b3")
    with pytest.raises(ValueError, match="no bundle 'other'"):
        hub.download("other", index=str(out / "model_info.json"), bundle_dir=tmp_path / "b3")


def test_checksum_is_verified_before_extracting(release, tmp_path):
    z = release / f"{NAME}_v0.1.0.zip"
    index = json.loads((release / "model_info.json").read_text())
    index[f"{NAME}_v0.1.0"]["sha256"] = "0" * 64
    bad = tmp_path / "bad_index.json"
    bad.write_text(json.dumps(index))
    dest = tmp_path / "bundles"
    with pytest.raises(UnsafeBundleError, match="sha256"):
        hub.download(NAME, index=str(bad), bundle_dir=dest)
    assert list(dest.iterdir()) == []  # nothing extracted, temporary files removed
    # a tampered zip (same size) fails against the genuine index
    data = bytearray(z.read_bytes())
    data[len(data) // 2] ^= 0xFF
    z.write_bytes(bytes(data))
    with pytest.raises(UnsafeBundleError, match="sha256"):
        hub.download(NAME, index=str(release / "model_info.json"), bundle_dir=dest)
    with pytest.raises(UnsafeBundleError, match="sha256"):
        hub.download(NAME, url=z.as_uri(), sha256="ab" * 32, bundle_dir=dest)
    assert list(dest.iterdir()) == []


def test_missing_index_or_zip(tmp_path, release):
    z = release / f"{NAME}_v0.1.0.zip"
    (release / "model_info.json").unlink()
    with pytest.raises(FileNotFoundError, match="--index or --sha256"):
        hub.download(NAME, url=z.as_uri(), bundle_dir=tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="not found"):
        hub.download(NAME, url=(tmp_path / "nope.zip").as_uri(), sha256="0" * 64, bundle_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="unsupported URL"):
        hub.download(NAME, url="ftp://example.org/x.zip", sha256="0" * 64, bundle_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="unsupported URL"):
        hub.download(NAME, url="http://example.org/x.zip", sha256="0" * 64, bundle_dir=tmp_path / "b")


def _crafted(tmp_path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    z = tmp_path / "crafted" / f"{NAME}_v0.1.0.zip"
    z.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(z, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
                info.create_system = 3
            zf.writestr(info, data)
    return z


META = json.dumps({"version": "0.1.0", "changelog": {"0.1.0": "x"}}).encode()
CRAFTED = {  # case: (entries, expected message)
    "absolute": ([("/tmp/evil_abs.txt", b"x", None)], "absolute path"),
    "dotdot": ([(f"{NAME}/../../evil_dotdot.txt", b"x", None)], r"'\.\.'"),
    "symlink": ([(f"{NAME}/link", b"../../../etc/passwd", stat.S_IFLNK | 0o777)], "link or special file"),
    "backslash": ([(f"{NAME}\\..\\..\\evil_bs.txt", b"x", None)], "backslash"),
    "drive": ([("C:/evil_drive.txt", b"x", None)], "drive letter"),
    "two_tops": ([("other/x.txt", b"x", None)], "one top-level folder"),
    "no_folder": ([("README.md", b"x", None)], "outside a top-level folder"),
    "duplicate": ([(f"{NAME}/configs/metadata.json", META, None)], "appears twice"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_zips_are_refused(tmp_path, case):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate name
        entries, message = CRAFTED[case]
        z = _crafted(tmp_path, [(f"{NAME}/configs/metadata.json", META, None), *entries])
    index = _index_for(z)
    dest = tmp_path / "area" / "bundles"
    with pytest.raises(UnsafeBundleError, match=message):
        hub.download(NAME, index=str(index), bundle_dir=dest)
    assert not (dest / NAME).exists()
    written = {p.name for p in tmp_path.rglob("*")}
    assert not {"evil_abs.txt", "evil_dotdot.txt", "evil_bs.txt", "evil_drive.txt", "link"} & written


def test_zip_with_wrong_top_folder_is_refused(tmp_path):
    z = _crafted(tmp_path, [("something_else/configs/metadata.json", META, None)])
    with pytest.raises(UnsafeBundleError, match="expected 'toy_bundle'"):
        hub.download(NAME, index=str(_index_for(z)), bundle_dir=tmp_path / "b")


def test_pickled_weights_are_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    z = hub.make_bundle_zip(_make_bundle(src, weights={"w": torch.ones(1), "obj": _Pickled()}), tmp_path / "rel")
    _index_for(z)
    with pytest.raises(UnsafeBundleError, match="weights_only"):
        hub.download(NAME, url=z.as_uri(), bundle_dir=tmp_path / "b")
    assert not (tmp_path / "b" / NAME).exists()


def test_check_weights_accepts_plain_metadata(tmp_path):
    f = tmp_path / "m.pt"
    torch.save({"state": {"a": torch.zeros(1)}, "epoch": 2, "note": "x", "sizes": [1, 2.5, None, True]}, f)
    assert hub.check_weights(f)["epoch"] == 2
    torch.save(torch.zeros(2), f)
    with pytest.raises(UnsafeBundleError, match="expected a dict"):
        hub.check_weights(f)


def test_version_gate(tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    b = _make_bundle(bundles)
    assert hub.check_versions(bundles) == [
        f"{NAME}: not recorded in {bundles / 'versions.json'}; run "
        "`python scripts/package_bundles.py --update_versions`."
    ]
    hub.record_versions(bundles)
    assert hub.check_versions(bundles) == []
    (b / "runs" / "new.pt").write_bytes(b"run outputs do not count")
    (b / "data" / "a.txt").write_text("nor do data edits")
    assert hub.check_versions(bundles) == []
    (b / "configs" / "inference.json").write_text('{"a": 2}')
    (problem,) = hub.check_versions(bundles)
    assert "bump the version" in problem and "changelog" in problem and "--update_versions" in problem
    with pytest.raises(ValueError, match="bump the version"):
        hub.record_versions(bundles)
    with pytest.raises(ValueError, match="version gate"):  # packaging refuses too
        _script().package(bundles=str(bundles), output=str(tmp_path / "o"))
    meta = json.loads((b / "configs" / "metadata.json").read_text())
    meta["version"] = "0.2.0"
    (b / "configs" / "metadata.json").write_text(json.dumps(meta))
    (problem,) = hub.check_versions(bundles)
    assert "changelog" in problem
    meta["changelog"]["0.2.0"] = "changed a"
    (b / "configs" / "metadata.json").write_text(json.dumps(meta))
    assert "not recorded yet" in hub.check_versions(bundles)[0]
    hub.record_versions(bundles)
    assert hub.check_versions(bundles) == []


def test_cli_download(release, tmp_path, capsys):
    url = (release / f"{NAME}_v0.1.0.zip").as_uri()
    dest = tmp_path / "b"
    cli.main(["download", NAME, "--url", url, "--bundle_dir", str(dest)])
    assert (dest / NAME / "configs" / "metadata.json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(["download", NAME, "--url", url, "--bundle_dir", str(dest)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("monai-reg: error:") and "--overwrite" in err and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["download", NAME, "--index", str(release / "model_info.json"), "--version", "7.0.0"])
    assert exc.value.code == 2


def test_monai_bundle_download_accepts_the_zip(release, tmp_path):
    from monai.bundle import download

    dest = tmp_path / "monai_bundles"
    download(name=NAME, url=(release / f"{NAME}_v0.1.0.zip").as_uri(), bundle_dir=str(dest), progress=False)
    assert hub.read_version(dest / NAME)[0] == "0.1.0"
    assert (dest / NAME / "models" / "model.pt").is_file()
