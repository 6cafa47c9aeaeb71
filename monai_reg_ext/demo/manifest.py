"""sha256 manifests of generated data: the shared part of the bundles' deterministic demo-data makers.

A maker writes its files with :func:`save_nifti_gz` (same bytes every run), lists their sha256s and its parameters in
``manifest.json``, and offers ``--check``: :func:`check_regeneration` regenerates into a temporary folder with the
recorded parameters and compares the three copies (manifest, regeneration, files on disk) with
:func:`compare_file_hashes`.

The small helpers the makers share live here too: writing (:func:`file_hashes`, :func:`write_json`,
:func:`clear_outputs`, :func:`centred_affine`), parameters (:func:`merge_parameters`, :func:`check_grid_shape`), the
baseline numbers (:func:`binary_dice`, :func:`mean_std`) and the command line (:func:`add_maker_arguments`,
:func:`source_maker_parser`, :func:`synthetic_maker_main`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..reporting import mean_std as summary

__all__ = [
    "sha256_file",
    "compare_file_hashes",
    "nifti_image",
    "save_nifti_gz",
    "package_version",
    "check_regeneration",
    "write_manifest",
    "file_hashes",
    "write_json",
    "folder_bytes",
    "centred_affine",
    "clear_outputs",
    "add_maker_arguments",
    "synthetic_maker_main",
    "synthetic_entry_points",
    "write_synthetic_manifest",
    "source_maker_parser",
    "package_versions",
    "merge_parameters",
    "check_grid_shape",
    "binary_dice",
    "mean_std",
    "split_parameters",
    "start_split_maker",
    "baseline_summary",
    "write_test_pairs",
    "copy_example",
    "finish_maker",
    "check_source_regeneration",
    "source_maker_main",
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


def nifti_image(data: np.ndarray, affine: np.ndarray, descrip: str = "", units: str | None = "mm") -> Any:
    """A ``nibabel.Nifti1Image`` of ``data`` with ``affine`` (4x4, mm) as both qform and sform (code 1).

    ``descrip`` (e.g. "synthetic ...", "real CT ...") is stored in the header, cut to the 79 characters NIfTI allows.
    ``units`` is the spatial unit written to ``xyzt_units``; None leaves the field unset (nibabel's default, 0), as
    some makers' shipped files have it.
    """
    import nibabel as nib

    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    if units is not None:
        img.header.set_xyzt_units(units)
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


def file_hashes(
    output: str | os.PathLike, select: Callable[[Path], bool] | None = None, exclude_manifest: bool = True
) -> dict[str, str]:
    """``{relative path (posix): sha256}`` of the files under ``output``, sorted by path.

    Args:
        output: the data folder.
        select: keep only the files (given as paths relative to ``output``) for which it returns True; all when None.
        exclude_manifest: leave out ``manifest.json`` at the top of ``output``.
    """
    out = Path(output)
    hashes = {}
    for f in sorted(out.rglob("*")):
        rel = f.relative_to(out)
        if not f.is_file() or (exclude_manifest and rel == Path("manifest.json")):
            continue
        if select is None or select(rel):
            hashes[rel.as_posix()] = sha256_file(f)
    return hashes


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON with ``indent`` and a final newline (the layout of the makers' JSON files)."""
    Path(path).write_text(json.dumps(obj, indent=indent) + "\n")


def folder_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the files under ``folder`` (for the makers' "wrote N files (X MB)" line)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def centred_affine(shape: Sequence[int], spacing: float | Sequence[float]) -> np.ndarray:
    """4x4 affine of an axis-aligned grid of ``shape`` voxels with ``spacing`` mm (one value or one per axis) whose
    centre is the world origin."""
    sizes = [float(spacing)] * len(shape) if np.isscalar(spacing) else [float(s) for s in spacing]
    affine = np.diag([*sizes, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, sizes)]
    return affine


def clear_outputs(output: str | os.PathLike, names: Iterable[str]) -> None:
    """Delete the generated entries ``names`` (folders or files) of ``output`` if present, then create ``output``.

    Other content of ``output`` is left alone, so a maker can regenerate into a folder holding hand-written files.
    """
    import shutil

    out = Path(output)
    for name in names:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def add_maker_arguments(parser: argparse.ArgumentParser, default_output: str | os.PathLike) -> None:
    """Add the options every demo-data maker has: ``--output`` (default ``default_output``), ``--check`` and
    ``--quiet``."""
    parser.add_argument("--output", default=str(default_output), help=f"output folder (default {default_output})")
    parser.add_argument(
        "--check", action="store_true", help="regenerate in a temp folder and compare with the manifest"
    )
    parser.add_argument("--quiet", action="store_true")


def source_maker_parser(
    doc: str, default_output: str | os.PathLike, source_help: str, source_required: bool = False
) -> argparse.ArgumentParser:
    """Argument parser of a maker that reads a source: ``--source`` (required, or default None), then the options of
    :func:`add_maker_arguments`; the description is the first paragraph of ``doc``, shown unwrapped. The maker adds
    its parameter options."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    if source_required:
        ap.add_argument("--source", required=True, help=source_help)
    else:
        ap.add_argument("--source", default=None, help=source_help)
    add_maker_arguments(ap, default_output)
    return ap


def synthetic_maker_main(
    doc: str,
    default_output: str | os.PathLike,
    generate: Callable[..., Any],
    check: Callable[..., bool],
    defaults: Mapping[str, Any],
    int_options: Sequence[str],
    argv: Sequence[str] | None = None,
) -> int:
    """Command line of a maker that needs no source files: parse ``argv``, then run ``check`` or ``generate``.

    Options: those of :func:`add_maker_arguments`, then ``--<key>`` (underscores as dashes, integer, default
    ``defaults[key]``) for each key of ``int_options``.

    Args:
        doc: the maker's module docstring (its first paragraph is the description).
        default_output: the bundle's ``data`` folder.
        generate: ``(output, {key: value of int_options}, verbose=...)``.
        check: ``(output, verbose=...) -> bool``.
        defaults: the maker's default parameters.
        int_options: parameter keys that get an integer option.
        argv: arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0, or 1 when ``--check`` finds a difference.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add_maker_arguments(ap, default_output)
    for key in int_options:
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=defaults[key])
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.output, verbose=not args.quiet) else 1
    generate(args.output, {k: getattr(args, k) for k in int_options}, verbose=not args.quiet)
    return 0


