"""Tiny on-disk fixtures (NIfTI, .mha, H5) for the data tests, made in ``tmp_path``; plus a check of the makers."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

SHAPE = (12, 10, 8)


def blob(shape=SHAPE, seed=0) -> np.ndarray:
    """A smooth random volume in [0, 1] (a sum of Gaussian bumps)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), 0).astype(np.float32)
    out = np.zeros(shape, np.float32)
    for _ in range(3):
        c = rng.uniform(0.25, 0.75, len(shape)) * np.array(shape)
        w = rng.uniform(1.5, 3.0)
        out += np.exp(-(((grid - c.reshape(-1, *[1] * len(shape))) ** 2).sum(0)) / (2 * w**2))
    return (out / out.max()).astype(np.float32)


def write_image(path: Path, arr: np.ndarray, fmt: str = "nifti") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "nifti":
        path = path.with_name(path.name + ".nii.gz")
        nib.save(nib.Nifti1Image(arr.astype(np.float32), np.diag([1.5, 1.0, 2.0, 1.0])), str(path))
    elif fmt == "mha":
        import itk

        path = path.with_name(path.name + ".mha")
        # itk arrays are (z, y, x): transpose so that MONAI's ITK reader returns arr as given
        itk.imwrite(itk.image_from_array(np.ascontiguousarray(arr.astype(np.float32).T)), str(path))
    else:
        raise ValueError(fmt)
    return path


def _label(img: np.ndarray, num_labels: int) -> np.ndarray:
    labs = [(img > t).astype(np.float32) for t in np.linspace(0.3, 0.6, num_labels)]
    return labs[0] if num_labels == 1 else np.stack(labs, -1)


def make_unpaired(root: Path, n: int, labeled=True, fmt="nifti", num_labels=1, name="images") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lab_name = name.replace("images", "labels")
    if fmt == "h5":
        with h5py.File(root / f"{name}.h5", "w") as fi, h5py.File(root / f"{lab_name}.h5", "w") as fl:
            for i in range(n):
                img = blob(seed=i)
                fi[f"case{i}"] = img
                fl[f"case{i}"] = _label(img, num_labels)
        if not labeled:
            os.remove(root / f"{lab_name}.h5")
        return root
    for i in range(n):
        img = blob(seed=i)
        write_image(root / name / f"case{i}", img, fmt)
        if labeled:
            write_image(root / lab_name / f"case{i}", _label(img, num_labels), fmt)
    return root


def make_paired(root: Path, n: int, labeled=True, fmt="nifti", num_labels=1) -> Path:
    make_unpaired(root, n, labeled, fmt, num_labels, name="moving_images")
    make_unpaired(root, n, labeled, fmt, num_labels, name="fixed_images")
    return root


def make_grouped(root: Path, sizes, labeled=False, fmt="nifti") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "h5":
        with h5py.File(root / "images.h5", "w") as fi, h5py.File(root / "labels.h5", "w") as fl:
            for g, n in enumerate(sizes):
                for i in range(n):
                    img = blob(seed=10 * g + i)
                    fi[f"group-{g}-{i}"] = img
                    fl[f"group-{g}-{i}"] = _label(img, 1)
        if not labeled:
            os.remove(root / "labels.h5")
        return root
    for g, n in enumerate(sizes):
        for i in range(n):
            img = blob(seed=10 * g + i)
            write_image(root / "images" / f"g{g}" / f"t{i}", img, fmt)
            if labeled:
                write_image(root / "labels" / f"g{g}" / f"t{i}", _label(img, 1), fmt)
    return root


def test_makers(tmp_path):
    make_unpaired(tmp_path / "u", 3, fmt="mha")
    assert len(list((tmp_path / "u" / "images").glob("*.mha"))) == 3
    make_grouped(tmp_path / "g", [2, 3], fmt="h5", labeled=True)
    with h5py.File(tmp_path / "g" / "images.h5") as f:
        assert sorted(f.keys()) == ["group-0-0", "group-0-1", "group-1-0", "group-1-1", "group-1-2"]
    b = blob()
    assert b.shape == SHAPE and 0 <= b.min() and b.max() == 1
