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

from collections.abc import Sequence
from pathlib import Path

import fire

from monai_reg_ext.demo.learn2reg_lung import CASE, copy_lung_case, learn2reg_lung_folders, split_cases


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


def prepare(
    source: str,
    output: str,
    test_cases: list[str] | None = None,
    val_cases: list[str] | None = None,
    exclude: Sequence[str] = ("case_020",),
    clip: Sequence[float] | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Copy scans and lung masks into the paired layout; returns the number of cases per split.

    Raises:
        FileNotFoundError: when ``scans/`` or ``lungMasks/`` or a matching file is missing (the path is named).
        FileExistsError: when ``output`` holds files already and ``overwrite`` is False.
        ValueError: for a mask whose shape differs from its scan, or an unknown case in a split list.
    """
    scans, masks, out = learn2reg_lung_folders(source, output, overwrite)
    cases = [c for c in _cases(scans) if c not in set(exclude)]
    counts = {"train": 0, "val": 0, "test": 0}
    for case, split in split_cases(cases, test_cases, val_cases, n_val=1).items():
        for phase, role in (("insp", "fixed"), ("exp", "moving")):
            images, labels = (out / split / f"{role}_{sub}" / f"{case}.nii.gz" for sub in ("images", "labels"))
            copy_lung_case(scans, masks, case, phase, images, labels, clip)
        counts[split] += 1
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
