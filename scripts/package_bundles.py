"""Package every bundle of ``bundles/`` as ``<name>_v<version>.zip``, build the ``monai-reg`` wheel, and write a
model-zoo style ``model_info.json`` that lists both with their sha256.

Usage::

    python scripts/package_bundles.py                       # zips + wheel + index into runs/release/
    python scripts/package_bundles.py --output dist --url_template \
        "https://github.com/ORG/REPO/releases/download/bundles/{name}_v{version}.zip"
    python scripts/package_bundles.py --nowheel             # bundles only
    python scripts/package_bundles.py --update_versions     # record versions + content hashes (bundles/versions.json)

Each zip has one top-level folder ``<name>/`` (what ``python -m monai.bundle download`` expects) and leaves out
``runs/``, ``eval/``, caches and exported models. Packaging refuses a bundle whose configs/models/scripts changed
while its version did not (the version gate, ``bundles/versions.json``). The wheel is built offline
(``pip wheel --no-deps --no-build-isolation --no-index``, setuptools from the environment) from a copy of
``pyproject.toml``, ``README.md`` and ``monai_reg_ext/``, with ``SOURCE_DATE_EPOCH`` fixed so that the same sources
give the same sha256. See ``docs/distribution.md``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from monai_reg_ext.hub import (
    DEFAULT_URL_TEMPLATE,
    check_versions,
    install_guard_problems,
    make_bundle_zip,
    make_index,
    make_wheel_entry,
    record_versions,
)

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from (relative to the project folder); caches and byte code are left out.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "monai_reg_ext")
#: 1980-01-01, the earliest time a zip stores: wheel timestamps do not depend on when the files were touched.
SOURCE_DATE_EPOCH = "315532800"


def _project_version(project: Path) -> str:
    """The version of ``pyproject.toml``, which must equal ``monai_reg_ext/_version.py``."""
    pyproject = re.search(r'^version\s*=\s*"([^"]+)"', (project / "pyproject.toml").read_text(), re.M)
    module = re.search(r'^__version__\s*=\s*"([^"]+)"', (project / "monai_reg_ext" / "_version.py").read_text(), re.M)
    if not pyproject or not module or pyproject.group(1) != module.group(1):
        raise ValueError(
            f"{project}: pyproject.toml version {pyproject and pyproject.group(1)!r} differs from "
            f"monai_reg_ext/_version.py {module and module.group(1)!r}; make them equal."
        )
    return pyproject.group(1)


def build_wheel(project: str | Path = ROOT, output: str | Path = ROOT / "runs" / "release") -> Path:
    """Build ``monai_reg-<version>-py3-none-any.whl`` into ``output`` without network access; return its path.

    The sources (:data:`WHEEL_SOURCES`) are copied to a temporary folder first, so the build leaves no ``build/`` or
    ``*.egg-info`` in the project.

    Raises:
        ValueError: the versions disagree, or pip failed (its last lines are in the message).
    """
    project, out = Path(project), Path(output)
    version = _project_version(project)
    if importlib.util.find_spec("setuptools") is None:
        raise ValueError(
            "building the wheel offline needs setuptools in this environment: pip install 'setuptools>=68' "
            "(or pass --nowheel)."
        )
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".*")
    with tempfile.TemporaryDirectory(prefix="monai-reg-wheel-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        src.mkdir()
        for name in WHEEL_SOURCES:
            if (project / name).is_dir():
                shutil.copytree(project / name, src / name, ignore=ignore)
            elif (project / name).is_file():
                shutil.copy2(project / name, src / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        env = {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)}
        res = subprocess.run([*cmd, ".", "-w", str(dist)], cwd=src, env=env, capture_output=True, text=True)
        wheels = sorted(dist.glob("*.whl"))
        if res.returncode != 0 or len(wheels) != 1:
            tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-5:])
            raise ValueError(f"building the wheel failed (pip exit {res.returncode}): {tail}")
        if f"-{version}-" not in wheels[0].name:
            raise ValueError(f"{wheels[0].name}: expected version {version}.")
        final = out / wheels[0].name
        shutil.copyfile(wheels[0], final.with_name(final.name + ".part"))
        os.replace(final.with_name(final.name + ".part"), final)
    return final


def _wheel_source(url_template: str, wheel_url: str | None, file: str) -> str:
    """The wheel's URL: ``wheel_url`` (``{file}`` is replaced), else the folder of ``url_template``."""
    if wheel_url:
        return wheel_url.replace("{file}", file)
    base = url_template.rsplit("/", 1)[0]
    if "{" in base:
        raise ValueError(f"--url_template {url_template!r} has fields in its folder part; pass --wheel_url.")
    return f"{base}/{file}"


