"""Atomic file writes: write to a temporary sibling, rename onto the target only when the write completed.

A crash or kill while writing leaves the previous file (or none) in place, never a half-written one; the temporary
name starts with ``.`` and ends with the target's own name, so format detection by extension still works.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write_path"]


@contextmanager
def atomic_write_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed onto ``path`` (``os.replace``).

    Args:
        path: the final file.

    Yields:
        ``<dir>/.tmp-<random>-<name>``: write the file there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
