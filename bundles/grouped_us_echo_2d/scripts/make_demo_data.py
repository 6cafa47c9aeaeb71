"""Deterministic demo data for the ``grouped_us_echo_2d`` bundle, made from a REAL echocardiography cine.

What is real: ``color3d_jpeg_baseline.dcm`` from the pydicom-data package (MIT), a 2D ultrasound cine of the heart
(120 frames of 480x640 RGB, JPEG baseline, 33.333 ms per frame, SonoSite "Turbo", apical view, in-plane pixel size
0.0510 cm given by its Sequence of Ultrasound Regions). Nothing is synthetic: every frame written here is that cine
converted to grey levels, cropped to its imaging region and averaged in 4x4 blocks. There are no labels.

Other real ultrasound files in pydicom's test data were examined and NOT used: ``examples_ybr_color.dcm`` is the first
30 frames of this same cine, rescaled (pydicom's ``test_files/README.txt``), so it would leak test frames into
training; ``gdcm-US-ALOKA-16.dcm`` is a single frame (no cine, so no group). See ``docs/data.md``.

Usage (from the repository root; pydicom, pydicom-data and pillow are optional dependencies of this script only)::

    pip install --target downloads/pyd pydicom pydicom-data pillow
    PYTHONPATH=downloads/pyd python bundles/grouped_us_echo_2d/scripts/make_demo_data.py
    PYTHONPATH=downloads/pyd python bundles/grouped_us_echo_2d/scripts/make_demo_data.py --check   # compare sha256

``--source`` is a path to ``color3d_jpeg_baseline.dcm``; by default it is found with ``pydicom.data.get_testdata_file``.

Output layout (DeepReg "grouped" layout; DDF convention in ``docs/conventions.md``)::

    data/{train,val,test}/images/echo_tXXX/frame_YYY.nii.gz   uint8 (96, 128) = (rows, columns), 2.042 mm pixels
    data/test/pairs.json                                       a few test pairs for the inference config
    data/example/{moving,fixed}.nii.gz                         = test pair 0
    data/manifest.json                                         sha256 of every file + parameters + source hash

A group is a run of ``group_size`` consecutive frames (``echo_tXXX`` starts at frame XXX). Groups are split by time:
the first ``n_train`` groups train, the next ``n_val`` validate, the last ``n_test`` test (disjoint time ranges of the
one cine: held out in time, NOT another patient).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_reg_ext.demo.manifest import (
    clear_outputs,
    compare_file_hashes,
    file_hashes,
    folder_bytes,
    merge_parameters,
    nifti_image,
    package_version,
    save_nifti_gz,
    source_maker_parser,
    write_json,
)

__all__ = ["DEFAULTS", "SOURCE_FILE", "load_cine", "frames_to_grid", "generate", "check", "main"]

SOURCE_FILE = "color3d_jpeg_baseline.dcm"

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "region": [31, 415, 84, 596],  # rows [r0, r1), columns [c0, c1) of the DICOM ultrasound region (384 x 512 pixels)
    "block": 4,  # block-average factor: 384 x 512 -> 96 x 128
    "chroma_threshold": 40,  # pixels with max(RGB) - min(RGB) above this are coloured overlays (set to 0)
    "group_size": 12,  # frames per group (0.4 s at 30 frames/s)
    "n_train": 6,  # groups 0-5: frames 0-71
    "n_val": 2,  # groups 6-7: frames 72-95
    "n_test": 2,  # groups 8-9: frames 96-119
    "test_pairs": [[0, 6], [6, 0], [3, 9]],  # (moving, fixed) frame offsets inside each test group for pairs.json
}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _find_source(source: str | None) -> Path:
    if source:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"--source: {source!r} is not a file.")
        return path
    try:
        from pydicom.data import get_testdata_file  # optional dependency of this script only
    except ImportError as err:
        raise ValueError(
            "--source not given and pydicom is not importable; `pip install --target downloads/pyd pydicom "
            "pydicom-data pillow` and run with PYTHONPATH=downloads/pyd, or pass --source "
            "path/to/color3d_jpeg_baseline.dcm."
        ) from err
    found = get_testdata_file(SOURCE_FILE)
    if found is None:
        raise FileNotFoundError(f"pydicom cannot find {SOURCE_FILE}; install pydicom-data (MIT).")
    return Path(found)


def load_cine(source: str | None) -> tuple[np.ndarray, dict]:
    """Read the cine as RGB uint8 ``(T, 480, 640, 3)`` (pydicom converts YBR_FULL_422 to RGB) and its geometry.

    Returns:
        ``(frames, info)`` where info holds the sha256 of the DICOM file, the frame time (ms), the ultrasound region
        and its physical pixel size (cm).
    """
    import pydicom

    path = _find_source(source)
    raw = path.read_bytes()
    ds = pydicom.dcmread(path)
    frames = np.asarray(ds.pixel_array)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: expected an RGB cine (T, H, W, 3), got {frames.shape}.")
    region = ds.SequenceOfUltrasoundRegions[0]
    info = {
        "file": path.name,
        "sha256": _sha256_bytes(raw),
        "frames": int(frames.shape[0]),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "photometric_interpretation": str(ds.PhotometricInterpretation),
        "frame_time_ms": float(ds.FrameTime),
        "manufacturer": str(ds.get("Manufacturer", "")),
        "model": str(ds.get("ManufacturerModelName", "")),
        "us_region_xy": [
            int(region.RegionLocationMinX0),
            int(region.RegionLocationMinY0),
            int(region.RegionLocationMaxX1),
            int(region.RegionLocationMaxY1),
        ],
        "physical_delta_cm": [float(region.PhysicalDeltaY), float(region.PhysicalDeltaX)],
        "physical_units": [int(region.PhysicalUnitsYDirection), int(region.PhysicalUnitsXDirection)],  # 3 = cm
        "pydicom": pydicom.__version__,
    }
    return frames, info


def frames_to_grid(frames: np.ndarray, p: dict) -> np.ndarray:
    """RGB frames -> grey uint8 ``(T, rows / block, columns / block)``.

    Luminance ``0.299 R + 0.587 G + 0.114 B``; coloured overlay pixels (chroma above the threshold, e.g. the green
    marker dot) set to 0; crop to the ultrasound region; mean over ``block x block`` pixel blocks; round.
    """
    rgb = frames.astype(np.float64)
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    chroma = frames.max(-1).astype(np.int16) - frames.min(-1).astype(np.int16)
    grey[chroma > int(p["chroma_threshold"])] = 0.0
    r0, r1, c0, c1 = (int(v) for v in p["region"])
    b = int(p["block"])
    crop = grey[:, r0:r1, c0:c1]
    t, h, w = crop.shape
    if h % b or w % b:
        raise ValueError(f"region {p['region']} ({h}x{w}) is not divisible by block {b}.")
    small = crop.reshape(t, h // b, b, w // b, b).mean(axis=(2, 4))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _nifti(data: np.ndarray, spacing_mm: float, descrip: str) -> nib.Nifti1Image:
    affine = np.diag([spacing_mm, spacing_mm, 1.0, 1.0])
    return nifti_image(data, affine, descrip)


def generate(source: str | None, output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the demo data set into ``output`` (its splits, ``example`` and ``manifest.json`` are replaced).

    Args:
        source: path of ``color3d_jpeg_baseline.dcm`` or None (found through pydicom-data).
        output: destination folder.
        params: overrides of :data:`DEFAULTS`.
        verbose: print progress.
    """
    p = merge_parameters(DEFAULTS, params)
    say = print if verbose else (lambda *a, **k: None)
    frames, info = load_cine(source)
    grid = frames_to_grid(frames, p)
    n_groups = int(p["n_train"]) + int(p["n_val"]) + int(p["n_test"])
    size = int(p["group_size"])
    if n_groups * size > grid.shape[0]:
        raise ValueError(f"{n_groups} groups of {size} frames need {n_groups * size} frames; the cine has {len(grid)}.")
    if int(info["physical_units"][0]) != 3 or int(info["physical_units"][1]) != 3:
        raise ValueError(f"expected the ultrasound region in cm (units code 3), got {info['physical_units']}.")
    spacing = [10.0 * d * int(p["block"]) for d in info["physical_delta_cm"]]
    if abs(spacing[0] - spacing[1]) > 1e-9:
        raise ValueError(f"non-square pixels {spacing} are not supported by this script.")
    spacing_mm = float(spacing[0])
    say(f"source {info['file']} {frames.shape} -> {grid.shape} uint8, {spacing_mm:.4f} mm pixels")

    out = Path(output)
    clear_outputs(out, ("train", "val", "test", "example", "manifest.json"))

    splits = ["train"] * int(p["n_train"]) + ["val"] * int(p["n_val"]) + ["test"] * int(p["n_test"])
    groups: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for g, split in enumerate(splits):
        start = g * size
        name = f"echo_t{start:03d}"
        for t in range(start, start + size):
            save_nifti_gz(
                _nifti(grid[t], spacing_mm, f"real echo cine frame {t}, {info['file']}"),
                out / split / "images" / name / f"frame_{t:03d}.nii.gz",
            )
        groups[split].append({"group": name, "frames": [start, start + size - 1]})
        say(f"  {split}/images/{name}: frames {start}-{start + size - 1}")

    pairs = []
    for grp in groups["test"]:
        start = grp["frames"][0]
        for mo, fo in p["test_pairs"]:
            pairs.append(
                {
                    "moving": f"images/{grp['group']}/frame_{start + int(mo):03d}.nii.gz",
                    "fixed": f"images/{grp['group']}/frame_{start + int(fo):03d}.nii.gz",
                }
            )
    write_json(out / "test" / "pairs.json", pairs)
    (out / "example").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "test" / pairs[0]["moving"], out / "example" / "moving.nii.gz")
    shutil.copyfile(out / "test" / pairs[0]["fixed"], out / "example" / "fixed.nii.gz")

    files = file_hashes(out, lambda rel: rel.parts[0] in ("train", "val", "test", "example"))
    manifest = {
        "generator": "bundles/grouped_us_echo_2d/scripts/make_demo_data.py",
        "source": {
            "description": "real echocardiography cine color3d_jpeg_baseline.dcm from pydicom-data (MIT)",
            **info,
        },
        "parameters": p,
        "grid": {"shape": list(grid.shape[1:]), "spacing_mm": [spacing_mm, spacing_mm], "axes": ["row", "column"]},
        "groups": groups,
        "versions": {"numpy": np.__version__, "nibabel": nib.__version__, "pillow": package_version("PIL")},
        "files": files,
    }
    write_json(out / "manifest.json", manifest)
    say(f"wrote {len(files)} files to {out} ({folder_bytes(out) / 1e6:.2f} MB)")
    return manifest


