"""The Learn2Reg 2020 lung CT training data (DeepReg's original data of the lung demos) in the bundles' layouts.

Shared by ``bundles/paired_ct_lung/scripts/prepare_learn2reg_lung.py`` (inspiration = fixed, expiration = moving)
and ``bundles/unpaired_ct_lung/scripts/prepare_learn2reg_lung.py`` (one phase per patient). The data (Hering, Murphy
and van Ginneken, Zenodo 2020, doi:10.5281/zenodo.3835682, CC-BY 4.0) is not shipped; its unzipped layout is
``<source>/scans/case_XXX_{insp,exp}.nii.gz`` and ``<source>/lungMasks/case_XXX_{insp,exp}.nii.gz``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CASE", "lung_case_file", "learn2reg_lung_folders", "split_cases", "copy_lung_case"]

#: A scan or mask file name: group 1 the case (``case_001``), group 2 the phase (``insp`` or ``exp``).
CASE = re.compile(r"(case_\d+)_(insp|exp)\.nii(\.gz)?$")


def lung_case_file(folder: Path, case: str, phase: str) -> Path:
    """``folder/<case>_<phase>.nii.gz`` (or ``.nii``).

    Raises:
        FileNotFoundError: naming the missing file.
    """
    for ext in (".nii.gz", ".nii"):
        p = folder / f"{case}_{phase}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"missing {folder / (case + '_' + phase + '.nii.gz')} (expected a scan and a lung mask).")


def learn2reg_lung_folders(
    source: str | os.PathLike, output: str | os.PathLike, overwrite: bool = False
) -> tuple[Path, Path, Path]:
    """``(scans, lungMasks, output)`` folders of a preparation, checked.

    Raises:
        FileNotFoundError: ``source/scans`` or ``source/lungMasks`` is missing.
        FileExistsError: ``output`` holds files already and ``overwrite`` is False.
    """
    src, out = Path(source), Path(output)
    scans, masks = src / "scans", src / "lungMasks"
    for d in (scans, masks):
        if not d.is_dir():
            raise FileNotFoundError(f"--source: {d} does not exist (expected the unzipped Learn2Reg training folder).")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--output: {out} is not empty; pass --overwrite to write into it.")
    return scans, masks, out


def split_cases(
    cases: Sequence[str], test_cases: Sequence[str] | None, val_cases: Sequence[str] | None, n_val: int
) -> dict[str, str]:
    """``{case: "train" | "val" | "test"}``: ``test_cases`` (default: the last two cases) test, ``val_cases``
    (default: the ``n_val`` cases before them) validate, the others train.

    Raises:
        ValueError: a listed case is not among ``cases``.
    """
    cases = list(cases)
    test = list(test_cases) if test_cases else cases[-2:]
    val = list(val_cases) if val_cases else cases[-2 - n_val : -2]
    unknown = sorted(set(test + val) - set(cases))
    if unknown:
        raise ValueError(f"--test-cases/--val-cases: unknown cases {unknown}; found {cases}.")
    return {case: "test" if case in test else "val" if case in val else "train" for case in cases}


def copy_lung_case(
    scans: Path,
    masks: Path,
    case: str,
    phase: str,
    image_path: Path,
    label_path: Path,
    clip: Sequence[float] | None = None,
) -> None:
    """Copy the scan of ``case`` at ``phase`` as float32 (clipped to ``clip`` when given) to ``image_path`` and its
    lung mask as uint8 0/1 to ``label_path`` (folders created; the scan's affine for both).

    Raises:
        FileNotFoundError: the scan or the mask is missing.
        ValueError: the mask's shape differs from the scan's.
    """
    import nibabel as nib
    import numpy as np

    img = nib.load(str(lung_case_file(scans, case, phase)))
    lab = nib.load(str(lung_case_file(masks, case, phase)))
    if img.shape != lab.shape:
        raise ValueError(f"{case}_{phase}: mask shape {lab.shape} differs from the scan's {img.shape}.")
    arr = np.asarray(img.dataobj, dtype=np.float32)
    if clip is not None:
        arr = np.clip(arr, float(clip[0]), float(clip[1]))
    for target, data in ((image_path, arr), (label_path, (np.asarray(lab.dataobj) > 0).astype(np.uint8))):
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, img.affine), str(target))
