"""sha256 manifests of generated data: the shared part of the bundles' deterministic demo-data makers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["sha256_file", "compare_file_hashes"]


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