def package(
    bundles: str = str(ROOT / "bundles"),
    output: str = str(ROOT / "runs" / "release"),
    url_template: str = DEFAULT_URL_TEMPLATE,
    names: str | list[str] | tuple[str, ...] | None = None,
    update_versions: bool = False,
    force: bool = False,
    wheel: bool = True,
    project: str = str(ROOT),
    wheel_url: str | None = None,
) -> dict[str, dict]:
    """Build the zips, the ``monai-reg`` wheel and ``model_info.json`` (or, with ``--update_versions``, only record
    versions).

    Args:
        bundles: folder holding the bundles (each with configs/metadata.json).
        output: folder receiving ``<name>_v<version>.zip`` and ``model_info.json``.
        url_template: download URL of a zip, with ``{name}`` and ``{version}``; default: a GitHub release
            ``bundles`` of the placeholder repository ``OWNER/REPO``.
        names: package only these bundles (comma-separated or a list).
        update_versions: write ``<bundles>/versions.json`` (version + content hash per bundle) and stop.
        force: with ``--update_versions``, record a changed bundle even when its version was not bumped.
        wheel: also build the package's wheel (``--nowheel`` to skip) and record it in the index.
        project: the project folder the wheel is built from (pyproject.toml, monai_reg_ext/).
        wheel_url: download URL of the wheel, ``{file}`` standing for its file name; default: beside the zips (the
            folder of ``url_template``).

    Returns:
        The index entries written (or the recorded versions with ``--update_versions``).
    """
    if "{name}" not in url_template or "{version}" not in url_template:
        raise ValueError(f"--url_template must contain {{name}} and {{version}}, got {url_template!r}.")
    if update_versions:
        recorded = record_versions(bundles, force=force)
        print(f"recorded {len(recorded)} bundle(s) in {Path(bundles) / 'versions.json'}")
        return recorded
    problems = check_versions(bundles)
    if problems:
        raise ValueError("version gate failed:\n  " + "\n  ".join(problems))
    wanted = [n for n in names.split(",")] if isinstance(names, str) else (list(names) if names else None)
    dirs = sorted(p for p in Path(bundles).iterdir() if (p / "configs" / "metadata.json").is_file())
    if wanted:
        missing = sorted(set(wanted) - {d.name for d in dirs})
        if missing:
            raise ValueError(f"no bundle named {missing} in {bundles}.")
        dirs = [d for d in dirs if d.name in wanted]
    for d in dirs:
        files = sorted({Path(p.split(": ", 1)[0]).name for p in install_guard_problems(d)})
        if files:
            print(
                f"warning: {d.name}: {', '.join(files)} lack the check that monai_reg_ext is installed "
                "(monai_reg_ext.hub.add_install_guard, docs/distribution.md)",
                file=sys.stderr,
            )
    out = Path(output)
    zips = [make_bundle_zip(d, out) for d in dirs]
    index = make_index(zips, url_template)
    if wheel:
        whl = build_wheel(project, out)
        index.update(make_wheel_entry(whl, _wheel_source(url_template, wheel_url, whl.name)))
    index_file = out / "model_info.json"
    old = json.loads(index_file.read_text()) if index_file.is_file() else {}
    tmp = index_file.with_name(index_file.name + ".part")
    tmp.write_text(json.dumps({**old, **index}, indent=4, sort_keys=True) + "\n")
    os.replace(tmp, index_file)
    for key, e in index.items():
        print(f"{e.get('file', key + '.zip')}  {e['size']} bytes  sha256 {e['sha256']}")
        if e.get("kind") == "wheel":
            print(f'  install: pip install "{e["requirement"]}"')
    print(f"wrote {len(zips)} zip(s){' and the wheel' if wheel else ''} and {index_file}")
    return index


def main() -> None:
    import fire

    try:
        fire.Fire(package, serialize=lambda _: None)  # the summary is printed already
    except (ValueError, FileNotFoundError) as err:
        print(f"package_bundles: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
