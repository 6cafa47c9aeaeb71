"""Package every bundle of ``bundles/`` as ``<name>_v<version>.zip`` plus a model-zoo style ``model_info.json``.

Usage::

    python scripts/package_bundles.py                       # zips + index into runs/release/
    python scripts/package_bundles.py --output dist --url_template \
        "https://github.com/ORG/REPO/releases/download/bundles/{name}_v{version}.zip"
    python scripts/package_bundles.py --update_versions     # record versions + content hashes (bundles/versions.json)

Each zip has one top-level folder ``<name>/`` (what ``python -m monai.bundle download`` expects) and leaves out
``runs/``, ``eval/``, caches and exported models. Packaging refuses a bundle whose configs/models/scripts changed
while its version did not (the version gate, ``bundles/versions.json``). See ``docs/distribution.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from monai_reg_ext.hub import (
    DEFAULT_URL_TEMPLATE,
    check_versions,
    make_bundle_zip,
    make_index,
    record_versions,
)

ROOT = Path(__file__).resolve().parents[1]


def package(
    bundles: str = str(ROOT / "bundles"),
    output: str = str(ROOT / "runs" / "release"),
    url_template: str = DEFAULT_URL_TEMPLATE,
    names: str | list[str] | tuple[str, ...] | None = None,
    update_versions: bool = False,
    force: bool = False,
) -> dict[str, dict]:
    """Build the zips and ``model_info.json`` (or, with ``--update_versions``, only record versions).

    Args:
        bundles: folder holding the bundles (each with configs/metadata.json).
        output: folder receiving ``<name>_v<version>.zip`` and ``model_info.json``.
        url_template: download URL of a zip, with ``{name}`` and ``{version}``; default: a GitHub release
            ``bundles`` of the placeholder repository ``OWNER/REPO``.
        names: package only these bundles (comma-separated or a list).
        update_versions: write ``<bundles>/versions.json`` (version + content hash per bundle) and stop.
        force: with ``--update_versions``, record a changed bundle even when its version was not bumped.

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
    out = Path(output)
    zips = [make_bundle_zip(d, out) for d in dirs]
    index = make_index(zips, url_template)
    index_file = out / "model_info.json"
    old = json.loads(index_file.read_text()) if index_file.is_file() else {}
    index_file.write_text(json.dumps({**old, **index}, indent=4, sort_keys=True) + "\n")
    for key, e in index.items():
        print(f"{key}.zip  {e['size']} bytes  sha256 {e['sha256']}")
    print(f"wrote {len(zips)} zip(s) and {index_file}")
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
