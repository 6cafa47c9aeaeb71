"""Arrange MyoPS 2020 (multi-sequence cardiac MR, DeepReg's original data for this demo) in the grouped layout.

The data (MyoPS 2020 challenge, registration required on its website) is not shipped and cannot be downloaded here.
Input layout (the challenge's ``train25`` / ``train25_myops_gd`` folders, or everything in one folder)::

    <source>/**/myops_training_<id>_C0.nii.gz   bSSFP cine
    <source>/**/myops_training_<id>_DE.nii.gz   LGE (delayed enhancement)
    <source>/**/myops_training_<id>_T2.nii.gz   T2-weighted
    <source>/**/myops_training_<id>_gd.nii.gz   ground truth (optional; on the C0/DE/T2 grid, which MyoPS aligned)

Ground-truth values (MyoPS): 200 LV myocardium, 500 LV blood pool, 600 RV blood pool, 1220 oedema, 2221 scar
(oedema and scar lie in the myocardium). Output (DeepReg "grouped" layout, one group per patient)::

    <output>/{train,val,test}/images/patient_<id>/{C0,DE,T2}.nii.gz
    <output>/{train,val,test}/labels/patient_<id>/{C0,DE,T2}.nii.gz   uint8 one-hot (X, Y, Z, 3) = [LV, myo, RV]

The same one-hot label is written for the three sequences (MyoPS gives one ground truth per patient); labels are for
evaluation only. Split: patients sorted by id, the last ``n_test`` test, the ``n_val`` before them validation.

    python bundles/grouped_mr_heart/scripts/prepare_myops2020.py --source /data/MyoPS2020 --output /data/myops_grouped
    python -m monai.bundle run training --config_file bundles/grouped_mr_heart/configs/train.json \\
        --dataset_dir /data/myops_grouped --spatial_size "[128, 128, 16]"
"""

from __future__ import annotations

import re
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

PATTERN = re.compile(r"myops_training_(\d+)_(C0|DE|T2|gd)\.nii(\.gz)?$")
SEQUENCES = ("C0", "DE", "T2")
#: MyoPS ground-truth values per output channel [LV blood pool, LV myocardium (incl. oedema and scar), RV blood pool].
GD_VALUES = {"lv": (500,), "myo": (200, 1220, 2221), "rv": (600,)}
KNOWN_VALUES = {0, 200, 500, 600, 1220, 2221}


def find_patients(source: str | Path) -> dict[int, dict[str, Path]]:
    """``{patient id: {"C0": path, "DE": path, "T2": path[, "gd": path]}}`` found recursively under ``source``."""
    src = Path(source)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} not found: expected the extracted MyoPS 2020 folder.")
    found: dict[int, dict[str, Path]] = {}
    for path in sorted(src.rglob("myops_training_*")):
        match = PATTERN.search(path.name)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = path
    if not found:
        raise FileNotFoundError(f"{src}: no myops_training_<id>_{{C0,DE,T2}}.nii.gz files.")
    for pid, files in found.items():
        missing = [s for s in SEQUENCES if s not in files]
        if missing:
            raise FileNotFoundError(f"{src}: patient {pid} lacks sequence(s) {missing} (myops_training_{pid}_<seq>).")
    return found


def one_hot(gd: np.ndarray, path: Path) -> np.ndarray:
    """MyoPS ground truth -> uint8 one-hot ``(*shape, 3)`` = [LV, myo, RV]."""
    values = set(np.unique(gd).astype(int).tolist())
    if not values <= KNOWN_VALUES:
        raise ValueError(
            f"{path}: unexpected label values {sorted(values - KNOWN_VALUES)}; MyoPS uses {sorted(KNOWN_VALUES)}."
        )
    return np.stack([np.isin(gd, v) for v in GD_VALUES.values()], axis=-1).astype(np.uint8)


def prepare(source: str, output: str, n_val: int = 2, n_test: int = 5, overwrite: bool = False) -> dict[str, int]:
    """Write the grouped layout; returns the number of patients per split.

    Raises:
        FileNotFoundError: no MyoPS files, or a patient without one of C0 / DE / T2.
        FileExistsError: ``output`` holds NIfTI files and ``overwrite`` is False.
        ValueError: a sequence or ground truth whose shape differs from C0's, or unknown label values.
    """
    patients = find_patients(source)
    out = Path(output)
    if out.exists() and any(out.rglob("*.nii.gz")) and not overwrite:
        raise FileExistsError(f"{out} already holds NIfTI files; pass --overwrite to replace them.")
    ids = sorted(patients)
    if len(ids) < n_val + n_test + 1:
        raise ValueError(f"{source}: {len(ids)} patients, need more than n_val + n_test = {n_val + n_test}.")
    split_of = {pid: "train" for pid in ids[: len(ids) - n_val - n_test]}
    split_of.update({pid: "val" for pid in ids[len(ids) - n_val - n_test : len(ids) - n_test]})
    split_of.update({pid: "test" for pid in ids[len(ids) - n_test :]})
    counts = {"train": 0, "val": 0, "test": 0}
    for pid in ids:
        files, split = patients[pid], split_of[pid]
        group = f"patient_{pid:03d}"
        ref = nib.load(str(files["C0"]))
        label = None
        if "gd" in files:
            gd = nib.load(str(files["gd"]))
            if gd.shape[:3] != ref.shape[:3]:
                raise ValueError(f"{files['gd']}: shape {gd.shape} differs from C0 {ref.shape}.")
            label = one_hot(np.asarray(gd.dataobj), files["gd"])
        for seq in SEQUENCES:
            img = nib.load(str(files[seq]))
            if img.shape[:3] != ref.shape[:3]:
                raise ValueError(f"{files[seq]}: shape {img.shape} differs from C0 {ref.shape}.")
            (out / split / "images" / group).mkdir(parents=True, exist_ok=True)
            nib.save(
                nib.Nifti1Image(np.asarray(img.dataobj), img.affine),
                str(out / split / "images" / group / f"{seq}.nii.gz"),
            )
            if label is not None:
                (out / split / "labels" / group).mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(label, img.affine), str(out / split / "labels" / group / f"{seq}.nii.gz"))
        counts[split] += 1
    print(counts)
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