def synthetic_entry_points(
    doc: str,
    default_output: str | os.PathLike,
    generate: Callable[..., Any],
    defaults: Mapping[str, Any],
    int_options: Sequence[str],
) -> tuple[Callable[..., bool], Callable[..., int]]:
    """The ``check`` and ``main`` functions of a maker that needs no source files and whose
    ``generate(output, params=None, verbose=True)`` writes its data.

    ``check(output, verbose=True)`` regenerates into a temporary folder with the parameters of
    ``output/manifest.json`` and compares the sha256s (:func:`check_regeneration`; True when every file is the
    same); ``main(argv=None)`` is :func:`synthetic_maker_main` with ``doc``, ``default_output``, ``defaults`` and
    ``int_options``.
    """

    def check(output: str | os.PathLike, verbose: bool = True) -> bool:
        """Regenerate into a temporary folder with the parameters in ``output/manifest.json``; compare the sha256s."""
        return check_regeneration(output, lambda tmp, params: generate(tmp, params, verbose=False), verbose)

    def main(argv: Sequence[str] | None = None) -> int:
        """Command line entry point (see the maker's module docstring)."""
        return synthetic_maker_main(doc, default_output, generate, check, defaults, int_options, argv)

    return check, main


def write_synthetic_manifest(
    output: str | os.PathLike,
    generator: str,
    params: Mapping[str, Any],
    modules: Sequence[str],
    select: Callable[[Path], bool],
) -> dict[str, Any]:
    """Write ``output/manifest.json`` (indent 2) of a synthetic data set: ``generator`` (the maker's path),
    ``synthetic: true``, ``parameters``, the ``versions`` of ``modules`` and the sha256 of the files under
    ``output`` that ``select`` keeps (:func:`file_hashes`); return it."""
    manifest = {
        "generator": generator,
        "synthetic": True,
        "parameters": params,
        "versions": package_versions(*modules),
        "files": file_hashes(output, select),
    }
    write_json(Path(output) / "manifest.json", manifest, indent=2)
    return manifest


