"""Arrange the Learn2Reg 2020 lung CT training data (DeepReg's original data for this demo) in the paired layout.

The data (Hering, Murphy and van Ginneken, "Learn2Reg challenge: CT lung registration - training data", Zenodo 2020,
doi:10.5281/zenodo.3835682, licence CC-BY 4.0 as stated on the Zenodo record) is not shipped and cannot be downloaded by
this project's CI. DeepReg's demo fetched ``https://zenodo.org/record/3835682/files/training.zip``; unzip it, then::

    python bundles/paired_ct_lung/scripts/prepare_learn2reg_lung.py --source /data/training --output /data/lung_paired
    python -m monai.bundle run training --config_file bundles/paired_ct_lung/configs/train.json \\
        --dataset_dir /data/lung_paired --spatial_size "[96, 96, 104]"

Input layout (as in the zip): ``<source>/scans/case_XXX_{insp,exp}.nii.gz`` and
``<source>/lungMasks/case_XXX_{insp,exp}.nii.gz``. Output: ``<output>/{train,val,test}/{fixed,moving}_{images,labels}/
case_XXX.nii.gz`` with the **inspiration scan as the fixed image and the expiration scan as the moving image** (as
DeepReg's demo_data.py). Images are copied as float32, optionally clipped to an intensity window; masks as uint8.
The split is by case: ``--test-cases`` and ``--val-cases`` (default: the last two cases test, the one before
validation); ``case_020`` is excluded by default because DeepReg's demo found that it does not load correctly.
"""

from __future__ import annotations

import re
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

CASE = re.compile(r"(case_\d+)_(insp|exp)\.nii(\.gz)?$")


def _cases(scans: Path) -> list[str]:
    found: dict[str, set[str]] = {}
    for f in sorted(scans.iterdir()):
        m = CASE.search(f.name)
        if m:
            found.setdefault(m.group(1), set()).add(m.group(2))
    incomplete = sorted(c for c, phases in found.items() if phases != {"insp", "exp"})
    if incomplete:
        raise FileNotFoundError(f"{scans}: cases without both an _insp and an _exp scan: {incomplete}.")
    return sorted(found)


def _file(folder: Path, case: str, phase: str) -> Path:
    for ext in (".nii.gz", ".nii"):
        p = folder / f"{case}_{phase}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"missing {folder / (case + '_' + phase + '.nii.gz')} (expected a scan and a lung mask).")


def prepare(
    source: str,
    output: str,
    test_cases: list[str] | None = None,
    val_cases: list[str] | None = None,
    exclude: tuple[str, ...] = ("case_020",),
    clip: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Copy scans and lung masks into the paired layout; returns the number of cases per split.

    Raises:
        FileNotFoundError: when ``scans/`` or ``lungMasks/`` or a matching file is missing (the path is named).
        FileExistsError: when ``output`` holds files already and ``overwrite`` is False.
        ValueError: for a mask whose shape differs from its scan, or an unknown case in a split list.
    """
    src, out = Path(source), Path(output)
    scans, masks = src / "scans", src / "lungMasks"
    for d in (scans, masks):
        if not d.is_dir():
            raise FileNotFoundError(f"--source: {d} does not exist (expected the unzipped Learn2Reg training folder).")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--output: {out} is not empty; pass --overwrite to write into it.")
    cases = [c for c in _cases(scans) if c not in set(exclude)]
    test = list(test_cases) if test_cases else cases[-2:]
    val = list(val_cases) if val_cases else cases[-3:-2]
    unknown = sorted(set(test + val) - set(cases))
    if unknown:
        raise ValueError(f"--test-cases/--val-cases: unknown cases {unknown}; found {cases}.")
    counts = {"train": 0, "val": 0, "test": 0}
    for case in cases:
        split = "test" if case in test else "val" if case in val else "train"
        for phase, role in (("insp", "fixed"), ("exp", "moving")):
            img = nib.load(str(_file(scans, case, phase)))
            lab = nib.load(str(_file(masks, case, phase)))
            if img.shape != lab.shape:
                raise ValueError(f"{case}_{phase}: mask shape {lab.shape} differs from the scan's {img.shape}.")
            arr = np.asarray(img.dataobj, dtype=np.float32)
            if clip is not None:
                arr = np.clip(arr, float(clip[0]), float(clip[1]))
            for sub, data in (("images", arr), ("labels", (np.asarray(lab.dataobj) > 0).astype(np.uint8))):
                target = out / split / f"{role}_{sub}" / f"{case}.nii.gz"
                target.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(data, img.affine), str(target))
        counts[split] += 1
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
