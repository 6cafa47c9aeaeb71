"""Shared parts of the lung CT bundles' demo-data makers (``paired_ct_lung``, ``unpaired_ct_lung``).

Both makers read the same three real chest CTs (:data:`~monai_reg_ext.demo.chest_ct.CHEST_CT_SOURCES`), store CT
as uint8 in the same HU window and masks as uint8, start and end their ``generate`` alike
(:func:`start_chest_ct_maker`, :func:`finish_chest_ct_maker`), and have the same ``check`` and command line
(``--totalsegmentator``, ``--pyradiomics``, ``--output``, ``--check``, ``--quiet``; :func:`chest_ct_entry_points`).

Usage of a maker (from the repository root; ``<bundle>`` is ``paired_ct_lung`` or ``unpaired_ct_lung``)::

    pip download --no-deps --no-binary :all: TotalSegmentator==2.18.0 -d downloads/ts_sdist
    pip download --no-clean --no-deps --no-binary :all: pyradiomics==3.1.0 -d downloads/pyr  # fails to build, but
    #   leaves the source in $TMPDIR/pip-download-*/pyradiomics_*/ : copy its data/ folder to downloads/pyradiomics_data
    python bundles/<bundle>/scripts/make_demo_data.py \\
        --totalsegmentator downloads/ts_sdist/totalsegmentator-2.18.0.tar.gz \\
        --pyradiomics downloads/pyradiomics_data --output bundles/<bundle>/data
    python bundles/<bundle>/scripts/make_demo_data.py ... --check   # regenerate in a temp dir, compare sha256
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .chest_ct import load_ct, locate_chest_cts
from .manifest import add_maker_arguments, check_regeneration, nifti_image, package_versions, write_manifest

__all__ = [
    "HU_MIN",
    "HU_MAX",
    "load_chest_cts",
    "ct_uint8_image",
    "mask_image",
    "start_chest_ct_maker",
    "finish_chest_ct_maker",
    "chest_ct_maker_main",
    "chest_ct_entry_points",
]

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


def mask_image(mask: np.ndarray, affine: np.ndarray, descrip: str) -> Any:
    """uint8 NIfTI of a mask (or any array cast to uint8) with ``xyzt_units`` unset, as in the shipped files."""
    return nifti_image(mask.astype(np.uint8), affine, descrip, units=None)


def start_chest_ct_maker(
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    totalsegmentator: str | os.PathLike,
    pyradiomics: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """The first steps of a lung maker's ``generate``: ``defaults`` updated with ``params``, one torch thread (the
    shipped files were made so), and the real CTs (:func:`load_chest_cts`).

    Returns:
        ``(parameters, {name: (hu, affine)}, {name: sha256 of the source file})``.
    """
    import torch

    p = {**defaults, **(params or {})}
    torch.set_num_threads(1)
    cts, source_sha = load_chest_cts(totalsegmentator, pyradiomics)
    return p, cts, source_sha


def finish_chest_ct_maker(output: str | os.PathLike, manifest: dict[str, Any]) -> dict[str, Any]:
    """The last step of a lung maker's ``generate``: add the package ``versions`` to ``manifest`` and write it with
    every file's sha256 (:func:`~monai_reg_ext.demo.manifest.write_manifest`, indent 1); return it."""
    manifest["versions"] = package_versions("numpy", "scipy", "torch", "nibabel", "itk")
    return write_manifest(output, manifest, indent=1)


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


def chest_ct_entry_points(
    doc: str, default_output: str | os.PathLike, generate: Callable[..., Any]
) -> tuple[Callable[..., bool], Callable[..., int]]:
    """The ``check`` and ``main`` functions of a lung CT maker whose
    ``generate(totalsegmentator, pyradiomics, output, params=None, verbose=True)`` writes its data.

    ``check(totalsegmentator, pyradiomics, output, verbose=True)`` regenerates into a temporary folder with the
    parameters of ``output/manifest.json`` and compares the sha256s (True when every file is the same);
    ``main(argv=None)`` is :func:`chest_ct_maker_main` with ``doc`` and ``default_output``.
    """

    def check(
        totalsegmentator: str | os.PathLike, pyradiomics: str | os.PathLike, output: str | os.PathLike, verbose=True
    ) -> bool:
        """Regenerate into a temporary folder with the parameters in ``output/manifest.json``; compare the sha256s."""
        return check_regeneration(
            output, lambda tmp, params: generate(totalsegmentator, pyradiomics, tmp, params, verbose=False), verbose
        )

    def main(argv: Sequence[str] | None = None) -> int:
        """Command line entry point (see the module docstring)."""
        return chest_ct_maker_main(doc, default_output, generate, check, argv)

    return check, main
