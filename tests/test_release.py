"""A release is installable (issue 19, item 6): ``scripts/package_bundles.py`` builds the ``monai-reg`` wheel next to
the bundle zips and records it in ``model_info.json`` with its sha256; ``monai-reg download`` reads a ``file://``
index (or ``$MONAI_REG_BUNDLE_INDEX``) and verifies the wheel; the wheel installs and runs a bundle config; and a
bundle config with the install check says how to install the package when ``monai_reg_ext`` cannot be imported,
instead of MONAI's ConfigExpression traceback."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from monai_reg_ext import cli, hub
from monai_reg_ext.hub import UnsafeBundleError
from tests.test_hub import NAME, _make_bundle, _script

WHEEL = "monai_reg-{version}-py3-none-any.whl"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None, reason="building the wheel offline needs setuptools"
)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A toy bundle and the package's wheel, packaged by scripts/package_bundles.py into a folder (built once)."""
    tmp = tmp_path_factory.mktemp("release")
    bundles = tmp / "src"
    bundles.mkdir()
    _make_bundle(bundles)
    hub.record_versions(bundles)
    out = tmp / "release"
    _script().package(bundles=str(bundles), output=str(out), url_template=out.as_uri() + "/{name}_v{version}.zip")
    return out


def _wheel(release: Path) -> Path:
    from monai_reg_ext import __version__

    return release / WHEEL.format(version=__version__)


def test_index_records_the_wheel_with_its_sha256(release):
    whl = _wheel(release)
    index = json.loads((release / "model_info.json").read_text())
    entry = index[whl.name]
    assert entry["kind"] == "wheel" and entry["name"] == "monai-reg" and entry["file"] == whl.name
    assert entry["sha256"] == hub.sha256_file(whl) and entry["size"] == whl.stat().st_size
    assert entry["source"] == whl.as_uri()
    assert entry["requirement"] == f"monai-reg @ {whl.as_uri()}#sha256={entry['sha256']}"  # what pip checks
    assert f"{NAME}_v0.1.0" in index  # beside the bundle zip
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
    assert "monai_reg_ext/cli.py" in names and "monai_reg_ext/hub.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "bundles/"))]


def test_the_wheel_is_not_listed_as_a_bundle(release, tmp_path):
    with pytest.raises(ValueError, match=r"has no bundle 'other'; it has \['toy_bundle'\]"):
        hub.download("other", index=str(release / "model_info.json"), bundle_dir=tmp_path)


def test_download_wheel_from_a_file_index_checks_sha256(release, tmp_path, capsys):
    whl = _wheel(release)
    index_uri = (release / "model_info.json").as_uri()
    cli.main(["download", "monai-reg", "--index", index_uri, "--bundle_dir", str(tmp_path / "dist")])
    got = tmp_path / "dist" / whl.name
    assert got.read_bytes() == whl.read_bytes()
    assert f"downloaded monai-reg to {got}" in capsys.readouterr().out
    # an index whose sha256 does not match the wheel: refused, nothing written
    index = json.loads((release / "model_info.json").read_text())
    index[whl.name]["sha256"] = "0" * 64
    bad = tmp_path / "bad" / "model_info.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(index))
    with pytest.raises(UnsafeBundleError, match="sha256 .* differs from the expected 0{64}"):
        hub.download_wheel(index=bad.as_uri(), dest_dir=tmp_path / "dist2")
    assert list((tmp_path / "dist2").iterdir()) == []
    # a tampered wheel of the same size fails against the genuine index
    data = bytearray(whl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / whl.name).write_bytes(bytes(data))
    genuine = json.loads((release / "model_info.json").read_text())
    genuine[whl.name]["source"] = (tampered / whl.name).as_uri()
    (tampered / "model_info.json").write_text(json.dumps(genuine))
    with pytest.raises(UnsafeBundleError, match="sha256"):
        hub.download_wheel(index=str(tampered / "model_info.json"), dest_dir=tmp_path / "dist3")
    assert list((tmp_path / "dist3").iterdir()) == []
    with pytest.raises(FileExistsError, match="--overwrite"):
        hub.download_wheel(index=index_uri, dest_dir=tmp_path / "dist")
    with pytest.raises(ValueError, match="no wheel of monai-reg version 9.9.9"):
        hub.download_wheel("9.9.9", index=index_uri, dest_dir=tmp_path / "dist4")


def test_wheel_entry_is_validated(release, tmp_path):
    whl = _wheel(release)
    index = json.loads((release / "model_info.json").read_text())
    for field, value, message in (
        ("file", "../evil.whl", "plain"),
        ("sha256", None, "needs 'sha256'"),
        ("kind", "tarball", "'kind' must be"),
    ):
        broken = json.loads(json.dumps(index))
        broken[whl.name][field] = value
        f = tmp_path / f"{field}.json"
        f.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=message):
            hub.download_wheel(index=str(f), dest_dir=tmp_path / "d")


