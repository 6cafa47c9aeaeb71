"""Arrange Learn2Reg 2020 task 4 (hippocampus MR, DeepReg's original data for this demo) in the unpaired layout.

The data (Learn2Reg task 4, derived from the Medical Segmentation Decathlon hippocampus set, CC-BY-SA 4.0) is not
shipped and cannot be downloaded by this project's CI. DeepReg's demo fetched
``https://github.com/acasamitjana/Data/raw/master/L2R_Task4_HippocampusMRI.tar``; extract it, then::

    python bundles/unpaired_mr_brain/scripts/prepare_learn2reg_hippocampus.py \
        --source /data/L2R_Task4_HippocampusMRI --output /data/hippocampus_unpaired
    python -m monai.bundle run training --config_file bundles/unpaired_mr_brain/configs/train.json \
        --dataset_dir /data/hippocampus_unpaired --spatial_size "[64, 64, 64]"

Input layout: ``<source>/Training/img/hippocampus_<id>.nii.gz`` and ``<source>/Training/label/hippocampus_<id>.nii.gz``
(labels 0 background, 1 anterior, 2 posterior hippocampus). Output: ``<output>/{train,val,test}/{images,labels}/``
with one-hot uint8 labels (X, Y, Z, 2) = [anterior, posterior]. As in DeepReg, the split is by subject id: ids below
``split_id`` (311) train, the rest are divided alternately into validation and test.
"""

from __future__ import annotations

import re
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

ID_PATTERN = re.compile(r"hippocampus_(\d+)\.nii(\.gz)?$")


def prepare(source: str, output: str, split_id: int = 311, overwrite: bool = False) -> dict[str, int]:
    """Copy images and one-hot labels into the unpaired layout; returns the number of subjects per split.

    Raises:
        FileNotFoundError: when ``Training/img`` or a matching label is missing (the path is named).
        FileExistsError: when ``output`` holds files already and ``overwrite`` is False.
        ValueError: for a label with values other than 0, 1, 2 or a shape that differs from its image.
    """
    src, out = Path(source), Path(output)
    img_dir, lab_dir = src / "Training" / "img", src / "Training" / "label"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{img_dir} not found: expected the extracted Learn2Reg task 4 folder.")
    images = sorted(
        (p for p in img_dir.iterdir() if ID_PATTERN.search(p.name)), key=lambda p: int(ID_PATTERN.search(p.name)[1])
    )
    if not images:
        raise FileNotFoundError(f"{img_dir}: no hippocampus_<id>.nii.gz files.")
    if out.exists() and any(out.rglob("*.nii.gz")) and not overwrite:
        raise FileExistsError(f"{out} already holds NIfTI files; pass --overwrite to replace them.")
    counts = {"train": 0, "val": 0, "test": 0}
    held_out = 0
    for img_path in images:
        sid = int(ID_PATTERN.search(img_path.name)[1])
        lab_path = lab_dir / img_path.name
        if not lab_path.is_file():
            raise FileNotFoundError(f"{lab_path}: label of {img_path.name} is missing.")
        if sid < split_id:
            split = "train"
        else:
            split = "val" if held_out % 2 == 0 else "test"
            held_out += 1
        img, lab = nib.load(str(img_path)), nib.load(str(lab_path))
        values = np.asarray(lab.dataobj)
        if values.shape != img.shape[:3]:
            raise ValueError(f"{lab_path}: shape {values.shape} differs from its image {img.shape[:3]}.")
        if not set(np.unique(values).tolist()) <= {0, 1, 2}:
            raise ValueError(f"{lab_path}: expected label values 0, 1, 2, got {np.unique(values).tolist()}.")
        onehot = np.stack([values == 1, values == 2], axis=-1).astype(np.uint8)
        name = f"subject_{sid:03d}.nii.gz"
        for sub, data in (("images", np.asarray(img.dataobj)), ("labels", onehot)):
            (out / split / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, img.affine), str(out / split / sub / name))
        counts[split] += 1
    print(counts)
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