def check(source: str | None, output: str | Path, verbose: bool = True) -> bool:
    """Regenerate into a temporary folder with the parameters in ``output/manifest.json``; compare the sha256s.

    Returns:
        True when every file listed in the manifest is reproduced byte for byte (and no file is missing or extra).
    """
    manifest_path = Path(output) / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"--check: no manifest at {manifest_path}; generate the data first.")
    manifest = json.loads(manifest_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(source, tmp, manifest["parameters"], verbose=False)
    ok = fresh["source"]["sha256"] == manifest["source"]["sha256"]
    if not ok and verbose:
        print(f"MISMATCH source sha256: manifest {manifest['source']['sha256']}, found {fresh['source']['sha256']}")
    return compare_file_hashes(manifest["files"], fresh["files"], output, verbose) and ok


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    default_out = Path(__file__).resolve().parents[1] / "data"
    ap = source_maker_parser(__doc__, default_out, f"path of {SOURCE_FILE} (default: found through pydicom-data)")
    for key in ("group_size", "n_train", "n_val", "n_test"):
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=DEFAULTS[key])
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.source, args.output, verbose=not args.quiet) else 1
    params = {k: getattr(args, k) for k in ("group_size", "n_train", "n_val", "n_test")}
    generate(args.source, args.output, params, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
