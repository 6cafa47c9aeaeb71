"""Bundle distribution: packaging, an index of releases, download with sha256 verification and safe extraction.

A released bundle is a zip ``<name>_v<version>.zip`` with one top-level folder ``<name>/`` (the layout that
``python -m monai.bundle download`` expects), listed in a model-zoo style index ``model_info.json``::

    {"<name>_v<version>": {"name": ..., "version": ..., "sha256": ..., "size": ..., "source": "<url of the zip>"}}

Downloading verifies the zip's size and sha256 against the index **before** anything is extracted, refuses archives
with absolute paths, ``..`` components, links, or more than one top-level folder, refuses to replace an existing
bundle folder unless asked to, and checks that ``models/*.pt`` load with ``torch.load(weights_only=True)``.

A bundle's configs are code (``$`` expressions are evaluated): run bundles from trusted sources only
(``docs/security.md``). Release workflow: ``docs/distribution.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "DEFAULT_URL_TEMPLATE",
    "DEFAULT_INDEX_URL",
    "UnsafeBundleError",
    "sha256_file",
    "bundle_files",
    "content_sha256",
    "read_version",
    "make_bundle_zip",
    "make_index",
    "check_versions",
    "record_versions",
    "check_weights",
    "check_zip",
    "safe_extract",
    "download",
]

#: Where released zips live: a GitHub release (tag ``bundles``) of the project. ``OWNER/REPO`` is a placeholder to
#: replace with the real repository (``scripts/package_bundles.py --url_template ...``). Fields: ``{name}``,
#: ``{version}``. The same layout lets ``python -m monai.bundle download --source github --repo OWNER/REPO/bundles``
#: find the zips.
DEFAULT_URL_TEMPLATE = "https://github.com/OWNER/REPO/releases/download/bundles/{name}_v{version}.zip"
#: The index attached to the same release; override with ``MONAI_REG_BUNDLE_INDEX`` or ``index=``.
DEFAULT_INDEX_URL = "https://github.com/OWNER/REPO/releases/download/bundles/model_info.json"

#: Folders and files never packaged: run outputs, caches, evaluation outputs, hidden files.
EXCLUDED_DIRS = frozenset({"runs", "eval", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".ts", ".onnx", ".zip")
#: What the content hash (and so the version gate) covers.
VERSIONED_DIRS = ("configs", "models", "scripts")
#: Limits against archive bombs.
MAX_FILES = 10_000
MAX_UNPACKED_BYTES = 8 * 2**30

_CHUNK = 2**20


class UnsafeBundleError(ValueError):
    """An archive or a download failed a check (checksum, path safety, layout, weights)."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(bundle: str | os.PathLike) -> list[Path]:
    """The files of a bundle folder that are released, as sorted paths relative to ``bundle``.

    Excludes :data:`EXCLUDED_DIRS` (``runs/``, ``eval/``, caches), hidden files, byte code, exported models
    (``.ts``/``.onnx``) and zips. Links are refused (:class:`UnsafeBundleError`).
    """
    root = Path(bundle)
    if not (root / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(f"{root}: not a bundle (configs/metadata.json is missing).")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith("."))
        for fn in filenames:
            if fn.startswith(".") or fn.endswith(EXCLUDED_SUFFIXES):
                continue
            p = Path(dirpath) / fn
            if p.is_symlink():
                raise UnsafeBundleError(f"{p}: links are not packaged; replace it with the file.")
            out.append(p.relative_to(root))
    return sorted(out, key=lambda p: p.as_posix())


def content_sha256(bundle: str | os.PathLike, dirs: Iterable[str] = VERSIONED_DIRS) -> str:
    """sha256 over the released files under ``dirs`` (relative path and content), used by the version gate."""
    root = Path(bundle)
    h = hashlib.sha256()
    for rel in bundle_files(root):
        if rel.parts[0] in tuple(dirs):
            h.update(f"{rel.as_posix()}\0{sha256_file(root / rel)}\n".encode())
    return h.hexdigest()


def read_version(bundle: str | os.PathLike) -> tuple[str, dict]:
    """The ``version`` of ``configs/metadata.json`` and the metadata itself.

    Raises:
        ValueError: no version, or no ``changelog`` entry for it.
    """
    meta_file = Path(bundle) / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    version = meta.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError(f"{meta_file}: 'version' must be a non-empty string, got {version!r}.")
    if not str(meta.get("changelog", {}).get(version, "")).strip():
        raise ValueError(f"{meta_file}: 'changelog' has no entry for version {version!r}; add one.")
    return version, meta