def test_index_from_the_environment_and_no_placeholder(release, tmp_path, monkeypatch):
    monkeypatch.setenv(hub.INDEX_ENV, (release / "model_info.json").as_uri())
    path = hub.download(NAME, bundle_dir=tmp_path / "b")
    assert hub.read_version(path)[0] == "0.1.0"
    monkeypatch.delenv(hub.INDEX_ENV)
    assert "OWNER/REPO" in hub.DEFAULT_INDEX_URL  # until the project's repository is set, it is never fetched
    with pytest.raises(ValueError, match="no bundle index is configured: pass --index .* MONAI_REG_BUNDLE_INDEX"):
        hub.download(NAME, bundle_dir=tmp_path / "b2")


def test_released_wheel_installs_and_runs_a_bundle_config(release, tmp_path):
    """pip installs the downloaded wheel (offline, without dependencies: they are in this environment) into a
    folder; a bundle config with the install check then runs on that copy of the package."""
    whl = hub.download_wheel(index=str(release / "model_info.json"), dest_dir=tmp_path / "dist")
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(whl)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    config = _guarded_config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config)]
    res = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"package at {target}" in res.stdout


#: ``python hide.py CONFIG... -- ARGS`` where ``monai_reg_ext`` cannot be imported (as in an environment that has MONAI
#: but not monai-reg): parses each CONFIG's ``network_def`` (what ``ckpt_export`` / ``verify_net_in_out`` build) and
#: prints what it raised, then runs ``python -m monai.bundle ARGS``.
HIDE = """
import runpy, sys

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "monai_reg_ext" or name.startswith("monai_reg_ext."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
split = sys.argv.index("--")
from monai.bundle import ConfigParser
for f in sys.argv[1:split]:
    parser = ConfigParser()
    parser.read_config(f)
    try:
        parser.get_parsed_content("network_def")
    except SystemExit as e:
        print(f"{f}: SystemExit: {e.code}")
    except Exception as e:
        print(f"{f}: {type(e).__name__}: {str(e).splitlines()[0]}")
sys.stdout.flush()
sys.argv = ["monai.bundle", *sys.argv[split + 1:]]
runpy.run_module("monai.bundle", run_name="__main__")
"""


def _config(folder: Path) -> dict:
    """A bundle config as the shipped ones start: imports, bundle_root, network_def, a run expression."""
    return {
        "imports": ["$import monai_reg_ext", "$import monai_reg_ext.bundle"],
        "bundle_root": str(folder),
        "network_def": {"_target_": "monai_reg_ext.networks.RegistrationNet", "backbone": "local", "spatial_dims": 2},
        "run": ["$print('package at', monai_reg_ext.__file__)"],
    }


def _guarded_config(folder: Path) -> Path:
    f = folder / "inference.json"
    f.write_text(json.dumps(hub.add_install_guard(_config(folder)), indent=4))
    return f


def test_bundle_without_the_package_says_how_to_install_it(tmp_path):
    guarded = _guarded_config(tmp_path)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(_config(tmp_path)))
    hide = tmp_path / "hide.py"
    hide.write_text(HIDE)
    cmd = [sys.executable, str(hide), str(guarded), str(plain), "--", "run", "--config_file", str(guarded)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    # monai.bundle run: exit status 1, the hint as the last line, no traceback
    assert res.returncode == 1, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == hub.INSTALL_HINT and "Traceback" not in res.stderr
    assert "pip install monai_reg-<version>-py3-none-any.whl" in hub.INSTALL_HINT
    # network_def alone: the same message, before MONAI tries to locate the class
    lines = dict(line.split(": ", 1) for line in res.stdout.strip().splitlines() if line.startswith(str(tmp_path)))
    assert lines[str(guarded)] == f"SystemExit: {hub.INSTALL_HINT}"
    # without the check: MONAI's "Cannot locate class or function path: 'monai_reg_ext.networks.RegistrationNet'."
    assert "Cannot locate class or function path" in lines[str(plain)] and "pip install" not in lines[str(plain)]


def test_add_install_guard_and_its_check(tmp_path):
    base = _config(tmp_path)
    guarded = hub.add_install_guard({**base, "initialize": ["$monai.utils.set_determinism(seed=0)"]})
    assert list(guarded)[0] == hub.INSTALL_GUARD_ID and guarded[hub.INSTALL_GUARD_ID] == hub.INSTALL_GUARD
    assert guarded["initialize"] == ["$@requires_monai_reg", "$monai.utils.set_determinism(seed=0)"]
    assert guarded["network_def"]["_requires_"] == "@requires_monai_reg"
    assert hub.add_install_guard(guarded) == guarded  # applying it twice changes nothing
    overlay = hub.add_install_guard({"initialize": ["$import torch.distributed as dist"]}, base=False)
    assert overlay == {"initialize": ["$@requires_monai_reg", "$import torch.distributed as dist"]}
    bundle = tmp_path / "b"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text("{}")
    (bundle / "configs" / "inference.json").write_text(json.dumps(base))
    (bundle / "configs" / "multi_gpu_train.json").write_text(json.dumps({"initialize": ["$print(1)"]}))
    problems = hub.install_guard_problems(bundle)
    assert len(problems) == 4 and all("should be" in p for p in problems)
    (bundle / "configs" / "inference.json").write_text(json.dumps(hub.add_install_guard(base)))
    (bundle / "configs" / "multi_gpu_train.json").write_text(json.dumps(overlay))
    assert hub.install_guard_problems(bundle) == []
