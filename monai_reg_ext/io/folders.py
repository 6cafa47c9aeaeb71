"""Image files in folders: image suffixes, natural sort order and recursive folder scanning.

Image files are ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr`` (read by MONAI's ``LoadImage``); H5
datasets are referenced through :mod:`monai_reg_ext.io.h5`. Layouts: ``docs/data.md``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "natural_key", "strip_suffix", "scan_image_folder"]

logger = logging.getLogger(__name__)

#: Image file suffixes searched in data folders (longest first so ``.nii.gz`` wins over ``.gz``).
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
#: Companion files that are part of an image stored elsewhere (not images themselves): skipped silently.
_COMPANION_SUFFIXES: tuple[str, ...] = (".raw", ".zraw", ".raw.gz")


def natural_key(text: str) -> list:
    """Sort key ordering ``"img2"`` before ``"img10"`` (numbers compared as numbers)."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", text) if tok != ""]


def strip_suffix(name: str) -> str | None:
    """``name`` without its image suffix, or ``None`` if it has none of :data:`IMAGE_SUFFIXES`."""
    low = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return None


def scan_image_folder(folder: str | os.PathLike) -> dict[str, str]:
    """Find image files under ``folder`` (recursively).

    Args:
        folder: the folder to search.

    Returns:
        ``{id: path}`` in natural sort order, with ``id`` the path relative to ``folder`` without its suffix, using
        ``/`` as separator (``"case01"``, ``"group1/t0"``).

    Raises:
        FileNotFoundError: if ``folder`` is not a folder.
        ValueError: if no image is found, or two files give the same id (e.g. ``a.nii`` and ``a.nii.gz``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"expected a folder of images at '{root}', but it does not exist.")
    found: dict[str, str] = {}
    ignored: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            stem = strip_suffix(name)
            if stem is None:
                if not name.lower().endswith(_COMPANION_SUFFIXES):
                    ignored.append(os.path.join(dirpath, name))
                continue
            rel = Path(dirpath).relative_to(root) / stem
            key = rel.as_posix()
            path = os.path.join(dirpath, name)
            if key in found:
                raise ValueError(f"two image files have the same id '{key}': '{found[key]}' and '{path}'.")
            found[key] = path
    if ignored:
        logger.warning(
            "ignoring %d file(s) without an image suffix %s in '%s': %s",
            len(ignored),
            IMAGE_SUFFIXES,
            root,
            ", ".join(sorted(ignored)[:5]) + (" ..." if len(ignored) > 5 else ""),
        )
    if not found:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in '{root}'.")
    return {k: found[k] for k in sorted(found, key=natural_key)}
