"""Arrange Learn2Reg 2020 task 3 (abdomen CT-CT, DeepReg's original data for this demo) in the unpaired layout.

The data is not shipped and cannot be downloaded by this project's CI. DeepReg's demo fetched
``https://github.com/ucl-candi/datasets_deepreg_demo/archive/abdct.zip`` (30 CTs of the Learn2Reg 2020 task 3 set,
derived from the BTCV "Beyond the Cranial Vault" abdomen data; check the Learn2Reg terms before use); pass that zip or
its extracted folder::

    python bundles/unpaired_ct_abdomen/scripts/prepare_learn2reg_abdomen.py \
        --source /data/abdct.zip --output /data/abdct_unpaired
    python -m monai.bundle run training --config_file bundles/unpaired_ct_abdomen/configs/train.json \
        --dataset_dir /data/abdct_unpaired --spatial_size "[96, 80, 128]"

Input layout (as in DeepReg's ``demo_data.py``): ``datasets_deepreg_demo-abdct/dataset/images/<id>.nii.gz`` and
``.../dataset/labels/<id>.nii.gz`` with integer labels 0-13 (:data:`LEARN2REG_LABELS`). Output:
``<output>/{train,val,test}/{images,labels}/<id>.nii.gz``; labels one-hot uint8 ``(X, Y, Z, L)``. As in DeepReg, the
images are split in id order: the first 75 % train, the next 10 % validation, the last 15 % test. ``label_set="demo4"``
keeps the bundle's four organs in its channel order (liver, spleen, stomach, pancreas); ``"all"`` keeps the 13
Learn2Reg organs as DeepReg did.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

#: Learn2Reg 2020 task 3 label values.
LEARN2REG_LABELS = {
    1: "spleen",
    2: "kidney_right",
    3: "kidney_left",
    4: "gallbladder",
    5: "esophagus",
    6: "liver",
    7: "stomach",
    8: "aorta",
    9: "inferior_vena_cava",
    10: "portal_and_splenic_vein",
    11: "pancreas",
    12: "adrenal_gland_right",
    13: "adrenal_gland_left",
}
#: Label values of the bundle's channels (``label_set="demo4"``), in the order of the demo data.
DEMO4 = (6, 1, 7, 11)
ID_PATTERN = re.compile(r"^(\d+)\.nii(\.gz)?$")


def _find_dataset(root: Path) -> Path:
    for folder in (root, root / "dataset", root / "datasets_deepreg_demo-abdct" / "dataset"):
        if (folder / "images").is_dir() and (folder / "labels").is_dir():
            return folder
    raise FileNotFoundError(
        f"{root}: expected images/ and labels/ (or datasets_deepreg_demo-abdct/dataset/images, labels/) inside."
    )


def prepare(
    source: str, output: str, label_set: str = "all", overwrite: bool = False, ratio_val: float = 0.1,
    ratio_test: float = 0.15,
) -> dict[str, int]:  # fmt: skip
    """Copy images and one-hot labels into the unpaired layout; returns the number of subjects per split.

    Raises:
        FileNotFoundError: when the images/labels folders or a matching label are missing (the path is named).
        FileExistsError: when ``output`` holds NIfTI files already and ``overwrite`` is False.
        ValueError: for an unknown ``label_set``, a label with values outside 0-13, or a label whose shape differs
            from its image.
    """
    if label_set not in ("all", "demo4"):
        raise ValueError(f"label_set: expected 'all' or 'demo4', got {label_set!r}.")
    values = tuple(LEARN2REG_LABELS) if label_set == "all" else DEMO4
    src, out = Path(source), Path(output)
    if out.exists() and any(out.rglob("*.nii.gz")) and not overwrite:
        raise FileExistsError(f"{out} already holds NIfTI files; pass --overwrite to replace them.")
    with tempfile.TemporaryDirectory() as tmp:
        if src.is_file() and zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as zf:
                zf.extractall(tmp)
            src = Path(tmp)
        elif not src.is_dir():
            raise FileNotFoundError(f"{source}: not a folder or a zip file.")
        data = _find_dataset(src)
        images = sorted(
            (p for p in (data / "images").iterdir() if ID_PATTERN.match(p.name)),
            key=lambda p: int(ID_PATTERN.match(p.name)[1]),
        )
        if not images:
            raise FileNotFoundError(f"{data / 'images'}: no <id>.nii.gz files.")
        n = len(images)
        n_val, n_test = int(n * ratio_val), int(n * ratio_test)
        n_train = n - n_val - n_test
        counts = {"train": 0, "val": 0, "test": 0}
        for k, img_path in enumerate(images):
            lab_path = data / "labels" / img_path.name
            if not lab_path.is_file():
                raise FileNotFoundError(f"{lab_path}: label of {img_path.name} is missing.")
            split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            img, lab = nib.load(str(img_path)), nib.load(str(lab_path))
            arr = np.asarray(lab.dataobj)
            if arr.shape != img.shape[:3]:
                raise ValueError(f"{lab_path}: shape {arr.shape} differs from its image {img.shape[:3]}.")
            found = set(np.unique(arr).astype(int).tolist())
            if not found <= {0, *LEARN2REG_LABELS}:
                raise ValueError(f"{lab_path}: expected label values 0-13, got {sorted(found)}.")
            onehot = np.stack([arr == v for v in values], axis=-1).astype(np.uint8)
            for sub in ("images", "labels"):
                (out / split / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(img_path, out / split / "images" / img_path.name)
            nib.save(nib.Nifti1Image(onehot, lab.affine), str(out / split / "labels" / img_path.name))
            counts[split] += 1
    print(counts)
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
