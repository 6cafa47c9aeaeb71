"""Deterministic demo pairs for ``classical_ct_headneck_affine``: a real CT and a copy under a known random affine.

What is real: the TotalSegmentator CT head template (``totalsegmentator/resources/ct_brain_atlas_1mm.nii.gz``,
202x202x179 voxels of 1 mm, skull-stripped, HU) and, for the 2D variant, the real head CT slice ``693_UNCR.dcm`` of
pydicom-data (512x512, 0.4785 mm, skull included). What is synthetic: the moving image of each pair is the fixed image
under a seeded random affine (DeepReg's scheme: the corners of the normalised ``[-1, 1]`` box moved by
``U(-scale, scale)``); the labels are **thresholds**, not segmentations (3D: brain parenchyma ``20 < HU < 80`` and
CSF ``HU < 15`` inside the brain mask; 2D: bone ``HU > 300`` and brain/soft tissue ``0 < HU < 80`` inside the head).
See ``bundles/classical_ct_headneck_affine/docs/data.md``.

Usage (from the repository root)::

    pip download --no-deps TotalSegmentator==2.18.0 -d downloads/ts
    pip download --no-deps pydicom-data -d downloads/pyd          # 2D slice; reading it needs pydicom
    python bundles/classical_ct_headneck_affine/scripts/make_demo_data.py \\
        --ct downloads/ts/totalsegmentator-2.18.0-py3-none-any.whl \\
        --slice downloads/pyd/pydicom_data-1.0.0-py3-none-any.whl --output bundles/classical_ct_headneck_affine/data

``--ct`` is the TotalSegmentator wheel or a NIfTI volume in HU; ``--slice`` is the pydicom-data wheel, a ``.dcm``
file or a 2D NIfTI in HU (omit it to skip the 2D pair). Output (affine convention: ``docs/conventions.md``)::

    data/{3d,2d}/{fixed,moving}.nii.gz               int16 HU
    data/{3d,2d}/{fixed,moving}_label.nii.gz         uint8 one-hot, channels last
    data/pairs.json                                  pairs, HU window, true theta (fixed voxel -> moving voxel)
    data/manifest.json                               sha256 of every file + generator parameters
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import affine_to_ddf, warp_image
from monai_reg_ext.io import save_image

__all__ = ["random_affine_theta", "invert_theta", "make_pair", "main"]

CT_MEMBER = "totalsegmentator/resources/ct_brain_atlas_1mm.nii.gz"
SLICE_MEMBER = "data_store/data/693_UNCR.dcm"
SCALE = 0.2  # DeepReg's classical_ct_headneck_affine: random affine of scale 0.2
SEEDS = {"3d": 1, "2d": 2}
MARGIN = 6  # voxels kept around the head when cropping


def random_affine_theta(size: tuple[int, ...], scale: float, seed: int) -> np.ndarray:
    """Random affine ``theta = [A | t]`` (voxel indices, origin at voxel 0) as DeepReg draws it.

    The ``D + 1`` corners ``-1`` and ``e_k`` of the normalised box ``[-1, 1]^D`` (centred on the grid, half extents
    ``(S - 1) / 2``) are each moved by ``U(-scale, scale)`` per coordinate; the affine mapping the old corners to the
    new ones is converted to voxel indices.

    Returns:
        ``(D, D + 1)`` float64 array: fixed voxel ``p`` corresponds to moving voxel ``A p + t``.
    """
    ndim = len(size)
    rng = np.random.default_rng(seed)
    old = -np.ones((ndim + 1, ndim))
    for k in range(ndim):
        old[k + 1, k] = 1.0
    new = old + rng.uniform(-scale, scale, size=old.shape)
    old_h = np.concatenate([old, np.ones((ndim + 1, 1))], axis=1)
    m = np.linalg.solve(old_h, new).T  # (D, D + 1): q' = A_n q + t_n
    a_n, t_n = m[:, :ndim], m[:, ndim]
    c = (np.asarray(size, dtype=np.float64) - 1) / 2.0
    h = np.maximum(c, 0.5)
    a = h[:, None] * a_n / h[None, :]
    t = c - a @ c + h * t_n
    return np.concatenate([a, t[:, None]], axis=1)


def invert_theta(theta: np.ndarray) -> np.ndarray:
    """Inverse of ``[A | t]``: ``[A^-1 | -A^-1 t]``."""
    ndim = theta.shape[0]
    a_inv = np.linalg.inv(theta[:, :ndim])
    return np.concatenate([a_inv, (-a_inv @ theta[:, ndim])[:, None]], axis=1)


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Downsample by averaging ``factor``-wide blocks along every axis (trailing remainders dropped)."""
    shape = tuple(s // factor for s in x.shape)
    x = x[tuple(slice(0, s * factor) for s in shape)]
    view = x.reshape([v for s in shape for v in (s, factor)])
    return view.mean(axis=tuple(range(1, 2 * x.ndim, 2)))


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    biggest = 1 + int(np.argmax(ndimage.sum(mask, lab, index=range(1, n + 1))))
    return ndimage.binary_fill_holes(lab == biggest)


def _crop(hu: np.ndarray, head: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.argwhere(head)
    lo = np.maximum(idx.min(0) - MARGIN, 0)
    hi = np.minimum(idx.max(0) + MARGIN + 1, head.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    shift = np.eye(affine.shape[0])
    shift[:-1, -1] = lo
    return hu[sl], head[sl], affine @ shift


def _fixed_image(
    hu: np.ndarray, labels: list[np.ndarray], affine: np.ndarray, window: list[float], names: list[str], padding: float
) -> dict:
    """A pair's fixed image: int16 HU, uint8 labels ``(L, *S)``, affine, HU window, label names, value outside."""
    return {
        "hu": hu,
        "labels": np.stack(labels).astype(np.uint8),
        "affine": affine,
        "window": window,
        "label_names": names,
        "padding": padding,
    }


def prepare_volume(hu: np.ndarray, affine: np.ndarray) -> dict:
    """The 3D fixed image: the skull-stripped CT head template at 2 mm, cropped to the brain; threshold labels."""
    hu = _block_mean(hu.astype(np.float64), 2)
    scale = np.diag([2.0, 2.0, 2.0, 1.0])
    scale[:3, 3] = 0.5  # a 2 mm voxel i is the mean of 1 mm voxels 2i and 2i + 1
    head = _largest_filled(np.abs(hu) > 0.5)  # the template is exactly 0 outside the brain
    hu, head, aff = _crop(hu, head, affine @ scale)
    hu = np.round(hu).astype(np.int16)
    brain = head & (hu > 20) & (hu < 80)
    csf = ndimage.binary_erosion(head, iterations=2) & (hu < 15)
    names = ["brain parenchyma (20 < HU < 80 inside the brain mask)", "CSF (HU < 15 inside the brain mask)"]
    return _fixed_image(hu, [brain, csf], aff, [-10.0, 90.0], names, 0.0)


def prepare_slice(hu: np.ndarray, spacing: float) -> dict:
    """The 2D fixed image: the head CT slice at 4x coarser spacing, cropped to the head; threshold labels."""
    hu = np.where(hu < -1024, -1024, hu).astype(np.float64)  # -3024: outside the scanner's field of view
    factor = 4 if min(hu.shape) >= 256 else 1
    hu = _block_mean(hu, factor)
    head = _largest_filled(hu > -500)
    aff = np.diag([spacing * factor, spacing * factor, 1.0])
    hu, head, aff = _crop(hu, head, aff)
    hu = np.round(hu).astype(np.int16)
    bone = head & (hu > 300)
    inside = _largest_filled(ndimage.binary_closing(bone, iterations=2)) if bone.any() else head
    soft = inside & (hu > 0) & (hu < 80)
    names = ["bone (HU > 300 inside the head)", "brain / soft tissue (0 < HU < 80 inside the skull)"]
    return _fixed_image(hu, [bone, soft], aff, [-200.0, 300.0], names, -1024.0)


def make_pair(fixed: dict, seed: int, scale: float = SCALE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving image and labels: the fixed ones under the inverse of a random ``theta`` (so that ``theta`` registers).

    Returns:
        ``(moving_hu int16, moving_labels uint8 (L, *S), theta (D, D + 1))``; warping the moving image with
        ``affine_to_ddf(theta)`` gives back the fixed image (up to interpolation and the field of view).
    """
    size = fixed["hu"].shape
    theta = random_affine_theta(size, scale, seed)
    ddf = affine_to_ddf(torch.as_tensor(invert_theta(theta)[None]), size)  # float64
    hu = torch.as_tensor(fixed["hu"], dtype=torch.float64)[None, None] - fixed["padding"]
    moving = warp_image(hu, ddf, padding_mode="zeros")[0, 0] + fixed["padding"]  # outside: air (2D) / 0 (3D)
    labels = torch.as_tensor(fixed["labels"], dtype=torch.float64)[None]
    moving_labels = warp_image(labels, ddf, padding_mode="zeros")[0] >= 0.5
    return np.round(moving.numpy()).astype(np.int16), moving_labels.numpy().astype(np.uint8), theta


def _read_member(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(member)


def load_ct(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """HU volume and RAS affine from the TotalSegmentator wheel or a NIfTI file."""
    import nibabel as nib

    if source.suffix == ".whl":
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "ct.nii.gz"
            f.write_bytes(_read_member(source, CT_MEMBER))
            img = nib.load(str(f))
            return np.asarray(img.dataobj, dtype=np.float64), img.affine
    img = nib.load(str(source))
    return np.asarray(img.dataobj, dtype=np.float64), img.affine


def load_slice(source: Path) -> tuple[np.ndarray, float]:
    """HU slice and pixel spacing (mm) from the pydicom-data wheel, a DICOM file or a 2D NIfTI."""
    if source.suffix in (".whl", ".dcm"):
        try:
            import pydicom
        except ImportError as err:
            raise SystemExit("reading the DICOM slice needs pydicom (pip install pydicom)") from err
        data = _read_member(source, SLICE_MEMBER) if source.suffix == ".whl" else source.read_bytes()
        ds = pydicom.dcmread(io.BytesIO(data))
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        return hu, float(ds.PixelSpacing[0])
    import nibabel as nib

    img = nib.load(str(source))
    return np.asarray(img.dataobj, dtype=np.float64).squeeze(), float(abs(img.affine[0, 0]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_pair(out: Path, name: str, fixed: dict, seed: int) -> dict:
    moving, moving_labels, theta = make_pair(fixed, seed)
    folder = out / name
    save_image(folder / "fixed.nii.gz", fixed["hu"], fixed["affine"], dtype=np.int16, overwrite=True)
    save_image(folder / "moving.nii.gz", moving, fixed["affine"], dtype=np.int16, overwrite=True)
    save_image(folder / "fixed_label.nii.gz", fixed["labels"], fixed["affine"], dtype=np.uint8, overwrite=True)
    save_image(folder / "moving_label.nii.gz", moving_labels, fixed["affine"], dtype=np.uint8, overwrite=True)
    return {
        "name": name,
        "fixed": f"{name}/fixed.nii.gz",
        "moving": f"{name}/moving.nii.gz",
        "fixed_label": f"{name}/fixed_label.nii.gz",
        "moving_label": f"{name}/moving_label.nii.gz",
        "label_names": fixed["label_names"],
        "window": fixed["window"],
        "true_theta": np.round(theta, 10).tolist(),
        "seed": seed,
        "spatial_shape": list(fixed["hu"].shape),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct", type=Path, required=True, help="TotalSegmentator wheel or a NIfTI CT volume (HU)")
    parser.add_argument("--slice", type=Path, default=None, help="pydicom-data wheel, a .dcm or a 2D NIfTI (HU)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    pairs = [write_pair(out, "3d", prepare_volume(*load_ct(args.ct)), SEEDS["3d"])]
    if args.slice is not None:
        hu, spacing = load_slice(args.slice)
        pairs.append(write_pair(out, "2d", prepare_slice(hu, spacing), SEEDS["2d"]))
    (out / "pairs.json").write_text(json.dumps(pairs, indent=1) + "\n")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "sources": {"ct": args.ct.name, "slice": None if args.slice is None else args.slice.name},
        "parameters": {"scale": SCALE, "seeds": SEEDS, "margin": MARGIN},
        "sha256": {p.relative_to(out).as_posix(): _sha256(p) for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    main()
