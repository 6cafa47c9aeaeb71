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

import fire

from monai_reg_ext.demo.learn2reg_lung import CASE, copy_lung_case, learn2reg_lung_folders, split_cases


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
    scans, masks, out = learn2reg_lung_folders(source, output, overwrite)
    cases = sorted({m.group(1) for f in scans.iterdir() if (m := CASE.search(f.name)) and m.group(2) == phase})
    cases = [c for c in cases if c not in set(exclude)]
    if len(cases) < 2:
        raise FileNotFoundError(f"{scans}: found {len(cases)} '{phase}' scans; unpaired registration needs at least 2.")
    counts = {"train": 0, "val": 0, "test": 0}
    for case, split in split_cases(cases, test_cases, val_cases, n_val=2).items():
        folder = out / split
        copy_lung_case(
            scans, masks, case, phase, folder / "images" / f"{case}.nii.gz", folder / "labels" / f"{case}.nii.gz", clip
        )
        counts[split] += 1
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
