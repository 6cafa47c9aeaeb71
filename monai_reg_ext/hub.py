"""Bundle distribution: packaging, an index of releases, download with sha256 verification and safe extraction.

A released bundle is a zip ``<name>_v<version>.zip`` with one top-level folder ``<name>/`` (the layout that
``python -m monai.bundle download`` expects), listed in a model-zoo style index ``model_info.json``::

    {"<name>_v<version>": {"name": ..., "version": ..., "sha256": ..., "size": ..., "source": "<url of the zip>"}}

Downloading checks the index entries, verifies the zip's size and sha256 against the index **before** anything is
extracted, refuses archives with absolute paths, ``..`` components, links, more than one top-level folder, a declared
unpacked size or compression ratio over the limits (:func:`archive_limits`) or a member whose data does not match its
header, refuses to replace an existing bundle folder unless asked to, and checks that every weight-like file
(:func:`weight_like_files`) loads with ``torch.load(weights_only=True)``. It never parses a bundle config.

A bundle's configs are code (``$`` expressions are evaluated): run bundles from trusted sources only
(``docs/security.md``); :func:`warn_bundle_config` warns once per config file before one is parsed, and
:func:`check_checkpoint` checks a checkpoint before training resumes from it. Release workflow:
``docs/distribution.md``.

A release also ships the ``monai-reg`` wheel (``scripts/package_bundles.py`` builds it), recorded in the same index
under its file name with ``"kind": "wheel"`` and its sha256 (:func:`make_wheel_entry`, :func:`download_wheel`), so a
downloaded bundle can be run without a clone of the repository. A bundle config that starts with
:data:`INSTALL_GUARD` (:func:`add_install_guard`) stops with :data:`INSTALL_HINT` when ``monai_reg_ext`` cannot be
imported, instead of MONAI's ConfigExpression traceback.
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
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "DEFAULT_URL_TEMPLATE",
    "DEFAULT_INDEX_URL",
    "INDEX_ENV",
    "WHEEL_NAME",
    "INSTALL_GUARD_ID",
    "INSTALL_GUARD",
    "INSTALL_HINT",
    "UnsafeBundleError",
    "BundleConfigWarning",
    "sha256_file",
    "bundle_files",
    "content_sha256",
    "read_version",
    "make_bundle_zip",
    "make_index",
    "make_wheel_entry",
    "wheel_requirement",
    "index_location",
    "check_versions",
    "record_versions",
    "check_weights",
    "weight_like_files",
    "archive_limits",
    "check_zip",
    "safe_extract",
    "download",
    "download_wheel",
    "add_install_guard",
    "install_guard_problems",
    "warn_bundle_config",
    "check_checkpoint",
    "check_run_args",
]

#: Where released zips live: a GitHub release (tag ``bundles``) of the project. ``OWNER/REPO`` is a placeholder to
#: replace with the real repository (``scripts/package_bundles.py --url_template ...``). Fields: ``{name}``,
#: ``{version}``. The same layout lets ``python -m monai.bundle download --source github --repo OWNER/REPO/bundles``
#: find the zips.
DEFAULT_URL_TEMPLATE = "https://github.com/OWNER/REPO/releases/download/bundles/{name}_v{version}.zip"
#: The index attached to the same release; override with ``MONAI_REG_BUNDLE_INDEX`` or ``index=``. While it holds the
#: placeholder ``OWNER/REPO`` it is never fetched: :func:`index_location` asks for ``--index`` or the variable instead.
DEFAULT_INDEX_URL = "https://github.com/OWNER/REPO/releases/download/bundles/model_info.json"
#: The environment variable naming the index (a ``https://`` or ``file://`` URL, or a local path).
INDEX_ENV = "MONAI_REG_BUNDLE_INDEX"
_PLACEHOLDER = "OWNER/REPO"
#: The distribution name of this package; ``download(WHEEL_NAME)`` fetches its wheel from the index.
WHEEL_NAME = "monai-reg"
#: Id of the bundle config item that checks that ``monai_reg_ext`` imports (:func:`add_install_guard`).
INSTALL_GUARD_ID = "requires_monai_reg"
#: What a bundle run says when ``monai_reg_ext`` cannot be imported (no single quotes: it sits in a Python literal).
INSTALL_HINT = (
    "This bundle needs the Python package monai-reg (module monai_reg_ext), which cannot be imported here. Install "
    "the wheel of the release that holds this bundle: pip install monai_reg-<version>-py3-none-any.whl (listed with "
    "its sha256 and URL in the release index model_info.json; see docs/distribution.md of monai-reg). To see why the "
    'import fails: python -c "import monai_reg_ext"'
)
#: The check itself, a MONAI config expression. ``optional_import`` never raises (it reports whether the import
#: worked); ``sys.exit(text)`` is a ``SystemExit``, which MONAI's parser does not wrap, so the run ends with the hint
#: as its only line (exit status 1) instead of a ConfigExpression traceback.
INSTALL_GUARD = f"$monai.utils.optional_import('monai_reg_ext')[1] or __import__('sys').exit({INSTALL_HINT!r})"

#: Folders and files never packaged: run outputs, caches, evaluation outputs, hidden files.
EXCLUDED_DIRS = frozenset({"runs", "eval", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".ts", ".onnx", ".zip")
#: What the content hash (and so the version gate) covers.
VERSIONED_DIRS = ("configs", "models", "scripts")
#: Limits against archive bombs, checked on the declared sizes before extracting and on the bytes written while
#: extracting. The byte and ratio limits can be changed per call (:func:`download`) or with the environment
#: variables ``MONAI_REG_MAX_UNPACKED_BYTES`` and ``MONAI_REG_MAX_COMPRESSION_RATIO`` (:func:`archive_limits`).
MAX_FILES = 10_000
MAX_UNPACKED_BYTES = 4 * 2**30
#: Uncompressed / compressed size, over the whole archive and per member. The released bundles reach 59:1 (a
#: 46 kB model.pt of zeros); 1.0 to 1.2 overall.
MAX_COMPRESSION_RATIO = 200.0
#: Members (and archives) that unpack to at most this many bytes are not ratio-checked: they cannot bomb.
RATIO_MIN_BYTES = 2**20
#: Files that ``torch.load`` reads, checked with ``weights_only=True`` at any depth of a downloaded bundle (any case).
WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl")
#: Compression methods that ``zipfile`` reads.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)

_CHUNK = 2**20


class UnsafeBundleError(ValueError):
    """An archive or a download failed a check (checksum, path safety, layout, weights)."""


class BundleConfigWarning(UserWarning):
    """A bundle config that holds code (``$`` expressions, ``_target_`` components) is about to be parsed."""


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


def _wheel_name_version(file_name: str) -> tuple[str, str]:
    """``(distribution, version)`` of a wheel file name ``<dist>-<version>[-<build>]-<py>-<abi>-<platform>.whl``."""
    parts = file_name[: -len(".whl")].split("-") if file_name.endswith(".whl") else []
    if len(parts) not in (5, 6) or not all(parts):
        raise ValueError(f"{file_name!r}: not a wheel file name '<dist>-<version>-<py>-<abi>-<platform>.whl'.")
    return parts[0], parts[1]


def make_wheel_entry(wheel: str | os.PathLike, source: str) -> dict[str, dict]:
    """The ``model_info.json`` entry of the package's wheel, keyed by its file name.

    ``{"<file>.whl": {"kind": "wheel", "name": "monai-reg", "version", "file", "sha256", "size", "source",
    "requirement"}}``; ``requirement`` is what ``pip install`` takes to fetch it and check its sha256
    (``monai-reg @ <source>#sha256=<hex>``, :func:`wheel_requirement`).

    Args:
        wheel: the wheel file.
        source: its download URL (``https://`` or ``file://``).
    """
    w = Path(wheel)
    dist, version = _wheel_name_version(w.name)
    if dist.replace("_", "-").lower() != WHEEL_NAME:
        raise ValueError(f"{w.name}: not a {WHEEL_NAME} wheel.")
    entry = {"kind": "wheel", "name": WHEEL_NAME, "version": version, "file": w.name, "source": source}
    entry.update(sha256=sha256_file(w), size=w.stat().st_size)
    entry["requirement"] = wheel_requirement(entry)
    return {w.name: entry}


def wheel_requirement(entry: Mapping[str, Any]) -> str:
    """``monai-reg @ <source>#sha256=<hex>``: pip fetches the wheel and refuses it when the sha256 differs."""
    return f"{WHEEL_NAME} @ {entry['source']}#sha256={entry['sha256']}"


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
    from .io.atomic import atomic_write_text

    atomic_write_text(record, json.dumps(out, indent=4, sort_keys=True) + "\n")
    return out


def _load_error(err: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed, without torch's advice to load unsafely."""
    from .networks.checkpoint import weights_load_error

    return weights_load_error(err).split(" was not an allowed global")[0]


def check_weights(path: str | os.PathLike, label: str | None = None) -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and check it holds only tensors and plain values.

    Plain values are ``None``, ``bool``, ``int``, ``float``, ``str`` and lists/tuples/dicts of those and of tensors.
    ``label`` names the file in messages (default: ``path``).

    Raises:
        UnsafeBundleError: the file needs unpickling of arbitrary objects, is not a torch file, or holds something
            else than a dict of tensors and plain values.
    """
    import torch

    where = label or str(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only raises UnpicklingError (or others) for pickled objects
        raise UnsafeBundleError(
            f"{where}: does not load with torch.load(weights_only=True): {_load_error(err)}."
        ) from None

    def walk(x: Any, at: str) -> None:
        if isinstance(x, torch.Tensor) or x is None or isinstance(x, (bool, int, float, str)):
            return
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, (str, int)):
                    raise UnsafeBundleError(f"{where}: key {k!r} at {at} is not a string or an integer.")
                walk(v, f"{at}/{k}")
            return
        if isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{at}[{i}]")
            return
        raise UnsafeBundleError(f"{where}: {at} holds a {type(x).__name__}; only tensors and plain values allowed.")

    if not isinstance(state, dict):
        raise UnsafeBundleError(f"{where}: expected a dict (a state_dict), got {type(state).__name__}.")
    walk(state, "")
    return state


def _looks_like_pickle(path: Path) -> bool:
    """A pickle stream (protocol 2 to 5) or a zip holding a ``.pkl`` member (``torch.save``'s format)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith(".pkl") for n in zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError):
            return False
    return False


def weight_like_files(root: str | os.PathLike) -> list[Path]:
    """Every file under ``root`` (any depth) that ``torch.load`` could read: a name ending in
    :data:`WEIGHT_SUFFIXES` (any case), or content that is a pickle or a zip with a ``.pkl`` member."""
    out = []
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink() and (p.suffix.lower() in WEIGHT_SUFFIXES or _looks_like_pickle(p)):
            out.append(p)
    return out


def _positive(value: Any, env: str, default: float, cast: type) -> Any:
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return cast(default)
        try:
            value = cast(float(raw))
        except ValueError:
            raise ValueError(f"${env}={raw!r}: expected a positive number.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{env.lower()}: expected a positive number, got {value!r}.")
    return cast(value)


def archive_limits(max_bytes: int | None = None, max_ratio: float | None = None) -> tuple[int, float]:
    """The extraction limits: total unpacked bytes and compression ratio (uncompressed / compressed).

    Each comes from the argument, else the environment (``MONAI_REG_MAX_UNPACKED_BYTES``,
    ``MONAI_REG_MAX_COMPRESSION_RATIO``), else :data:`MAX_UNPACKED_BYTES` (4 GiB) and :data:`MAX_COMPRESSION_RATIO`
    (200).

    Raises:
        ValueError: a limit that is not a positive number.
    """
    return (
        _positive(max_bytes, "MONAI_REG_MAX_UNPACKED_BYTES", MAX_UNPACKED_BYTES, int),
        _positive(max_ratio, "MONAI_REG_MAX_COMPRESSION_RATIO", MAX_COMPRESSION_RATIO, float),
    )


def _check_sizes(infos: list[zipfile.ZipInfo], max_bytes: int, max_ratio: float, archive_size: int | None) -> None:
    """Refuse, on the sizes the headers declare, an archive bomb or a header that cannot be true."""
    hint = "MONAI_REG_MAX_COMPRESSION_RATIO"
    for info in infos:
        n = info.filename
        if info.flag_bits & 0x1:
            raise UnsafeBundleError(f"member {n!r} is encrypted.")
        if info.compress_type not in _ZIP_METHODS:
            raise UnsafeBundleError(f"member {n!r}: unsupported compression method {info.compress_type}.")
        if archive_size is not None and info.compress_size > archive_size:
            raise UnsafeBundleError(
                f"member {n!r}: its header declares {info.compress_size} compressed bytes, more than the whole "
                f"archive ({archive_size} bytes): a false header."
            )
        if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            raise UnsafeBundleError(
                f"member {n!r} unpacks {info.compress_size} bytes to {info.file_size} "
                f"({info.file_size / max(info.compress_size, 1):.0f}:1), over the {max_ratio:g}:1 compression ratio "
                f"limit ({hint}): an archive bomb?"
            )
    total, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
    if total > max_bytes:
        raise UnsafeBundleError(
            f"the archive unpacks to {total} bytes, over the limit of {max_bytes} (MONAI_REG_MAX_UNPACKED_BYTES)."
        )
    if total > RATIO_MIN_BYTES and total > max_ratio * max(packed, 1):
        raise UnsafeBundleError(
            f"the archive unpacks {packed} bytes to {total} ({total / max(packed, 1):.0f}:1), over the "
            f"{max_ratio:g}:1 compression ratio limit ({hint}): an archive bomb?"
        )


def check_zip(
    zf: zipfile.ZipFile,
    name: str | None = None,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
    archive_size: int | None = None,
) -> str:
    """Check a bundle zip's member list; return its single top-level folder.

    Nothing is decompressed: the checks read the central directory. ``max_bytes`` / ``max_ratio``: see
    :func:`archive_limits`; ``archive_size``: the zip's size in bytes (a member cannot hold more compressed bytes).

    Raises:
        UnsafeBundleError: absolute paths, drive letters, backslashes, ``..`` components, links or other special
            files, more than one top-level folder (or one that differs from ``name``), more than :data:`MAX_FILES`
            entries, a declared unpacked total over ``max_bytes``, a compression ratio over ``max_ratio`` (overall or
            per member over :data:`RATIO_MIN_BYTES`), encrypted members, or a header that cannot be true.
    """
    max_bytes, max_ratio = archive_limits(max_bytes, max_ratio)
    infos = zf.infolist()
    if not infos:
        raise UnsafeBundleError("the archive is empty.")
    if len(infos) > MAX_FILES:
        raise UnsafeBundleError(f"the archive holds {len(infos)} entries, more than {MAX_FILES}.")
    _check_sizes(infos, max_bytes, max_ratio, archive_size)
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


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> int:
    """Write one member to ``dest`` (a new regular file), counting the bytes: never more than its header declares."""
    n = 0
    try:
        with zf.open(info) as src, open(dest, "xb") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                n += len(chunk)
                if n > info.file_size:
                    raise UnsafeBundleError(
                        f"member {info.filename!r} unpacks to more than the {info.file_size} bytes its header "
                        "declares: a false header; extraction stopped."
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as err:
        raise UnsafeBundleError(
            f"member {info.filename!r}: its data does not match its header ({info.file_size} bytes, CRC "
            f"{info.CRC:08x} declared): {type(err).__name__}: {err}"
        ) from None
    if n != info.file_size:
        raise UnsafeBundleError(
            f"member {info.filename!r} unpacks to {n} bytes, its header declares {info.file_size}: a false header."
        )
    return n


def safe_extract(
    zip_path: str | os.PathLike,
    target_dir: str | os.PathLike,
    name: str | None = None,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
    source: str | None = None,
) -> Path:
    """Extract a checked bundle zip (:func:`check_zip`) into ``target_dir``; return ``target_dir/<top folder>``.

    The limits (``max_bytes``, ``max_ratio``: :func:`archive_limits`) are checked on the declared sizes before
    anything is written. Every member is written as a regular file whose resolved path must lie inside
    ``target_dir``; the bytes written are counted and must equal the member's declared size. On any failure the
    top-level folder is removed if this call created it. ``source`` names the archive in messages.

    Raises:
        UnsafeBundleError: the archive fails a check or is not a valid zip, naming the archive and the member.
    """
    max_bytes, max_ratio = archive_limits(max_bytes, max_ratio)
    where = source or str(zip_path)
    target = Path(target_dir).resolve()
    created: Path | None = None
    try:
        with zipfile.ZipFile(zip_path) as zf:
            top = check_zip(zf, name, max_bytes, max_ratio, archive_size=os.path.getsize(zip_path))
            created = None if (target / top).exists() else target / top
            for info in zf.infolist():
                dest = (target / info.filename).resolve()
                if target not in dest.parents:
                    raise UnsafeBundleError(f"unsafe member {info.filename!r}: resolves outside {target}.")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                _extract_member(zf, info, dest)
    except (UnsafeBundleError, zipfile.BadZipFile) as err:
        if created is not None and created.exists():
            shutil.rmtree(created)
        what = str(err) if isinstance(err, UnsafeBundleError) else f"not a valid zip file ({err})."
        raise UnsafeBundleError(f"{where}: {what}") from None
    return target / top


def _fetch(url: str, dest: Path, max_bytes: int | None = None) -> None:
    max_bytes = archive_limits(max_bytes)[0] if max_bytes is None else max_bytes
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


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def _check_entry(key: str, entry: Any, where: str) -> None:
    """One index entry: an object with non-empty string ``name`` / ``version``, and when present a 64-hex-digit
    ``sha256``, a non-negative integer ``size`` and a string ``source``."""
    at = f"index {where!r}: entry {key!r}"
    if not isinstance(entry, dict):
        shown = repr(entry) if len(repr(entry)) <= 40 else repr(entry)[:37] + "..."
        raise ValueError(
            f"{at} must be an object with 'name', 'version', 'sha256', 'size' and 'source', got "
            f"{type(entry).__name__} {shown}."
        )
    for field in ("name", "version"):
        if not isinstance(entry.get(field), str) or not entry[field]:
            raise ValueError(f"{at}: {field!r} must be a non-empty string, got {entry.get(field)!r}.")
    if entry.get("sha256") is not None and not _is_sha256(entry["sha256"]):
        raise ValueError(f"{at}: 'sha256' must be 64 hex digits, got {entry['sha256']!r}.")
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"{at}: 'size' must be a non-negative integer (bytes), got {size!r}.")
    if entry.get("source") is not None and not isinstance(entry["source"], str):
        raise ValueError(f"{at}: 'source' must be a URL string, got {entry['source']!r}.")
    kind = entry.get("kind", "bundle")
    if kind not in ("bundle", "wheel"):
        raise ValueError(f"{at}: 'kind' must be 'bundle' or 'wheel', got {kind!r}.")
    if kind == "wheel":
        file = entry.get("file")
        if not isinstance(file, str) or not file.endswith(".whl") or "/" in file or "\\" in file or file != key:
            raise ValueError(f"{at}: a wheel entry needs 'file', its key, a plain '*.whl' file name; got {file!r}.")
        if not _is_sha256(entry.get("sha256")) or not isinstance(entry.get("source"), str):
            raise ValueError(f"{at}: a wheel entry needs 'sha256' (64 hex digits) and 'source'.")


def _load_index(index: str) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model_info.json"
        _fetch(_as_url(index), f, max_bytes=2**24)
        try:
            data = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"index {index!r} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"index {index!r}: expected a JSON object of '<name>_v<version>' entries.")
    for key, entry in data.items():
        _check_entry(key, entry, index)
    return data


def _version_key(v: str) -> tuple:
    try:
        from packaging.version import Version

        return (0, Version(v))
    except Exception:  # not a PEP 440 version: order as text, below every valid one
        return (-1, v)


def _pick(index: dict[str, dict], name: str, version: str | None, where: str, kind: str = "bundle") -> dict:
    """The entry of ``name`` (of ``kind``) at ``version``, else its highest version."""
    entries = [e for e in index.values() if e.get("name") == name and e.get("kind", "bundle") == kind]
    if version is not None:
        found = [e for e in entries if e.get("version") == version]
        if not found:
            have = sorted(str(e.get("version", "?")) for e in entries)
            what = name if kind == "bundle" else f"wheel of {name}"
            raise ValueError(f"index {where!r} has no {what} version {version}; it has {have or 'none'}.")
        return found[0]
    if not entries:
        names = sorted({str(e.get("name")) for e in index.values() if e.get("kind", "bundle") == kind})
        raise ValueError(
            f"index {where!r} has no {'bundle' if kind == 'bundle' else 'wheel of'} {name!r}; it has {names}."
        )
    return max(entries, key=lambda e: _version_key(str(e.get("version"))))


def index_location(index: str | None = None, url: str | None = None) -> str:
    """The index to read: ``index``, else ``model_info.json`` beside ``url``, else ``$MONAI_REG_BUNDLE_INDEX``, else
    :data:`DEFAULT_INDEX_URL`.

    Raises:
        ValueError: the choice is the default while it still names the placeholder repository ``OWNER/REPO``.
    """
    if index:
        return str(index)
    if url is not None:
        return url.rsplit("/", 1)[0] + "/model_info.json"
    where = os.environ.get(INDEX_ENV, "").strip() or DEFAULT_INDEX_URL
    if _PLACEHOLDER in where:
        raise ValueError(
            f"no bundle index is configured: pass --index URL_OR_FILE or set {INDEX_ENV} to the model_info.json of a "
            "release (https://.../model_info.json, file:///abs/path/model_info.json or a local path; "
            "docs/distribution.md)."
        )
    return where


def _index_entry(name: str, version: str | None, url: str | None, index: str | None) -> dict:
    """The index entry that the zip is verified against (see :func:`download`)."""
    where = index_location(index, url)
    try:
        entry = _pick(_load_index(where), name, version, where)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"download: no index at {where!r} to verify the zip against; pass --index or --sha256."
        ) from None
    if not entry.get("sha256"):
        raise UnsafeBundleError(f"index {where!r}: the entry of {name} has no sha256.")
    return entry


def _stage(
    url: str, zip_path: Path, name: str, version: str | None, entry: dict, sha256: str, limits: tuple[int, float]
) -> Path:
    """Fetch, verify and extract the zip next to ``zip_path``; check the version and every weight-like file."""
    _fetch(url, zip_path, max_bytes=limits[0])
    size = entry.get("size")
    if size is not None and zip_path.stat().st_size != int(size):
        raise UnsafeBundleError(f"{url}: size {zip_path.stat().st_size} differs from the index ({size}).")
    got = sha256_file(zip_path)
    if got.lower() != str(sha256).lower():
        raise UnsafeBundleError(f"{url}: sha256 {got} differs from the expected {sha256}; nothing extracted.")
    staged = safe_extract(zip_path, zip_path.parent / "x", name, max_bytes=limits[0], max_ratio=limits[1], source=url)
    got_version, _ = read_version(staged)
    if version is not None and got_version != version:
        raise UnsafeBundleError(f"{url}: holds {name} version {got_version}, expected {version}.")
    for f in weight_like_files(staged):
        check_weights(f, label=f"{url}: {name}/{f.relative_to(staged).as_posix()}")
    return staged


def download(
    name: str,
    version: str | None = None,
    url: str | None = None,
    index: str | None = None,
    bundle_dir: str | os.PathLike = "bundles",
    overwrite: bool = False,
    sha256: str | None = None,
    max_unpacked_bytes: int | None = None,
    max_compression_ratio: float | None = None,
) -> Path:
    """Download a bundle zip, verify it, and extract it to ``<bundle_dir>/<name>``.

    The expected sha256 (and size) come from ``sha256`` or from the index (:func:`index_location`: ``index``, a
    ``https://`` or ``file://`` URL or a local ``model_info.json``, else ``model_info.json`` beside ``url``, else
    ``$MONAI_REG_BUNDLE_INDEX``). A zip whose checksum cannot be checked is refused. The zip comes from ``url``
    (https://, or file:// for a local file) or from the index entry's ``source``. Every check runs on a staged copy
    inside ``bundle_dir``; the bundle is moved into place only when all pass. No bundle config is parsed.
    ``name="monai-reg"`` (:data:`WHEEL_NAME`) fetches the package's wheel into ``bundle_dir`` instead
    (:func:`download_wheel`).

    Args:
        name: bundle name, e.g. ``"unpaired_mr_brain"``.
        version: bundle version; default: the highest version of ``name`` in the index.
        url: URL of the zip (``file:///abs/path/name_v0.1.0.zip`` works).
        index: URL or path of a ``model_info.json``.
        bundle_dir: folder receiving the bundle.
        overwrite: replace an existing ``<bundle_dir>/<name>``.
        sha256: expected hex sha256 of the zip (instead of an index).
        max_unpacked_bytes: limit on the zip's (declared and written) unpacked size; see :func:`archive_limits`.
        max_compression_ratio: limit on the compression ratio, overall and per member; see :func:`archive_limits`.

    Returns:
        The bundle folder.

    Raises:
        FileExistsError: the bundle folder exists and ``overwrite`` is false.
        FileNotFoundError: the zip or the index does not exist.
        UnsafeBundleError: checksum or size mismatch, unsafe archive or archive bomb, a member whose data does not
            match its header, a weight-like file that needs unpickling (a ValueError).
        ValueError: a malformed index entry, no such bundle/version in the index, unsupported URL, bad limits.
    """
    if name == WHEEL_NAME:
        return download_wheel(version, index=index, url=url, sha256=sha256, dest_dir=bundle_dir, overwrite=overwrite)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"download: invalid bundle name {name!r}.")
    if sha256 is not None and not _is_sha256(sha256):
        raise ValueError(f"download: --sha256 must be 64 hex digits, got {sha256!r}.")
    limits = archive_limits(max_unpacked_bytes, max_compression_ratio)
    bundle_dir = Path(bundle_dir)
    final = bundle_dir / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it.")
    entry: dict = {}
    if sha256 is None:
        entry = _index_entry(name, version, url, index)
        sha256 = entry["sha256"]
        version = version or entry.get("version")
    if url is None:
        url = entry.get("source")
        if not url:
            raise ValueError(f"download: the index entry of {name} has no 'source' URL; pass --url.")
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=f".{name}-download-") as tmp:
        staged = _stage(url, Path(tmp) / f"{name}.zip", name, version, entry, sha256, limits)
        if final.exists():  # overwrite is true here
            shutil.rmtree(final)
        os.replace(staged, final)
    return final


def _check_wheel(path: Path, version: str | None, where: str) -> None:
    """A readable zip whose ``*.dist-info/METADATA`` names :data:`WHEEL_NAME` (at ``version`` when given)."""
    try:
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            head = zf.read(metas[0]).decode("utf-8", "replace")[:4096] if len(metas) == 1 else ""
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise UnsafeBundleError(f"{where}: not a valid wheel (zip) file ({err}).") from None
    fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
    if bad is not None or fields.get("Name", "").replace("_", "-").lower() != WHEEL_NAME:
        raise UnsafeBundleError(
            f"{where}: not a {WHEEL_NAME} wheel (metadata {fields.get('Name')!r}, bad member {bad})."
        )
    if version is not None and fields.get("Version") != version:
        raise UnsafeBundleError(f"{where}: holds {WHEEL_NAME} {fields.get('Version')}, expected {version}.")


def download_wheel(
    version: str | None = None,
    index: str | None = None,
    dest_dir: str | os.PathLike = ".",
    overwrite: bool = False,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Download the ``monai-reg`` wheel recorded in a release index and verify its size and sha256.

    ``pip install <the returned file>`` then installs the package that the bundles need. The index comes from
    :func:`index_location`; with ``url`` and ``sha256`` no index is read.

    Args:
        version: package version; default: the highest in the index.
        index: URL (``https://``, ``file://``) or path of a ``model_info.json``.
        dest_dir: folder receiving ``monai_reg-<version>-py3-none-any.whl``.
        overwrite: replace an existing wheel file of that name.
        url: URL of the wheel instead of the entry's ``source``.
        sha256: expected hex sha256 instead of the index entry's.

    Returns:
        The wheel file.

    Raises:
        FileExistsError: the wheel file exists and ``overwrite`` is false.
        UnsafeBundleError: size or sha256 differs from the index (nothing is written), or not a monai-reg wheel.
        ValueError / FileNotFoundError: no index, no wheel entry (or version) in it, unsupported URL.
    """
    if sha256 is not None and (not _is_sha256(sha256) or url is None):
        raise ValueError(f"download: --sha256 needs --url and 64 hex digits, got {sha256!r}.")
    entry: dict = {"sha256": sha256, "source": url}
    if sha256 is None:
        where = index_location(index, url)
        entry = _pick(_load_index(where), WHEEL_NAME, version, where, kind="wheel")
    source = url or entry["source"]
    file = entry.get("file") or urllib.parse.urlparse(source).path.rsplit("/", 1)[-1]
    _wheel_name_version(file)  # a wheel file name, with no folder part
    final = Path(dest_dir) / file
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it.")
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".wheel-download-") as tmp:
        part = Path(tmp) / file
        _fetch(source, part, max_bytes=archive_limits()[0])
        if entry.get("size") is not None and part.stat().st_size != int(entry["size"]):
            raise UnsafeBundleError(f"{source}: size {part.stat().st_size} differs from the index ({entry['size']}).")
        got = sha256_file(part)
        if got.lower() != str(entry["sha256"]).lower():
            raise UnsafeBundleError(f"{source}: sha256 {got} differs from the expected {entry['sha256']}; not kept.")
        _check_wheel(part, version or entry.get("version"), source)
        os.replace(part, final)
    return final


# ---- bundle configs: the check that the package is installed ------------------------------------------------------


def add_install_guard(config: Mapping[str, Any], base: bool = True) -> dict[str, Any]:
    """A copy of a bundle config that checks first that ``monai_reg_ext`` imports (:data:`INSTALL_GUARD`).

    ``base`` (a config that MONAI reads first, e.g. ``train.json``, ``inference.json``): the item
    :data:`INSTALL_GUARD_ID` is put first. In every config, an ``initialize`` list (created in a base config) starts
    with ``$@requires_monai_reg`` (``monai.bundle run`` and ``ConfigWorkflow.initialize()`` run it before anything
    else), and a ``network_def`` component gets ``"_requires_": "@requires_monai_reg"`` (``ckpt_export`` and
    ``verify_net_in_out`` build only that). An overlay (``multi_gpu_train.json``) that replaces ``initialize`` needs
    the reference again; the item itself comes from the base config.
    """
    ref = f"$@{INSTALL_GUARD_ID}"
    out = {INSTALL_GUARD_ID: INSTALL_GUARD} if base else {}
    out.update({k: v for k, v in config.items() if k != INSTALL_GUARD_ID})
    if base or "initialize" in out:
        init = out.get("initialize", [])
        init = list(init) if isinstance(init, (list, tuple)) else [init]
        out["initialize"] = [ref, *[x for x in init if x != ref]]
    net = out.get("network_def")
    if isinstance(net, Mapping) and "_target_" in net:
        out["network_def"] = {"_target_": net["_target_"], "_requires_": f"@{INSTALL_GUARD_ID}", **net}
    return out


def install_guard_problems(bundle: str | os.PathLike) -> list[str]:
    """What :func:`add_install_guard` would change in a bundle's ``configs/*.json`` (empty when every config has the
    check). A config holding ``imports`` counts as a base config."""
    problems = []
    for f in sorted((Path(bundle) / "configs").glob("*.json")):
        if f.name == "metadata.json":
            continue
        try:
            config = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"{f}: not valid JSON ({err}).")
            continue
        if not isinstance(config, dict):
            continue
        want = add_install_guard(config, base="imports" in config)
        for key in sorted(k for k in want if want[k] != config.get(k)):
            problems.append(f"{f}: {key!r} should be {json.dumps(want[key])[:120]}")
    return problems


# ---- configs and checkpoints: code that a bundle makes run --------------------------------------------------------

_WARNED_CONFIGS: set[tuple[str, int, int]] = set()
_CONFIG_ADVISORY = "https://github.com/Project-MONAI/MONAI/security/advisories/GHSA-873f-pvrv-4x83"


def _code_in_config(x: Any) -> tuple[int, int, int]:
    """Counts of ``$`` expressions, ``_target_`` components and ``%`` macros (which import other configs)."""
    if isinstance(x, str):
        return (int(x.startswith("$")), 0, int(x.startswith("%")))
    items: Iterable[Any] = ()
    targets = 0
    if isinstance(x, Mapping):
        targets = int("_target_" in x)
        items = x.values()
    elif isinstance(x, (list, tuple)):
        items = x
    counts = [_code_in_config(v) for v in items]
    return (sum(c[0] for c in counts), targets + sum(c[1] for c in counts), sum(c[2] for c in counts))


def warn_bundle_config(path: str | os.PathLike) -> bool:
    """Warn (:class:`BundleConfigWarning`, once per config file and process) that parsing ``path`` runs code.

    Called before a bundle config is parsed (:func:`monai_reg_ext.bundle.load_bundle`, so ``register``, ``predict``
    and ``evaluate --pairs``). A config without ``$`` expressions, ``_target_`` components or ``%`` macros is data
    only and gets no warning; nor does a file that cannot be read (its parser reports that). MONAI's own runner
    (``train``, ``evaluate``) prints MONAI's warning instead. Silence it with
    ``warnings.filterwarnings("ignore", category=BundleConfigWarning)``.

    Returns:
        Whether a warning was issued.
    """
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        if key in _WARNED_CONFIGS:
            return False
        from monai.bundle import ConfigParser

        n_expr, n_target, n_macro = _code_in_config(ConfigParser.load_config_file(str(p)))
    except Exception:  # unreadable: the parser that follows reports it, and nothing of it runs
        return False
    if not (n_expr or n_target or n_macro):
        return False
    _WARNED_CONFIGS.add(key)
    macros = f" and {n_macro} '%' macro(s) import other configs" if n_macro else ""
    warnings.warn(
        f"{p}: parsing this bundle config runs code with your permissions: {n_expr} '$' expression(s) go to Python "
        f"eval() and {n_target} '_target_' component(s) instantiate importable callables{macros}. Use bundles from "
        f"sources you trust only and read a new bundle's configs first (docs/security.md; {_CONFIG_ADVISORY}).",
        BundleConfigWarning,
        stacklevel=2,
    )
    return True


#: What a resumable training checkpoint (``checkpoint_epoch=N.pt``) holds: the bundles' ``train#resume`` and
#: :func:`monai_reg_ext.engines.create_trainer` load these keys.
RESUME_KEYS = ("network", "optimizer", "trainer")


def check_checkpoint(path: str | os.PathLike, resume: bool = False, what: str = "checkpoint") -> dict:
    """Load a checkpoint as MONAI's ``CheckpointLoader`` does (``torch.load(weights_only=True)``) and check it.

    ``resume``: it must also hold :data:`RESUME_KEYS` (a training checkpoint, not ``models/model.pt``). ``what``
    names the option in messages (``--resume_from``).

    Raises:
        FileNotFoundError / IsADirectoryError: no such file.
        ValueError: truncated or corrupt, pickled objects, not a dict, or (``resume``) keys missing; one line naming
            the file.
    """
    from .networks.checkpoint import read_torch_file

    p = Path(path)
    state = read_torch_file(p, what)
    if not isinstance(state, dict):
        raise ValueError(f"{what} {p}: expected a dict of state dicts, got a {type(state).__name__}.")
    missing = [k for k in RESUME_KEYS if k not in state] if resume else []
    if missing:
        raise ValueError(
            f"{what} {p}: not a training checkpoint to resume from: no {missing} (keys: {sorted(map(str, state))[:6]});"
            " give a checkpoint_epoch=N.pt that training wrote (models/model.pt holds the weights only)."
        )
    return state


def check_run_args(args: Mapping[str, Any]) -> None:
    """Checks made before MONAI's bundle runner parses anything (``monai-reg train`` / ``evaluate``): a
    ``resume_from`` (training) or ``ckpt_path`` (evaluation) override naming a file must pass
    :func:`check_checkpoint`, so a truncated checkpoint is one clear error instead of a traceback after the run
    has started. Config references (``$...``, ``@...``) are left to the runner."""
    for key, resume in (("resume_from", True), ("ckpt_path", False)):
        value = args.get(key)
        if isinstance(value, (str, os.PathLike)) and str(value) and not str(value).startswith(("$", "@", "%")):
            check_checkpoint(value, resume=resume, what=f"--{key}")
