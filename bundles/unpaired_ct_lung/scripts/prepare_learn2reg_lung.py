"""Arrange the Learn2Reg 2020 lung CT training data (DeepReg's original data for this demo) in the unpaired layout.

The data (Hering, Murphy and van Ginneken, "Learn2Reg challenge: CT lung registration - training data", Zenodo 2020,
doi:10.5281/zenodo.3835682, licence CC-BY 4.0 as stated on the Zenodo record) is not shipped and cannot be downloaded by
this project's CI. DeepReg's demo fetched ``https://zenodo.org/record/3835682/files/training.zip``; unzip it, then::

    python bundles/unpaired_ct_lung/scripts/prepare_learn2reg_lung.py --source /data/training \\
        --output /data/lung_unpaired
    python -m monai.bundle run training --config_file bundles/unpaired_ct_lung/configs/train.json \\
        --dataset_dir /data/lung_unpaired --spatial_size "[96, 96, 104]"

Input layout (as in the zip): ``<source>/scans/case_XXX_{insp,exp}.nii.gz`` and
``<source>/lungMasks/case_XXX_{insp,exp}.nii.gz``. Output: ``<output>/{train,val,test}/{images,labels}/case_XXX.nii.gz``
with one scan per patient, the **expiration** scan by default (DeepReg's unpaired_ct_lung registers expiration scans
of different patients; ``--phase insp`` takes the inspiration scans), so every pair is inter-subject. Images are copied
as float32, optionally clipped to an intensity window; masks as uint8. Split by case: ``--test-cases`` and
``--val-cases`` (default: the last two cases test, the two before validation); ``case_020`` is excluded by default
(DeepReg's demo found that it does not load correctly).
"""

from __future__ import annotations

import re
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

CASE = re.compile(r"(case_\d+)_(insp|exp)\.nii(\.gz)?$")


def _file(folder: Path, case: str, phase: str) -> Path:
    for ext in (".nii.gz", ".nii"):
        p = folder / f"{case}_{phase}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"missing {folder / (case + '_' + phase + '.nii.gz')} (expected a scan and a lung mask).")


def prepare(
    source: str,
    output: str,
    phase: str = "exp",
    test_cases: list[str] | None = None,
    val_cases: list[str] | None = None,
    exclude: tuple[str, ...] = ("case_020",),
    clip: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Copy one scan per case and its lung mask into the unpaired layout; returns the number of cases per split.

    Raises:
        FileNotFoundError: when ``scans/`` or ``lungMasks/`` or a matching file is missing (the path is named).
        FileExistsError: when ``output`` holds files already and ``overwrite`` is False.
        ValueError: for an unknown phase, a mask whose shape differs from its scan, or an unknown case in a split list.
    """
    if phase not in ("insp", "exp"):
        raise ValueError(f"--phase: expected 'insp' or 'exp', got {phase!r}.")
    src, out = Path(source), Path(output)
    scans, masks = src / "scans", src / "lungMasks"
    for d in (scans, masks):
        if not d.is_dir():
            raise FileNotFoundError(f"--source: {d} does not exist (expected the unzipped Learn2Reg training folder).")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--output: {out} is not empty; pass --overwrite to write into it.")
    cases = sorted({m.group(1) for f in scans.iterdir() if (m := CASE.search(f.name)) and m.group(2) == phase})
    cases = [c for c in cases if c not in set(exclude)]
    if len(cases) < 2:
        raise FileNotFoundError(f"{scans}: found {len(cases)} '{phase}' scans; unpaired registration needs at least 2.")
    test = list(test_cases) if test_cases else cases[-2:]
    val = list(val_cases) if val_cases else cases[-4:-2]
    unknown = sorted(set(test + val) - set(cases))
    if unknown:
        raise ValueError(f"--test-cases/--val-cases: unknown cases {unknown}; found {cases}.")
    counts = {"train": 0, "val": 0, "test": 0}
    for case in cases:
        split = "test" if case in test else "val" if case in val else "train"
        img = nib.load(str(_file(scans, case, phase)))
        lab = nib.load(str(_file(masks, case, phase)))
        if img.shape != lab.shape:
            raise ValueError(f"{case}_{phase}: mask shape {lab.shape} differs from the scan's {img.shape}.")
        arr = np.asarray(img.dataobj, dtype=np.float32)
        if clip is not None:
            arr = np.clip(arr, float(clip[0]), float(clip[1]))
        for sub, data in (("images", arr), ("labels", (np.asarray(lab.dataobj) > 0).astype(np.uint8))):
            target = out / split / sub / f"{case}.nii.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, img.affine), str(target))
        counts[split] += 1
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
