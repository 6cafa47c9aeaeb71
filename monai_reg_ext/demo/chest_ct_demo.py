"""Shared parts of the lung CT bundles' demo-data makers (``paired_ct_lung``, ``unpaired_ct_lung``).

Both makers read the same three real chest CTs (:data:`~monai_reg_ext.demo.chest_ct.CHEST_CT_SOURCES`), store CT
as uint8 in the same HU window, and have the same command line (``--totalsegmentator``, ``--pyradiomics``,
``--output``, ``--check``, ``--quiet``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .chest_ct import load_ct, locate_chest_cts
from .manifest import add_maker_arguments, nifti_image

__all__ = ["HU_MIN", "HU_MAX", "load_chest_cts", "ct_uint8_image", "chest_ct_maker_main"]

HU_MIN, HU_MAX = -1000.0, 200.0
"""Stored intensity window (HU); values outside are clipped."""


def load_chest_cts(
    totalsegmentator: str | os.PathLike, pyradiomics: str | os.PathLike
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Load the three real chest CTs and hash their source files.

    Args:
        totalsegmentator: TotalSegmentator sdist (``.tar.gz``), its folder or the CT (see ``locate_chest_cts``).
        pyradiomics: pyradiomics source folder, its ``data/`` folder or a source tarball.

    Returns:
        ``({name: (hu, affine)}, {name: sha256 of the source file})``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        paths = locate_chest_cts(totalsegmentator, pyradiomics, tmp)
        cts = {name: load_ct(path) for name, path in paths.items()}
        source_sha = {name: hashlib.sha256(Path(path).read_bytes()).hexdigest() for name, path in paths.items()}
    return cts, source_sha


def ct_uint8_image(hu: np.ndarray, affine: np.ndarray) -> tuple[Any, np.ndarray]:
    """uint8 NIfTI of ``hu`` clipped to [HU_MIN, HU_MAX], with slope/intercept giving HU (``xyzt_units`` unset, as
    in the shipped files); also the HU values the file stores."""
    slope = (HU_MAX - HU_MIN) / 255.0
    q = np.round((np.clip(hu, HU_MIN, HU_MAX) - HU_MIN) / slope).astype(np.uint8)
    img = nifti_image(q, affine, "CT HU = -1000 + 1200/255 q", units=None)
    img.header.set_slope_inter(slope, HU_MIN)
    return img, HU_MIN + slope * q.astype(np.float32)


def chest_ct_maker_main(
    doc: str,
    default_output: str | os.PathLike,
    generate: Callable[..., Any],
    check: Callable[..., bool],
    argv: Sequence[str] | None = None,
) -> int:
    """Command line of a lung CT demo-data maker: parse ``argv``, then run ``check`` or ``generate``.

    Args:
        doc: the maker's module docstring (its first paragraph is the description; shown unwrapped).
        default_output: the bundle's ``data`` folder.
        generate: ``(totalsegmentator, pyradiomics, output, verbose=...)``.
        check: ``(totalsegmentator, pyradiomics, output, verbose=...) -> bool``.
        argv: arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0, or 1 when ``--check`` finds a difference.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--totalsegmentator", required=True, help="TotalSegmentator sdist (.tar.gz), its folder or the CT")
    ap.add_argument("--pyradiomics", required=True, help="pyradiomics source folder or its data/ folder")
    add_maker_arguments(ap, default_output)
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.totalsegmentator, args.pyradiomics, args.output, verbose=not args.quiet) else 1
    generate(args.totalsegmentator, args.pyradiomics, args.output, verbose=not args.quiet)
    return 0
