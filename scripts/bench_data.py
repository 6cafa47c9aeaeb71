"""Time loading + preprocessing + augmentation of one 128^3 labelled pair, and print example pair counts.

Usage: ``PYTHONPATH=. python scripts/bench_data.py [--size 128] [--repeats 3]``. Prints the median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Compose

from monai_reg_ext.data import GroupedDataset, PairedDataset, UnpairedDataset
from monai_reg_ext.transforms import (
    RandRegistrationAffined,
    RandRegistrationIntensityd,
    RandSmoothDeformd,
    registration_preprocessing,
)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr.astype(np.float32), np.eye(4)), str(path))


def _volume(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, size)] * 3, indexing="ij"))
    c = rng.uniform(-0.3, 0.3, (3, 1, 1, 1))
    return (1000 * np.exp(-((g - c) ** 2).sum(0) / 0.2) + rng.normal(0, 10, (size,) * 3)).astype(np.float32)


def pair_counts(root: Path) -> dict[str, int]:
    small = np.zeros((4, 4, 4), np.float32)
    for i in range(5):
        _save(root / "paired" / "moving_images" / f"c{i}.nii.gz", small)
        _save(root / "paired" / "fixed_images" / f"c{i}.nii.gz", small)
    for i in range(9):
        _save(root / "unpaired" / "images" / f"c{i}.nii.gz", small)
    sizes = [2, 3, 4]
    for g, n in enumerate(sizes):
        for i in range(n):
            _save(root / "grouped" / "images" / f"g{g}" / f"t{i}.nii.gz", small)
    out = {
        "paired (5 pairs)": len(PairedDataset(root / "paired")),
        "unpaired (N=9)": len(UnpairedDataset(root / "unpaired")),
        "grouped staged (groups 2,3,4)": len(GroupedDataset(root / "grouped", intra_group_prob=0.5)),
    }
    for prob, opt in [(1.0, "forward"), (1.0, "backward"), (1.0, "unconstrained"), (0.0, "forward")]:
        ds = GroupedDataset(root / "grouped", prob, opt, sample_image_in_group=False)
        name = f"grouped all pairs, intra_group_prob={prob:g}" + (f", {opt}" if prob == 1 else " (inter)")
        out[name] = len(ds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, n in pair_counts(root / "counts").items():
            print(f"pairs per epoch, {name}: {n}")
        for i in range(2):
            img = _volume(args.size, i)
            _save(root / "bench" / "images" / f"case{i}.nii.gz", img)
            _save(root / "bench" / "labels" / f"case{i}.nii.gz", (img > 500).astype(np.float32))
        size = (args.size,) * 3
        parts = {
            "load+preprocess": registration_preprocessing(size),
            "affine": RandRegistrationAffined(),
            "smooth deform": RandSmoothDeformd(max_displacement=4.0, smoothness=8.0),
            "intensity": RandRegistrationIntensityd(),
        }
        b = root / "bench"
        refs = {
            "moving_image": str(b / "images" / "case0.nii.gz"),
            "fixed_image": str(b / "images" / "case1.nii.gz"),
            "moving_label": str(b / "labels" / "case0.nii.gz"),
            "fixed_label": str(b / "labels" / "case1.nii.gz"),
        }
        times: dict[str, list[float]] = {k: [] for k in [*parts, "total"]}
        for r in range(args.repeats):
            sample = dict(refs)
            total = 0.0
            for name, t in parts.items():
                if hasattr(t, "set_random_state"):
                    t.set_random_state(seed=r)
                t0 = time.perf_counter()
                sample = t(sample)
                dt = time.perf_counter() - t0
                times[name].append(dt)
                total += dt
            times["total"].append(total)
        _ = Compose(list(parts.values()))  # the same chain as one MONAI Compose
        print(f"torch threads: {torch.get_num_threads()}, size {size}, labelled pair, median of {args.repeats}:")
        for name, ts in times.items():
            print(f"  {name}: {statistics.median(ts):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ts)})")


if __name__ == "__main__":
    main()