def make_bundle_zip(bundle: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Write ``<output_dir>/<name>_v<version>.zip`` with one top-level folder ``<name>/``.

    The zip is reproducible (sorted entries, fixed timestamps and permissions), so the same files give the same
    sha256.

    Returns:
        The zip's path.
    """
    root = Path(bundle)
    version, _ = read_version(root)
    name = root.resolve().name
    out = Path(output_dir) / f"{name}_v{version}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel in bundle_files(root):
            info = zipfile.ZipInfo(f"{name}/{rel.as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3  # unix, so the permission bits above are read as such
            with open(root / rel, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    os.replace(tmp, out)
    return out


def make_index(zips: Iterable[str | os.PathLike], url_template: str = DEFAULT_URL_TEMPLATE) -> dict[str, dict]:
    """The ``model_info.json`` entries of bundle zips made by :func:`make_bundle_zip`."""
    index = {}
    for z in zips:
        z = Path(z)
        stem = z.name[: -len(".zip")]
        name, sep, version = stem.rpartition("_v")
        if not sep or not name:
            raise ValueError(f"{z}: expected a file name '<name>_v<version>.zip'.")
        index[stem] = {
            "name": name,
            "version": version,
            "sha256": sha256_file(z),
            "size": z.stat().st_size,
            "source": url_template.format(name=name, version=version),
        }
    return index


def _bundle_dirs(bundles_dir: str | os.PathLike) -> list[Path]:
    return sorted(p for p in Path(bundles_dir).iterdir() if (p / "configs" / "metadata.json").is_file())


def check_versions(bundles_dir: str | os.PathLike = "bundles", record: str | os.PathLike | None = None) -> list[str]:
    """The version gate: problems found, as messages (an empty list when every bundle passes).

    A bundle fails when its metadata version lacks a changelog entry, when it is not recorded in ``record``
    (default ``<bundles_dir>/versions.json``), or when its content hash (:func:`content_sha256`) differs from the
    recorded one while its version did not change.
    """
    record = Path(record) if record is not None else Path(bundles_dir) / "versions.json"
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    fix = "run `python scripts/package_bundles.py --update_versions`"
    problems = []
    for b in _bundle_dirs(bundles_dir):
        try:
            version, _ = read_version(b)
        except ValueError as err:
            problems.append(f"{b.name}: {err}")
            continue
        entry = recorded.get(b.name)
        if entry is None:
            problems.append(f"{b.name}: not recorded in {record}; {fix}.")
            continue
        digest = content_sha256(b)
        if digest != entry.get("content_sha256"):
            if version == entry.get("version"):
                problems.append(
                    f"{b.name}: its configs/models/scripts changed but the version is still {version}: bump the "
                    f"version in configs/metadata.json and add a changelog entry, then {fix}."
                )
            else:
                problems.append(f"{b.name}: version {version} is not recorded yet; {fix}.")
    return problems


def record_versions(
    bundles_dir: str | os.PathLike = "bundles", record: str | os.PathLike | None = None, force: bool = False
) -> dict[str, dict]:
    """Write ``{name: {"version", "content_sha256"}}`` of every bundle to ``record`` (default
    ``<bundles_dir>/versions.json``).

    Raises:
        ValueError: a bundle changed without a version bump (unless ``force``), or lacks a changelog entry.
    """
    record = Path(record) if record is not None else Path(bundles_dir) / "versions.json"
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    out = {}
    for b in _bundle_dirs(bundles_dir):
        version, _ = read_version(b)
        digest = content_sha256(b)
        old = recorded.get(b.name, {})
        if not force and old.get("version") == version and old.get("content_sha256") != digest:
            raise ValueError(
                f"{b.name}: its files changed but the version is still {version}; bump the version in "
                "configs/metadata.json and add a changelog entry first (or pass --force)."
            )
        out[b.name] = {"version": version, "content_sha256": digest}
    record.write_text(json.dumps(out, indent=4, sort_keys=True) + "\n")
    return out


def check_weights(path: str | os.PathLike) -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and check it holds only tensors and plain values.

    Plain values are ``None``, ``bool``, ``int``, ``float``, ``str`` and lists/tuples/dicts of those and of tensors.

    Raises:
        UnsafeBundleError: the file needs unpickling of arbitrary objects, or holds something else.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only raises UnpicklingError (or others) for pickled objects
        raise UnsafeBundleError(f"{path}: does not load with torch.load(weights_only=True): {err}") from None

    def walk(x: Any, where: str) -> None:
        if isinstance(x, torch.Tensor) or x is None or isinstance(x, (bool, int, float, str)):
            return
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, (str, int)):
                    raise UnsafeBundleError(f"{path}: key {k!r} at {where} is not a string or an integer.")
                walk(v, f"{where}/{k}")
            return
        if isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{where}[{i}]")
            return
        raise UnsafeBundleError(f"{path}: {where} holds a {type(x).__name__}; only tensors and plain values allowed.")

    if not isinstance(state, dict):
        raise UnsafeBundleError(f"{path}: expected a dict (a state_dict), got {type(state).__name__}.")
    walk(state, "")
    return state


def check_zip(zf: zipfile.ZipFile, name: str | None = None) -> str:
    """Check a bundle zip's member list; return its single top-level folder.

    Raises:
        UnsafeBundleError: absolute paths, drive letters, backslashes, ``..`` components, links or other special
            files, more than one top-level folder (or one that differs from ``name``), or more than
            :data:`MAX_FILES` entries or :data:`MAX_UNPACKED_BYTES` bytes.
    """
    infos = zf.infolist()
    if not infos:
        raise UnsafeBundleError("the archive is empty.")
    if len(infos) > MAX_FILES or sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        raise UnsafeBundleError(f"the archive holds more than {MAX_FILES} files or {MAX_UNPACKED_BYTES} bytes.")
    tops, seen = set(), set()
    for info in infos:
        n = info.filename
        if n.rstrip("/") in seen:
            raise UnsafeBundleError(f"member {n!r} appears twice.")
        seen.add(n.rstrip("/"))
        if n.startswith(("/", "\\")) or "\\" in n or (len(n) > 1 and n[1] == ":") or "\0" in n:
            raise UnsafeBundleError(f"unsafe member {n!r}: absolute path, drive letter or backslash.")
        parts = PurePosixPath(n).parts
        if ".." in parts or "." in parts:
            raise UnsafeBundleError(f"unsafe member {n!r}: '..' or '.' path component.")
        ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored no unix file type
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeBundleError(f"unsafe member {n!r}: a link or special file (file type {oct(ftype)}).")
        tops.add(parts[0])
        if len(parts) == 1 and not info.is_dir():
            raise UnsafeBundleError(f"member {n!r} lies outside a top-level folder.")
    if len(tops) != 1:
        raise UnsafeBundleError(f"the archive must hold one top-level folder, got {sorted(tops)}.")
    top = tops.pop()
    if name is not None and top != name:
        raise UnsafeBundleError(f"the archive's top-level folder is {top!r}, expected {name!r}.")
    return top


def safe_extract(zip_path: str | os.PathLike, target_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Extract a checked bundle zip (:func:`check_zip`) into ``target_dir``; return ``target_dir/<top folder>``.

    Every member is written as a regular file whose resolved path must lie inside ``target_dir``.
    """
    target = Path(target_dir).resolve()
    with zipfile.ZipFile(zip_path) as zf:
        top = check_zip(zf, name)
        for info in zf.infolist():
            dest = (target / info.filename).resolve()
            if target not in dest.parents:
                raise UnsafeBundleError(f"unsafe member {info.filename!r}: resolves outside {target}.")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "xb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    return target / top


def _fetch(url: str, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("file", "https"):
        raise ValueError(f"unsupported URL {url!r}: use https:// or file:// (a local file as file:///abs/path.zip).")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:  # noqa: S310 (scheme checked)
            n = 0
            for chunk in iter(lambda: r.read(_CHUNK), b""):
                n += len(chunk)
                if n > max_bytes:
                    raise UnsafeBundleError(f"{url}: larger than {max_bytes} bytes.")
                f.write(chunk)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise FileNotFoundError(f"{url}: not found (HTTP 404).") from None
        raise ValueError(f"{url}: download failed (HTTP {err.code}).") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError) or scheme == "file":
            raise FileNotFoundError(f"{url}: not found ({err.reason}).") from None
        raise ValueError(f"{url}: download failed ({err.reason}).") from None


def _as_url(location: str) -> str:
    """A URL for ``location``: URLs pass through, local paths become ``file://`` URLs."""
    if urllib.parse.urlparse(location).scheme in ("file", "https", "http"):
        return location
    return Path(location).resolve().as_uri()


def _load_index(index: str) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model_info.json"
        _fetch(_as_url(index), f, max_bytes=2**24)
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"index {index!r} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"index {index!r}: expected a JSON object of '<name>_v<version>' entries.")
    return data


def _version_key(v: str) -> tuple:
    try:
        from packaging.version import Version

        return (0, Version(v))
    except Exception:  # not a PEP 440 version: order as text, below every valid one
        return (-1, v)


def _pick(index: dict[str, dict], name: str, version: str | None, where: str) -> dict:
    if version is not None:
        entry = index.get(f"{name}_v{version}")
        if entry is None:
            have = sorted(e.get("version", "?") for e in index.values() if e.get("name") == name)
            raise ValueError(f"index {where!r} has no {name} version {version}; it has {have or 'none'}.")
        return entry
    entries = [e for e in index.values() if e.get("name") == name]
    if not entries:
        names = sorted({str(e.get("name")) for e in index.values()})
        raise ValueError(f"index {where!r} has no bundle {name!r}; it has {names}.")
    return max(entries, key=lambda e: _version_key(str(e.get("version"))))


def download(
    name: str,
    version: str | None = None,
    url: str | None = None,
    index: str | None = None,
    bundle_dir: str | os.PathLike = "bundles",
    overwrite: bool = False,
    sha256: str | None = None,
) -> Path:
    """Download a bundle zip, verify it, and extract it to ``<bundle_dir>/<name>``.

    The expected sha256 (and size) come from ``sha256`` or from the index: ``index`` (a URL or a local
    ``model_info.json``), else ``model_info.json`` beside ``url``, else ``$MONAI_REG_BUNDLE_INDEX``, else
    :data:`DEFAULT_INDEX_URL`. A zip whose checksum cannot be checked is refused. The zip comes from ``url``
    (https://, or file:// for a local file) or from the index entry's ``source``.

    Args:
        name: bundle name, e.g. ``"unpaired_mr_brain"``.
        version: bundle version; default: the highest version of ``name`` in the index.
        url: URL of the zip (``file:///abs/path/name_v0.1.0.zip`` works).
        index: URL or path of a ``model_info.json``.
        bundle_dir: folder receiving the bundle.
        overwrite: replace an existing ``<bundle_dir>/<name>``.
        sha256: expected hex sha256 of the zip (instead of an index).

    Returns:
        The bundle folder.

    Raises:
        FileExistsError: the bundle folder exists and ``overwrite`` is false.
        FileNotFoundError: the zip or the index does not exist.
        UnsafeBundleError: checksum or size mismatch, unsafe archive, weights that need unpickling (a ValueError).
        ValueError: no such bundle/version in the index, unsupported URL.
    """
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"download: invalid bundle name {name!r}.")
    bundle_dir = Path(bundle_dir)
    final = bundle_dir / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it.")
    entry: dict = {}
    if sha256 is None:
        where = index
        if where is None and url is not None:
            where = url.rsplit("/", 1)[0] + "/model_info.json"
        if where is None:
            where = os.environ.get("MONAI_REG_BUNDLE_INDEX", DEFAULT_INDEX_URL)
        try:
            entry = _pick(_load_index(where), name, version, where)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"download: no index at {where!r} to verify the zip against; pass --index or --sha256."
            ) from None
        sha256 = entry.get("sha256")
        if not sha256:
            raise UnsafeBundleError(f"index {where!r}: the entry of {name} has no sha256.")
        version = version or entry.get("version")
    if url is None:
        url = entry.get("source")
        if not url:
            raise ValueError(f"download: the index entry of {name} has no 'source' URL; pass --url.")
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=f".{name}-download-") as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        _fetch(url, zip_path)
        size = entry.get("size")
        if size is not None and zip_path.stat().st_size != int(size):
            raise UnsafeBundleError(f"{url}: size {zip_path.stat().st_size} differs from the index ({size}).")
        got = sha256_file(zip_path)
        if got.lower() != str(sha256).lower():
            raise UnsafeBundleError(f"{url}: sha256 {got} differs from the expected {sha256}; nothing extracted.")
        try:
            zipfile.ZipFile(zip_path).close()
        except zipfile.BadZipFile:
            raise UnsafeBundleError(f"{url}: not a zip file.") from None
        staged = safe_extract(zip_path, Path(tmp) / "x", name=name)
        got_version, _ = read_version(staged)
        if version is not None and got_version != version:
            raise UnsafeBundleError(f"{url}: holds {name} version {got_version}, expected {version}.")
        for pt in sorted((staged / "models").glob("*.pt")):
            check_weights(pt)
        if final.exists():  # overwrite is true here
            shutil.rmtree(final)
        os.replace(staged, final)
    return final
