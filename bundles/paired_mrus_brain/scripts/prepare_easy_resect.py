"""Arrange the public EASY-RESECT data set (the data of DeepReg's ``paired_mrus_brain`` demo) in this bundle's layout.

EASY-RESECT (Xiao et al. 2017, 2019; https://archive.sigma2.no, DOI 10.11582/2020.00025, ``EASY-RESECT.zip``) holds,
for 22 low-grade glioma patients, the pre-operative T1 (and FLAIR) MR and the 3D intra-operative ultrasound acquired
before resection, as NIfTI volumes in one world frame, and MNI ``.tag`` files of corresponding MR/US landmarks.
Expected layout (the zip itself or its extracted folder; files are found by name anywhere below the root)::

    EASY-RESECT/NIFTI/Case1/Case1-T1.nii(.gz)          pre-operative T1 MR        -> moving
    EASY-RESECT/NIFTI/Case1/Case1-US-before.nii(.gz)   intra-operative US         -> fixed
    .../Case1-MRI-beforeUS.tag                          landmarks "x_mr y_mr z_mr x_us y_us z_us" in world mm

(DeepReg's own ``demo_data.py`` put the T1 in ``fixed_images`` and the US in ``moving_images``; this bundle
registers MR -> US as the issue asks; pass ``--us-to-mr`` for DeepReg's direction.)

Output (the layout of ``make_demo_data.py``, so every config and ``evaluate.py`` run unchanged)::

    OUT/{train,val,test}/moving_images/caseNN.nii.gz    float32, resampled onto the output grid
    OUT/{train,val,test}/fixed_images/caseNN.nii.gz
    OUT/{train,val,test}/{moving,fixed}_landmarks/caseNN.json   {"space": "physical", "points": ...} (RAS mm)
    OUT/{val,test}/pairs.json

Output grid: isotropic ``--spacing`` mm, axes as RAS, covering the ultrasound's non-zero voxels plus ``--margin`` mm
(both images are resampled onto it in world coordinates, trilinear). Split as DeepReg: cases sorted by number, the
first ``round(0.25 N)`` to test, the next ``--n-val`` to validation, the rest to training.

Usage::

    python bundles/paired_mrus_brain/scripts/prepare_easy_resect.py --source EASY-RESECT.zip --output /data/resect
    python -m monai.bundle run training --config_file bundles/paired_mrus_brain/configs/train.json \\
        --dataset_dir /data/resect --spatial_size "[112, 112, 112]"
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["read_tag_file", "find_cases", "output_grid", "resample", "prepare", "main"]

_CASE = re.compile(r"case\s*0*(\d+)", re.IGNORECASE)


def read_tag_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an MNI ``.tag`` file of two volumes.

    Format: a header (``MNI Tag Point File``, ``Volumes = 2;``, comments) then ``Points =`` followed by one line per
    point, ``x1 y1 z1 x2 y2 z2`` optionally followed by other values or a quoted label, the last one ending with
    ``;``. Coordinates are world mm (MINC world = RAS, the frame of the NIfTI affines).

    Returns:
        ``(first (N, 3), second (N, 3))`` world mm: the first volume's points (MR) and the second's (US).

    Raises:
        ValueError: naming the file when there is no ``Points =`` section, a line has fewer than 6 numbers, or the
            file declares other than 2 volumes.
    """
    path = Path(path)
    text = path.read_text(errors="replace")
    vol = re.search(r"Volumes\s*=\s*(\d+)", text)
    if vol and int(vol.group(1)) != 2:
        raise ValueError(f"tag file {path}: expected 'Volumes = 2;' (MR and US points), got {vol.group(0)!r}.")
    m = re.search(r"Points\s*=", text)
    if not m:
        raise ValueError(f"tag file {path}: no 'Points =' section; expected an MNI tag point file.")
    body = text[m.end() :].split(";")[0]
    rows = []
    for i, line in enumerate(body.splitlines()):
        line = re.sub(r'"[^"]*"', " ", line).strip()
        if not line:
            continue
        values = line.split()
        try:
            nums = [float(v) for v in values[:6]]
        except ValueError:
            nums = []
        if len(nums) < 6:
            raise ValueError(f"tag file {path}: point line {i} {line!r} has fewer than 6 numbers (x1 y1 z1 x2 y2 z2).")
        rows.append(nums)
    if not rows:
        raise ValueError(f"tag file {path}: no points after 'Points ='.")
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, :3], arr[:, 3:6]


def _case_number(name: str) -> int | None:
    m = _CASE.search(name)
    return int(m.group(1)) if m else None


def find_cases(root: str | Path) -> dict[int, dict[str, Path]]:
    """``{case number: {"mr": T1, "us": US-before, "tag": MRI-beforeUS.tag}}`` of every complete case below ``root``.

    Raises:
        ValueError: when no complete case is found (listing what was found).
    """
    found: dict[int, dict[str, Path]] = {}
    for f in sorted(Path(root).rglob("*")):
        if not f.is_file() or "__MACOSX" in f.parts:
            continue
        name = f.name.lower()
        case = _case_number(f.name)
        if case is None:
            continue
        if name.endswith((".nii", ".nii.gz")) and "-t1" in name:
            found.setdefault(case, {})["mr"] = f
        elif name.endswith((".nii", ".nii.gz")) and "-us-before" in name:
            found.setdefault(case, {})["us"] = f
        elif name.endswith(".tag") and "beforeus" in name.replace("-", "").replace("_", ""):
            found.setdefault(case, {})["tag"] = f
    complete = {k: v for k, v in sorted(found.items()) if {"mr", "us", "tag"} <= set(v)}
    if not complete:
        partial = {k: sorted(v) for k, v in found.items()}
        raise ValueError(
            f"--source {root}: no complete case (CaseN-T1.nii, CaseN-US-before.nii, CaseN-MRI-beforeUS.tag); "
            f"found {partial or 'nothing'}."
        )
    return complete


