"""sha256 manifests of generated data: the shared part of the bundles' deterministic demo-data makers.

A maker writes its files with :func:`save_nifti_gz` (same bytes every run), lists their sha256s and its parameters in
``manifest.json``, and offers ``--check``: :func:`check_regeneration` regenerates into a temporary folder with the
recorded parameters and compares the three copies (manifest, regeneration, files on disk) with
:func:`compare_file_hashes`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "sha256_file",
    "compare_file_hashes",
    "nifti_image",
    "save_nifti_gz",
    "package_version",
    "check_regeneration",
    "write_manifest",
]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def compare_file_hashes(
    expected: Mapping[str, str], regenerated: Mapping[str, str], folder: str | os.PathLike, verbose: bool = True
) -> bool:
    """Check that the manifest, a fresh regeneration and the files on disk agree, file by file.

    Args:
        expected: ``{relative path: sha256}`` from the shipped manifest.
        regenerated: the same for a regeneration into a temporary folder.
        folder: the shipped data folder the relative paths start from.
        verbose: print one ``MISMATCH`` line per differing file and a summary line.

    Returns:
        True when every file listed by either side has the same hash in all three places.
    """
    ok = True
    for name in sorted(set(expected) | set(regenerated)):
        on_disk = Path(folder) / name
        disk_hash = sha256_file(on_disk) if on_disk.is_file() else None
        if expected.get(name) != regenerated.get(name) or disk_hash != expected.get(name):
            ok = False
            if verbose:
                print(
                    f"MISMATCH {name}: manifest {expected.get(name)}, regenerated {regenerated.get(name)}, "
                    f"on disk {disk_hash}"
                )
    if verbose:
        print(f"check: {'OK' if ok else 'FAILED'} ({len(expected)} files in the manifest)")
    return ok


def nifti_image(data: np.ndarray, affine: np.ndarray, descrip: str = "") -> Any:
    """A ``nibabel.Nifti1Image`` of ``data`` with ``affine`` (4x4, mm) as both qform and sform (code 1), units mm.

    ``descrip`` (e.g. "synthetic ...", "real CT ...") is stored in the header, cut to the 79 characters NIfTI allows.
    """
    import nibabel as nib

    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = descrip[:79].encode()
    return img


def save_nifti_gz(img: Any, path: str | os.PathLike) -> None:
    """Write a nibabel image as ``.nii.gz`` with gzip level 9 and no time stamp or file name: the same bytes each run.

    Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=9, mtime=0))


def package_version(module: str) -> str:
    """``module.__version__`` for recording in a manifest, or ``"unknown"`` when it cannot be imported."""
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "unknown"


def check_regeneration(
    output: str | os.PathLike,
    regenerate: Callable[[str, Mapping[str, Any]], Mapping[str, Any]],
    verbose: bool = True,
) -> bool:
    """Regenerate a data set with the parameters of ``output/manifest.json`` and compare the sha256s file by file.

    Args:
        output: the shipped data folder holding ``manifest.json`` (keys ``parameters`` and ``files``).
        regenerate: ``(temporary folder, parameters) -> manifest`` (the maker's generate function); the returned
            manifest's ``files`` maps relative paths to sha256s.
        verbose: print mismatches and a summary line.

    Returns:
        True when every file is reproduced byte for byte (none missing or extra).

    Raises:
        ValueError: no ``manifest.json`` in ``output``, or one without ``parameters``/``files``.
    """
    manifest_path = Path(output) / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"--check: no manifest at {manifest_path}; generate the data first.")
    manifest = json.loads(manifest_path.read_text())
    missing = [k for k in ("parameters", "files") if k not in manifest]
    if missing:
        raise ValueError(f"--check: {manifest_path} lacks {missing}; expected keys 'parameters' and 'files'.")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = regenerate(tmp, manifest["parameters"])
    return compare_file_hashes(manifest["files"], fresh["files"], output, verbose)


def write_manifest(output: str | os.PathLike, manifest: dict[str, Any], indent: int = 1) -> dict[str, Any]:
    """Add ``files`` (relative path -> sha256 of every file under ``output`` but ``manifest.json``, sorted) and
    ``total_bytes`` to ``manifest``, write it as ``output/manifest.json`` and return it."""
    out = Path(output)
    files = sorted(f for f in out.rglob("*") if f.is_file() and f.name != "manifest.json")
    manifest["files"] = {f.relative_to(out).as_posix(): sha256_file(f) for f in files}
    manifest["total_bytes"] = int(sum(f.stat().st_size for f in files))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=indent) + "\n")
    return manifest