def package_versions(*modules: str) -> dict[str, str]:
    """``{module: version}`` (see :func:`package_version`) for the manifest's ``versions`` entry."""
    return {m: package_version(m) for m in modules}


def merge_parameters(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated with ``overrides`` (a maker's parameters).

    Raises:
        ValueError: ``overrides`` has a key that ``defaults`` lacks.
    """
    p = {**defaults, **(overrides or {})}
    unknown = set(p) - set(defaults)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; expected keys of {sorted(defaults)}.")
    return p


def check_grid_shape(shape: Sequence[Any]) -> list[int]:
    """``shape`` as a list of ints.

    Raises:
        ValueError: not 3 sizes, or one below 8 voxels.
    """
    sizes = [int(s) for s in shape]
    if len(sizes) != 3 or min(sizes) < 8:
        raise ValueError(f"shape must be 3 sizes >= 8, got {sizes}.")
    return sizes


def binary_dice(a: np.ndarray, b: np.ndarray, empty: float = 1.0) -> float:
    """Dice overlap of two boolean masks; ``empty`` when both are empty."""
    s = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / s if s > 0 else empty


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """``{"mean": ..., "std": ...}`` of ``values``, rounded to 4 decimals (the makers' baseline summaries):
    :func:`monai_reg_ext.reporting.mean_std` without the count, which the shipped manifests do not record."""
    out = summary(values)
    del out["n"]
    return out


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


def split_parameters(counts: Sequence[int], seeds: Sequence[int]) -> dict[str, int]:
    """The split parameters of a maker's defaults: ``n_train``, ``n_val``, ``n_test`` (``counts``), then
    ``seed_train``, ``seed_val``, ``seed_test`` (``seeds``; item ``k`` of a split uses seed ``seed_<split> + k``)."""
    splits = ("train", "val", "test")
    return {
        **{f"n_{s}": int(n) for s, n in zip(splits, counts)},
        **{f"seed_{s}": int(v) for s, v in zip(splits, seeds)},
    }


def start_split_maker(
    defaults: Mapping[str, Any], params: Mapping[str, Any] | None, minimum: Mapping[str, int], verbose: bool = True
) -> tuple[dict[str, Any], Callable[..., None]]:
    """The first steps of a maker's ``generate`` with ``n_<split>`` counts and a 3-D ``shape``: merge the parameters
    (:func:`merge_parameters`), check the shape (:func:`check_grid_shape`) and the counts, and make torch
    deterministic.

    Args:
        defaults: the maker's default parameters.
        params: overrides.
        minimum: ``{split: least n_<split>}``, e.g. ``{"train": 1, "val": 0, "test": 2}``.
        verbose: whether the returned ``say`` prints.

    Returns:
        ``(parameters, say)``: ``say`` is ``print``, or a function that prints nothing.

    Raises:
        ValueError: an unknown parameter, a bad shape, or a count below its minimum.
    """
    import torch

    p = merge_parameters(defaults, params)
    p["shape"] = check_grid_shape(p["shape"])
    if any(p[f"n_{split}"] < least for split, least in minimum.items()):
        need = ", ".join(f"n_{split} >= {least}" for split, least in minimum.items())
        raise ValueError(f"need {need}; got {', '.join(str(p[f'n_{split}']) for split in minimum)}.")
    torch.use_deterministic_algorithms(True)
    return p, print if verbose else _silent


def baseline_summary(pairs: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{kind: {metric: mean_std}}`` over the baseline ``pairs`` (each ``{kind: {metric: value}}``), the metrics
    of the first pair, in its order."""
    return {kind: {k: mean_std([b[kind][k] for b in pairs]) for k in pairs[0][kind]} for kind in kinds}


def write_test_pairs(
    folder: str | os.PathLike,
    pairs: Sequence[Mapping[str, Any]],
    baseline_pairs: Sequence[Mapping[str, Any]],
    kinds: Sequence[str],
    description: str,
) -> dict[str, dict[str, Any]]:
    """Write ``folder/pairs.json`` (``pairs``) and ``folder/baseline.json`` (``description``, the
    :func:`baseline_summary` of ``baseline_pairs`` over ``kinds``, and ``baseline_pairs``); return the summary."""
    write_json(Path(folder) / "pairs.json", pairs)
    summary = baseline_summary(baseline_pairs, kinds)
    write_json(
        Path(folder) / "baseline.json", {"description": description, "summary": summary, "pairs": baseline_pairs}
    )
    return summary


def copy_example(folder: str | os.PathLike, pair: Mapping[str, str], keys: Sequence[str], example: str | os.PathLike):
    """Copy the files ``pair[key]`` (relative to ``folder``) of each of ``keys`` to ``example/<key><suffixes>``
    (``moving_images/case_000.nii.gz`` -> ``example/moving.nii.gz``), creating ``example``."""
    import shutil

    Path(example).mkdir(parents=True, exist_ok=True)
    for key in keys:
        src = Path(folder) / pair[key]
        shutil.copyfile(src, Path(example) / f"{key}{''.join(src.suffixes)}")


def finish_maker(
    output: str | os.PathLike,
    manifest: Mapping[str, Any],
    folders: Sequence[str],
    modules: Sequence[str],
    say: Callable[..., None],
    summary: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Any]:
    """The last steps of a maker's ``generate``: hash the files under the top-level ``folders`` of ``output``, write
    ``output/manifest.json`` (``manifest`` then ``versions`` of ``modules`` and ``files``), ``say`` the baseline
    ``summary`` (from :func:`baseline_summary`) and the size written.

    Returns:
        The manifest written.
    """
    out = Path(output)
    files = file_hashes(out, lambda rel: rel.parts[0] in folders)
    written = {**manifest, "versions": package_versions(*modules), "files": files}
    write_json(out / "manifest.json", written)
    if summary is not None:
        say("baseline (mean +- std over test pairs):")
        for kind, vals in summary.items():
            say(f"  {kind}: " + ", ".join(f"{k} {v['mean']:.4f} +- {v['std']:.4f}" for k, v in vals.items()))
    say(f"wrote {len(files)} files to {out} ({folder_bytes(out) / 1e6:.2f} MB)")
    return written


def check_source_regeneration(
    generate: Callable[..., Mapping[str, Any]], source: Any, output: str | os.PathLike, verbose: bool = True
) -> bool:
    """:func:`check_regeneration` of a maker whose ``generate(source, output, params, verbose=...)`` reads
    ``source``."""
    return check_regeneration(output, lambda tmp, params: generate(source, tmp, params, verbose=False), verbose)


def source_maker_main(
    doc: str,
    default_output: str | os.PathLike,
    source_help: str,
    generate: Callable[..., Any],
    check: Callable[..., bool],
    defaults: Mapping[str, Any],
    options: Mapping[str, str | None],
    source_required: bool = False,
    argv: Sequence[str] | None = None,
) -> int:
    """Command line of a maker that reads a source: parse ``argv``, then run ``check`` or ``generate``.

    Options: those of :func:`source_maker_parser`, then ``--<key>`` (underscores as dashes, default
    ``defaults[key]``, help ``options[key]``) for each key of ``options``: a list default takes as many values of the
    type of its first element, a scalar one value of its type.

    Args:
        doc: the maker's module docstring (its first paragraph is the description).
        default_output: the bundle's ``data`` folder.
        source_help: help of ``--source``.
        generate: ``(source, output, {key: value of options}, verbose=...)``.
        check: ``(source, output, verbose=...) -> bool``.
        defaults: the maker's default parameters.
        options: ``{parameter key: help or None}``.
        source_required: ``--source`` has no default.
        argv: arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0, or 1 when ``--check`` finds a difference.
    """
    ap = source_maker_parser(doc, default_output, source_help, source_required)
    for key, help_text in options.items():
        value = defaults[key]
        many = isinstance(value, (list, tuple))
        kind = type(value[0]) if many else type(value)
        flag = f"--{key.replace('_', '-')}"
        ap.add_argument(flag, type=kind, nargs=len(value) if many else None, default=value, help=help_text)
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.source, args.output, verbose=not args.quiet) else 1
    params = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in vars(args).items() if k in options}
    generate(args.source, args.output, params, verbose=not args.quiet)
    return 0
