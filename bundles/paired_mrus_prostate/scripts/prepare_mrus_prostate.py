"""Arrange DeepReg's prostate MR-TRUS demo data (``yipenghu/example-data``, branch ``mrus``) in this bundle's layout.

The data is not shipped and cannot be downloaded by this project's CI. DeepReg's ``demo_data.py`` fetched
``https://github.com/yipenghu/example-data/archive/mrus.zip``; extract it, then::

    python bundles/paired_mrus_prostate/scripts/prepare_mrus_prostate.py \
        --source /data/example-data-mrus --output /data/mrus_parts
    python -m monai.bundle run training --config_file bundles/paired_mrus_prostate/configs/train.json \
        --dataset_dir /data/mrus_parts

Input layout (the extracted archive): ``<source>/{moving_images,fixed_images,moving_labels,fixed_labels}/*.nii.gz``,
one file per case with the same name in the four folders; moving (MR) 69x69x64, fixed (TRUS) 47x63x44; labels are
3D (one label) or 4D with the label index on the last axis (gland first, then landmarks), as DeepReg reads them.
Output: ``<output>/partNN/<the four folders>/`` with case ``i`` (in sorted file-name order) in part ``i % 11``, as
DeepReg's ``demo_data.py`` splits it: parts 0-7 train, 8 validation, 9-10 test (the bundle's ``train_parts``,
``val_parts``, ``test_parts``). A source already split into ``partNN`` folders is checked and copied as is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import fire
import nibabel as nib

FOLDERS = ("moving_images", "fixed_images", "moving_labels", "fixed_labels")
SHAPES = {"moving_images": (69, 69, 64), "fixed_images": (47, 63, 44)}


def _nifti_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))


def _check_case(src: Path, name: str, check_shapes: bool) -> None:
    shapes = {}
    for sub in FOLDERS:
        shapes[sub] = tuple(nib.load(str(src / sub / name)).shape)
    for sub, expected in SHAPES.items():
        if check_shapes and shapes[sub][:3] != expected:
            raise ValueError(f"{src / sub / name}: expected shape {expected} (DeepReg's layout), got {shapes[sub]}.")
    for img, lab in (("moving_images", "moving_labels"), ("fixed_images", "fixed_labels")):
        if shapes[lab][:3] != shapes[img][:3]:
            raise ValueError(
                f"{src / lab / name}: label shape {shapes[lab]} does not match its image {shapes[img]} "
                "(expected the same first three axes)."
            )


def prepare(
    source: str, output: str, num_parts: int = 11, overwrite: bool = False, check_shapes: bool = True
) -> dict[str, int]:
    """Copy the cases into ``num_parts`` part folders; returns ``{"partNN": number of cases}``.

    Raises:
        FileNotFoundError: a missing folder (named) in ``source``.
        FileExistsError: ``output`` holds files already and ``overwrite`` is False.
        ValueError: file names that differ between the four folders, or shapes that differ from DeepReg's layout.
    """
    src, out = Path(source), Path(output)
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} does not exist (extract mrus.zip first).")
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass --overwrite to replace it.")
        shutil.rmtree(out)
    parts = sorted(p for p in src.glob("part*") if p.is_dir())
    if parts:  # already split by DeepReg's demo_data.py
        counts = {}
        for part in parts:
            counts[part.name] = _copy_cases(part, out / part.name, None, check_shapes)
        return counts
    return _split(src, out, num_parts, check_shapes)


def _names(src: Path) -> list[str]:
    names = None
    for sub in FOLDERS:
        folder = src / sub
        if not folder.is_dir():
            raise FileNotFoundError(f"expected the folder {folder} (DeepReg's paired layout), it does not exist.")
        got = _nifti_names(folder)
        if names is None:
            names = got
        elif got != names:
            missing = sorted(set(names) ^ set(got))[:5]
            raise ValueError(f"{folder}: file names differ from {src / FOLDERS[0]} (e.g. {missing}).")
    if not names:
        raise ValueError(f"{src / FOLDERS[0]}: no .nii/.nii.gz files.")
    return names


def _copy_cases(src: Path, dst: Path, names: list[str] | None, check_shapes: bool) -> int:
    names = _names(src) if names is None else names
    for name in names:
        _check_case(src, name, check_shapes)
        for sub in FOLDERS:
            (dst / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / sub / name, dst / sub / name)
    return len(names)


def _split(src: Path, out: Path, num_parts: int, check_shapes: bool) -> dict[str, int]:
    names = _names(src)
    counts: dict[str, int] = {}
    for i, name in enumerate(names):
        part = f"part{i % num_parts:02d}"
        counts[part] = counts.get(part, 0) + _copy_cases(src, out / part, [name], check_shapes)
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    fire.Fire(prepare)