def output_grid(us: nib.Nifti1Image, spacing: float, margin: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """RAS grid of ``spacing`` mm around the ultrasound's non-zero voxels plus ``margin`` mm: ``(affine, shape)``."""
    data = np.asarray(us.dataobj)
    idx = np.argwhere(data > 0)
    if idx.size == 0:
        raise ValueError(f"ultrasound {us.get_filename()}: all voxels are zero.")
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    lo, hi = idx.min(0).astype(np.float64), idx.max(0).astype(np.float64)
    world = (us.affine[:3, :3] @ (lo + corners * (hi - lo)).T).T + us.affine[:3, 3]
    wlo, whi = world.min(0) - margin, world.max(0) + margin
    shape = tuple(int(n) for n in np.ceil((whi - wlo) / spacing).astype(int) + 1)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = wlo
    return affine, shape


def resample(img: nib.Nifti1Image, affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Trilinear resampling of ``img`` onto the grid ``(affine, shape)`` in world coordinates (0 outside)."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{img.get_filename()}: expected a 3-D volume, got shape {data.shape}.")
    m = np.linalg.inv(img.affine) @ affine
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")).reshape(3, -1)
    coords = m[:3, :3] @ grid + m[:3, 3:4]
    return ndimage.map_coordinates(data, coords, order=1, mode="constant", cval=0.0).reshape(tuple(shape))


def _write_points(points: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = [[round(float(v), 4) for v in p] for p in points]
    path.write_text(json.dumps({"space": "physical", "points": pts}) + "\n")


def prepare(
    source: str | Path, output: str | Path, spacing: float = 1.0, margin: float = 5.0, n_val: int = 2, us_to_mr=False
) -> dict:
    """Convert EASY-RESECT (zip or folder) into ``output``; return ``{split: [case numbers]}``."""
    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file() and zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                zf.extractall(tmp)
            root = Path(tmp)
        elif source.is_dir():
            root = source
        else:
            raise ValueError(f"--source: expected the EASY-RESECT zip or its extracted folder, got {str(source)!r}.")
        cases = find_cases(root)
        numbers = sorted(cases)
        n_test = round(0.25 * len(numbers))
        splits = {
            "test": numbers[:n_test],
            "val": numbers[n_test : n_test + n_val],
            "train": numbers[n_test + n_val :],
        }
        out = Path(output)
        for split in ("train", "val", "test"):
            if (out / split).exists():
                shutil.rmtree(out / split)
        for split, nums in splits.items():
            pairs = []
            for n in nums:
                mr, us = nib.load(str(cases[n]["mr"])), nib.load(str(cases[n]["us"]))
                affine, shape = output_grid(us, spacing, margin)
                mr_pts, us_pts = read_tag_file(cases[n]["tag"])
                images = {"moving": resample(mr, affine, shape), "fixed": resample(us, affine, shape)}
                points = {"moving": mr_pts, "fixed": us_pts}
                if us_to_mr:
                    images = {"moving": images["fixed"], "fixed": images["moving"]}
                    points = {"moving": us_pts, "fixed": mr_pts}
                name = f"case{n:02d}"
                for role in ("moving", "fixed"):
                    (out / split / f"{role}_images").mkdir(parents=True, exist_ok=True)
                    nib.save(
                        nib.Nifti1Image(images[role], affine), str(out / split / f"{role}_images" / f"{name}.nii.gz")
                    )
                    _write_points(points[role], out / split / f"{role}_landmarks" / f"{name}.json")
                pairs.append(
                    {
                        "moving": f"moving_images/{name}.nii.gz",
                        "fixed": f"fixed_images/{name}.nii.gz",
                        "moving_landmarks": f"moving_landmarks/{name}.json",
                        "fixed_landmarks": f"fixed_landmarks/{name}.json",
                    }
                )
                print(f"{split}/{name}: grid {shape} at {spacing} mm, {len(mr_pts)} landmarks")
            if split != "train" and pairs:
                (out / split / "pairs.json").write_text(json.dumps(pairs, indent=2) + "\n")
    return splits


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="EASY-RESECT.zip or its extracted folder")
    ap.add_argument("--output", required=True)
    ap.add_argument("--spacing", type=float, default=1.0, help="output voxel size in mm")
    ap.add_argument("--margin", type=float, default=5.0, help="mm around the ultrasound's non-zero voxels")
    ap.add_argument("--n-val", type=int, default=2)
    ap.add_argument("--us-to-mr", action="store_true", help="DeepReg's direction: US moving, MR fixed")
    args = ap.parse_args(argv)
    prepare(args.source, args.output, args.spacing, args.margin, args.n_val, args.us_to_mr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
