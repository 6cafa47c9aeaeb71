"""Atomic file writes: write to a temporary sibling, rename onto the target only when the write completed.

A crash or kill while writing leaves the previous file (or none) in place, never a half-written one; the temporary
name starts with ``.`` and ends with the target's own name, so format detection by extension still works. Errors of
the file system (a folder that cannot be created, no permission, no space left) name the final file, not the
temporary one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write_path", "atomic_write_text", "make_folder", "write_error"]


def write_error(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` (raised while writing ``path``, maybe under a temporary name) as an ``OSError`` of the same errno
    (so ``PermissionError`` stays ``PermissionError``) whose message and ``filename`` name ``path``."""
    reason = getattr(err, "reason", None) or err.strerror or str(err) or type(err).__name__
    if err.errno is None:
        new = type(err)(f"cannot write {str(path)!r}: {reason}")
    else:
        new = OSError(err.errno, f"cannot write {str(path)!r}: {reason}", str(path))
    new.reason = reason  # the cause alone, when the error is named again for another path
    return new


def make_folder(folder: str | os.PathLike) -> Path:
    """``mkdir -p folder``, with an error naming the file that is in the way or the folder that cannot be made.

    Raises:
        NotADirectoryError: a file stands where ``folder`` or one of its parents should be.
        OSError: (e.g. ``PermissionError``) naming ``folder``.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise NotADirectoryError(
            f"cannot create the folder {str(folder)!r}: {str(blocker)!r} is a file, not a folder."
        ) from None
    except OSError as err:
        raise write_error(err, folder) from None
    return folder


@contextmanager
def atomic_write_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed onto ``path`` (``os.replace``).

    Args:
        path: the final file.

    Yields:
        ``<dir>/.tmp-<random>-<name>``: write the file there.

    Raises:
        NotADirectoryError / OSError: naming ``path`` (not the temporary file), when its folder cannot be created or
            the file cannot be written or renamed (permission, no space left...).
    """
    path = Path(path)
    make_folder(path.parent)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None or (err.filename is not None and str(err.filename) not in (str(tmp), str(path))):
            raise  # not a file-system error about this file (e.g. a writer's own check)
        raise write_error(err, path) from err
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".nii")):  # nibabel appends .nii to a suffix-less name
            if leftover.exists():
                leftover.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_path`).

    Returns:
        ``path``.
    """
    with atomic_write_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
