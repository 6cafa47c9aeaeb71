"""Minimal image I/O: a nibabel NIfTI writer that never overwrites silently, and a MONAI-based reader."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .atomic import atomic_write_path

__all__ = ["save_image", "load_image"]

PathLike = Union[str, os.PathLike]


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # re-raised with the argument name
        raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}.") from err


def save_image(path: PathLike, array, affine, dtype=None, overwrite: bool = False) -> Path:
    """Write an image as NIfTI with nibabel.

    Args:
        path: output ``.nii`` / ``.nii.gz`` file.
        array: ``(*S)`` or channel-first ``(C, *S)``; the number of spatial dims ``D`` is taken from ``affine``.
            Multi-channel images are written as ``(*S, C)`` (the 4th NIfTI dim), which :func:`load_image` reads back
            as ``(C, *S)``; multi-channel 2-D images are written as ``(H, W, 1, C)`` (read them back with
            ``load_image(path, spatial_dims=2)``).
        affine: ``(D+1, D+1)`` voxel-to-world RAS affine (as MONAI/nibabel read it); 2-D affines are embedded in 4x4.
        dtype: output data type (e.g. ``np.uint8`` for labels); default: the array's.
        overwrite: replace an existing file.

    Returns:
        The written path.

    The file is written under a temporary name and renamed when complete (a crash never leaves a partial file).

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False. ValueError on shape mismatches.
    """
    import nibabel as nib

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    arr = _to_numpy(array, "array")
    aff = np.asarray(_to_numpy(affine, "affine"), dtype=np.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4):
        raise ValueError(f"affine: expected a (3, 3) or (4, 4) voxel-to-world matrix, got {aff.shape}.")
    ndim = aff.shape[0] - 1
    if arr.ndim == ndim + 1:
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        if ndim == 2 and arr.ndim == 3:
            arr = arr[:, :, None, :]
    elif arr.ndim != ndim:
        raise ValueError(
            f"array: expected (*S) or (C, *S) with {ndim} spatial dims (from the affine), got {arr.shape}."
        )
    if ndim == 2:
        a4 = np.eye(4)
        a4[:2, :2], a4[:2, 3] = aff[:2, :2], aff[:2, 2]
        aff = a4
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = nib.Nifti1Image(arr, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    with atomic_write_path(path) as tmp:  # never a half-written file under the final name
        nib.save(img, str(tmp))
    return path


def load_image(path: PathLike, dtype=np.float32, spatial_dims: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image with MONAI's ``LoadImage`` (NIfTI via nibabel, other formats via ITK).

    Args:
        path: image file.
        dtype: data type of the returned array.
        spatial_dims: expected number of spatial dims; trailing singleton spatial dims beyond it are dropped (with
            the matching affine rows/columns), e.g. ``2`` for a multi-channel 2-D image stored as ``(H, W, 1, C)``.

    Returns:
        ``(array, affine)``: channel-first ``(C, *S)`` tensor and its ``(D+1, D+1)`` float64 voxel-to-world RAS affine.

    Raises:
        FileNotFoundError or ValueError naming the file when it is missing or unreadable.
    """
    from monai.transforms import LoadImage

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"image file {path} is a directory; expected an image file.")
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist.")
    try:
        img = LoadImage(image_only=True, ensure_channel_first=True, dtype=dtype)(str(path))
    except Exception as err:  # re-raised with the file name
        raise ValueError(f"cannot read image file {path}: {err}") from err
    ndim = img.ndim - 1
    if spatial_dims is not None:
        if ndim < spatial_dims or any(s != 1 for s in img.shape[1 + spatial_dims :]):
            raise ValueError(
                f"image file {path}: expected {spatial_dims} spatial dims, got array shape {tuple(img.shape)}."
            )
        img = img.reshape(img.shape[: 1 + spatial_dims])
        ndim = spatial_dims
    affine = torch.as_tensor(np.asarray(img.affine), dtype=torch.float64)
    if affine.shape[0] != ndim + 1:  # MONAI may keep a 4x4 affine for 2-D NIfTI files
        idx = [*range(ndim), affine.shape[0] - 1]
        affine = affine[idx][:, idx]
    return img.as_tensor(), affine
