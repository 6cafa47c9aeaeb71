"""Minimal image I/O: a writer (NIfTI with nibabel, ``.mha`` / ``.nrrd`` with ITK) that never overwrites silently,
and a MONAI-based reader."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .atomic import atomic_write_path

__all__ = ["save_image", "load_image", "check_output_suffix", "itk_write", "itk_header_affine", "OUTPUT_SUFFIXES"]

#: suffixes of the image and DDF files monai-reg writes
OUTPUT_SUFFIXES = (".nii", ".nii.gz", ".mha", ".nrrd")

PathLike = Union[str, os.PathLike]


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # re-raised with the argument name
        raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}.") from err


def check_output_suffix(path: PathLike) -> str:
    """The writer of an output image or DDF file, from its suffix.

    Args:
        path: output file name.

    Returns:
        ``"nifti"`` for ``.nii`` / ``.nii.gz`` (written with nibabel), ``"itk"`` for ``.mha`` / ``.nrrd`` (ITK).

    Raises:
        ValueError: naming the suffix and the accepted ones, for any other suffix.
    """
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".mha", ".nrrd")):
        return "itk"
    suffix = "".join(Path(path).suffixes[-2:]) if name.endswith(".gz") else Path(path).suffix
    raise ValueError(
        f"{path}: cannot write a {suffix or 'suffix-less'!r} file; use one of {', '.join(OUTPUT_SUFFIXES)}."
    )


def itk_header_affine(path: PathLike) -> np.ndarray | None:
    """The voxel-to-world RAS affine that ITK (and ITK-based tools: ANTs, 3D Slicer, ITK-SNAP) reads from a file's
    header, without reading its voxels; None when ITK has no reader for it or cannot read the header."""
    import itk

    try:
        image_io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
        if image_io is None:
            return None
        image_io.SetFileName(str(path))
        image_io.ReadImageInformation()
        ndim = int(image_io.GetNumberOfDimensions())
        spacing = np.array([image_io.GetSpacing(k) for k in range(ndim)], dtype=np.float64)
        origin = np.array([image_io.GetOrigin(k) for k in range(ndim)], dtype=np.float64)
        direction = np.array([image_io.GetDirection(k) for k in range(ndim)], dtype=np.float64).T
    except Exception:  # unreadable headers are reported by the readers, with their own messages
        return None
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim], affine[:ndim, ndim] = direction * spacing, origin
    flip = np.diag([-1.0, -1.0] + [1.0] * (ndim - 1))[: ndim + 1, : ndim + 1] if ndim >= 2 else np.eye(ndim + 1)
    return flip @ affine  # LPS -> RAS


def _spatial_array(arr: np.ndarray, ndim: int) -> np.ndarray:
    """``(*S)`` or ``(C, *S)`` -> ``(*S)`` (one channel) or channel-last ``(*S, C)``."""
    if arr.ndim == ndim + 1:
        return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if arr.ndim != ndim:
        raise ValueError(
            f"array: expected (*S) or (C, *S) with {ndim} spatial dims (from the affine), got {arr.shape}."
        )
    return arr


def _write_nifti(path: Path, arr: np.ndarray, aff: np.ndarray) -> None:
    """nibabel NIfTI of a ``(*S)`` or channel-last ``(*S, C)`` array; 2-D affines are embedded in 4x4."""
    import nibabel as nib

    ndim = aff.shape[0] - 1
    if ndim == 2:
        if arr.ndim == 3:
            arr = arr[:, :, None, :]
        a4 = np.eye(4)
        a4[:2, :2], a4[:2, 3] = aff[:2, :2], aff[:2, 2]
        aff = a4
    img = nib.Nifti1Image(arr, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    nib.save(img, str(path))


#: numpy types ITK's Python wheels cannot write, and the type written instead
_ITK_TYPES = {np.dtype(np.int8): np.int16, np.dtype(np.float16): np.float32, np.dtype(np.uint64): np.float64}


def _write_itk(path: Path, arr: np.ndarray, aff: np.ndarray) -> None:
    """ITK image (``.mha`` / ``.nrrd``) of a ``(*S)`` or channel-last ``(*S, C)`` array on the grid of the RAS affine
    ``aff`` (spacing, origin and direction in ITK's LPS frame, as :func:`save_ddf` writes them)."""
    import itk

    from .ddf import itk_geometry_from_affine

    ndim = aff.shape[0] - 1
    if arr.dtype == np.int64:  # not wrapped: int32 when the values fit
        fits = arr.size == 0 or (arr.min() >= np.iinfo(np.int32).min and arr.max() <= np.iinfo(np.int32).max)
        arr = arr.astype(np.int32 if fits else np.float64)
    arr = arr.astype(_ITK_TYPES.get(arr.dtype, arr.dtype), copy=False)
    is_vector = arr.ndim == ndim + 1
    order = (*range(ndim - 1, -1, -1), ndim) if is_vector else tuple(range(ndim - 1, -1, -1))
    image = itk.GetImageFromArray(np.ascontiguousarray(arr.transpose(order)), is_vector=is_vector)
    spacing, origin, direction = itk_geometry_from_affine(aff)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    itk_write(image, path, compression=True)


def itk_write(image, path: Path, **kwargs) -> None:
    """``itk.imwrite``, whose failures (a RuntimeError over many lines) become an ``OSError`` naming ``path``."""
    import itk

    try:
        itk.imwrite(image, str(path), **kwargs)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OSError(errno.EIO, f"ITK could not write the file ({first})", str(path)) from err


def save_image(path: PathLike, array, affine, dtype=None, overwrite: bool = False) -> Path:
    """Write an image as NIfTI (nibabel) or as an ITK ``.mha`` / ``.nrrd`` file, by the suffix of ``path``.

    Args:
        path: output ``.nii`` / ``.nii.gz`` (nibabel) or ``.mha`` / ``.nrrd`` (ITK; the same grid, with spacing,
            origin and direction in ITK's LPS frame) file.
        array: ``(*S)`` or channel-first ``(C, *S)``; the number of spatial dims ``D`` is taken from ``affine``.
            Multi-channel images are written as ``(*S, C)`` (the 4th NIfTI dim, or ITK vector pixels), which
            :func:`load_image` reads back as ``(C, *S)``; multi-channel 2-D NIfTI images are written as
            ``(H, W, 1, C)`` (read them back with ``load_image(path, spatial_dims=2)``).
        affine: ``(D+1, D+1)`` voxel-to-world RAS affine (as MONAI/nibabel read it).
        dtype: output data type (e.g. ``np.uint8`` for labels); default: the array's (float64 written as float32,
            bool as uint8; ITK files write int8 as int16 and int64 as int32).
        overwrite: replace an existing file.

    Returns:
        The written path.

    The file is written under a temporary name and renamed when complete (a crash never leaves a partial file).

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False. ValueError on shape mismatches or a suffix
        other than ``.nii``, ``.nii.gz``, ``.mha``, ``.nrrd``.
    """
    path = Path(path)
    writer = check_output_suffix(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    arr = _to_numpy(array, "array")
    aff = np.asarray(_to_numpy(affine, "affine"), dtype=np.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4):
        raise ValueError(f"affine: expected a (3, 3) or (4, 4) voxel-to-world matrix, got {aff.shape}.")
    arr = _spatial_array(arr, aff.shape[0] - 1)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8)
    with atomic_write_path(path) as tmp:  # never a half-written file under the final name
        (_write_nifti if writer == "nifti" else _write_itk)(tmp, arr, aff)
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
