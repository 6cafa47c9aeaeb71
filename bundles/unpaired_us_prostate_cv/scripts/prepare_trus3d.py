"""Arrange DeepReg's 3D TRUS cross-validation data (``ucl-candi/dataset_trus3d``) as this bundle's fold folders.

The data is not shipped and cannot be downloaded by this project's CI. DeepReg's ``demo_data.py`` fetched
``https://github.com/ucl-candi/dataset_trus3d/archive/master.zip`` (3D TRUS derived from TCIA Prostate-MRI-US-Biopsy,
10 folds, unlabelled, 64x100x100); its configs read ``dataset/fold0`` ... ``dataset/fold9``, each an unpaired H5
folder (``images.h5``, one dataset per volume). Extract the archive, then::

    python bundles/unpaired_us_prostate_cv/scripts/prepare_trus3d.py \
        --source /data/dataset_trus3d-master --output /data/trus3d_folds
    python -m monai.bundle run training --config_file bundles/unpaired_us_prostate_cv/configs/train.json \
        --dataset_dir /data/trus3d_folds --spatial_size "[64, 100, 100]"

Accepted source layouts (searched recursively, because the archive's inner folder names are not documented by
DeepReg): folders named ``fold<k>`` holding ``images.h5``, or files named ``fold<k>.h5`` / ``fold<k>_images.h5``.
Each volume is checked (3D, ``expected_shape`` unless ``check_shape=False``); the output is
``<output>/fold<k>/images.h5``, the layout :class:`monai_reg_ext.data.UnpairedDataset` and the configs read.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import fire
import h5py

FOLD_DIR = re.compile(r"^fold(\d+)$")
FOLD_FILE = re.compile(r"^fold(\d+)(?:_images)?\.h5$")


def find_folds(source: str | Path) -> dict[int, Path]:
    """``{k: path of the H5 file of fold k}`` in ``source`` (see the module docstring).

    Raises:
        FileNotFoundError: no fold found.
        ValueError: a fold found twice.
    """
    src = Path(source)
    found: dict[int, Path] = {}
    for path in sorted(src.rglob("*")):
        k = None
        if path.is_dir() and FOLD_DIR.match(path.name) and (path / "images.h5").is_file():
            k, file = int(FOLD_DIR.match(path.name).group(1)), path / "images.h5"
        elif path.is_file() and FOLD_FILE.match(path.name):
            k, file = int(FOLD_FILE.match(path.name).group(1)), path
        if k is None:
            continue
        if k in found:
            raise ValueError(f"fold {k} found twice: {found[k]} and {file}; keep one.")
        found[k] = file
    if not found:
        raise FileNotFoundError(f"no fold<k>/images.h5 or fold<k>.h5 under {src} (extract dataset_trus3d first).")
    return dict(sorted(found.items()))


def _check(file: Path, expected_shape: tuple[int, ...] | None) -> int:
    with h5py.File(file, "r") as f:
        keys = list(f.keys())
        if len(keys) < 2:
            raise ValueError(f"{file}: expected at least 2 volumes (unpaired pairs), found {len(keys)}.")
        for key in keys:
            shape = tuple(f[key].shape)
            if len(shape) != 3:
                raise ValueError(f"{file}::{key}: expected a 3D volume, got shape {shape}.")
            if expected_shape is not None and shape != tuple(expected_shape):
                raise ValueError(f"{file}::{key}: expected shape {tuple(expected_shape)} (DeepReg's), got {shape}.")
    return len(keys)


def prepare(
    source: str,
    output: str,
    expected_shape: tuple[int, int, int] = (64, 100, 100),
    check_shape: bool = True,
    overwrite: bool = False,
) -> dict[str, int]:
    """Copy every fold's H5 file to ``<output>/fold<k>/images.h5``; returns ``{"fold<k>": number of volumes}``.

    Raises:
        FileExistsError: ``output`` holds files already and ``overwrite`` is False.
        ValueError: a volume that is not 3D or not ``expected_shape`` (naming file and key), or too few volumes.
    """
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass --overwrite to replace it.")
        shutil.rmtree(out)
    counts = {}
    for k, file in find_folds(source).items():
        counts[f"fold{k}"] = _check(file, tuple(expected_shape) if check_shape else None)
        (out / f"fold{k}").mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, out / f"fold{k}" / "images.h5")
    return counts


if __name__ == "__main__":
    fire.Fire(prepare)
