"""Read an image, label or DDF-grid reference given as a file, an array or a MONAI ``MetaTensor``.

Used by :func:`monai_reg_ext.register` and the ``monai-reg`` commands: every input becomes a channel-first
``MetaTensor`` ``(C, *S)`` with its voxel-to-world (RAS) affine, and bad input gets an error naming it and its file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

from ..spatial.resample import affine_nd

__all__ = ["ImageLike", "load_input", "check_nifti_size", "check_affine", "MAX_VOXELS"]

MAX_VOXELS = 2**30
"""Largest image (voxels x channels) read: 4 GiB as float32. Larger headers are refused before any allocation."""

ImageLike = Union[str, os.PathLike, np.ndarray, torch.Tensor]

logger = logging.getLogger(__name__)


def load_input(x: ImageLike, name: str, spatial_dims: int, single_channel: bool = False) -> MetaTensor:
    """Load an image or label as a channel-first ``MetaTensor`` ``(C, *S)`` with its affine.

    Args:
        x: a file readable by MONAI's ``LoadImage`` (NIfTI, ``.mha``, ``.nrrd``, ...), an array/tensor ``(*S)`` or
            ``(C, *S)`` (identity affine unless it is a ``MetaTensor``), or a ``MetaTensor``.
        name: what it is (``"moving"``, ``"fixed_label"``...), used in error messages.
        spatial_dims: number of spatial dims the network expects.
        single_channel: refuse more than one channel (intensity images; a 4-D NIfTI where a 3-D one is expected).

    Raises:
        FileNotFoundError / ValueError naming the input (and its file) and what was expected.
    """
    what = name
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        what = f"{name} {str(path)!r}"
        if not path.exists():
            raise FileNotFoundError(f"{name}: file {str(path)!r} does not exist.")
        if path.is_dir():
            raise ValueError(f"{name}: {str(path)!r} is a directory; expected an image file.")
        if path.suffix.lower() in (".h5", ".hdf5"):
            raise ValueError(
                f"{what}: H5 files are read by the datasets (images.h5 + key), not here; expected an image file "
                "(NIfTI, .mha, .nrrd...)."
            )
        check_nifti_size(path, name)
        try:
            img = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
        except Exception as err:  # readers raise many types; report them with the file name
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(
                f"{name}: cannot read {str(path)!r} as an image ({type(err).__name__}: {first})."
            ) from None
        check_affine(img, path, what)
        if img.ndim == spatial_dims and spatial_dims == 2:
            img = img[None]
    else:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        if t.ndim == spatial_dims:
            t = t[None]
        img = t if isinstance(t, MetaTensor) else MetaTensor(t, affine=torch.eye(4 if spatial_dims == 3 else 3))
    if img.ndim != spatial_dims + 1:
        raise ValueError(
            f"{what}: expected a {spatial_dims}-D image (shape (*S) or (C, *S)), got shape {tuple(img.shape)}."
        )
    if 0 in img.shape[1:]:
        raise ValueError(f"{what}: an empty image (shape {tuple(img.shape[1:])}, no voxel along an axis).")
    lin = affine_nd(img.affine, spatial_dims)[:spatial_dims, :spatial_dims]
    if not np.isfinite(lin).all() or abs(float(np.linalg.det(lin))) < 1e-12:
        raise ValueError(f"{what}: its affine is singular (determinant 0), so its voxels have no world position.")
    if single_channel and img.shape[0] != 1:
        raise ValueError(
            f"{what}: expected a single-channel {spatial_dims}-D image, got {img.shape[0]} channels "
            f"(a {spatial_dims + 1}-D array, shape {tuple(img.shape)})."
        )
    img = img.float()
    if not torch.isfinite(img).all():
        raise ValueError(f"{what}: contains NaN or infinite voxels.")
    return img


def _same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two voxel-to-world affines agree, up to float32 storage in a header (1e-4 relative, 1e-3 mm)."""
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-3))


def _sform_is_qform(header) -> bool:
    """Whether a NIfTI header's sform and qform are both set (codes > 0) and describe one grid, which every reader
    (nibabel, MONAI, ITK) then reads."""
    if int(header["sform_code"]) <= 0 or int(header["qform_code"]) <= 0:
        return False
    try:
        sform, qform = (np.asarray(a, dtype=np.float64) for a in (header.get_sform(), header.get_qform()))
    except Exception:  # e.g. an invalid quaternion: left to the full check
        return False
    return bool(np.isfinite(sform).all() and np.isfinite(qform).all() and _same_grid(sform, qform))


def check_affine(img: MetaTensor, path: Path, what: str) -> None:
    """Refuse an image whose voxel-to-world affine is not finite, or (3-D NIfTI) is not what every tool reads.

    MONAI's NIfTI reader "corrects" a header whose sform disagrees with its pixdim by taking the qform instead, where
    nibabel and the NIfTI rules take the sform; ITK (ANTs, 3D Slicer, ITK-SNAP) may take the qform where nibabel takes
    the sform. When these differ, the same file lies elsewhere in the world for monai-reg than for other tools, and
    outputs would not overlay it there: such an ambiguous header is refused (a sheared grid, which ITK cannot hold,
    is read as nibabel does; a sheared fixed image is refused by the registration). A header with no sform nor
    qform code (no defined world position: nibabel centres the grid, ITK puts voxel 0 at the origin) is read as
    nibabel does, with a warning.

    Raises:
        ValueError: naming ``what`` (the input and its file), with the affines that disagree.
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise ValueError(
            f"{what}: its voxel-to-world affine is not finite (NaN or infinite in the sform, qform or pixdim): "
            f"{np.round(affine[:-1], 4).tolist()}."
        )
    if not "".join(path.suffixes[-2:]).lower().endswith((".nii", ".nii.gz")) or affine.shape != (4, 4):
        return
    import nibabel as nib

    from .images import itk_header_affine

    try:
        header = nib.load(str(path)).header  # the header only
    except Exception:  # read by MONAI already
        return
    ref = np.asarray(header.get_best_affine(), dtype=np.float64)
    if not np.isfinite(ref).all():
        raise ValueError(
            f"{what}: its voxel-to-world affine is not finite (NaN or infinite in the sform, qform or pixdim): "
            f"{np.round(ref[:-1], 4).tolist()}."
        )
    if not _same_grid(affine, ref):
        unit = ref[:3, :3] / np.linalg.norm(ref[:3, :3], axis=0).clip(1e-12)
        sheared = (
            " is sheared (e.g. CT gantry tilt) and" if not np.allclose(unit.T @ unit, np.eye(3), atol=1e-4) else ""
        )
        raise ValueError(
            f"{what}: ambiguous NIfTI header: its sform {np.round(ref[:-1], 4).tolist()} (what nibabel reads){sheared} "
            f"disagrees with its pixdim, and MONAI would read the qform {np.round(affine[:-1], 4).tolist()} instead; "
            "make the sform and qform agree (or set sform_code 0)."
        )
    lin = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0).clip(1e-12)
    if not np.allclose(lin.T @ lin, np.eye(3), atol=1e-4):
        return  # a sheared grid (CT gantry tilt), which ITK cannot hold: nibabel's reading is the right one
    if _sform_is_qform(header):  # both set and equal: ITK reads this grid too (no need to start ITK: 2 s cold)
        return
    itk_affine = itk_header_affine(path) if int(header["dim"][0]) >= 3 else None
    if itk_affine is not None and itk_affine.shape[0] > 4:  # 4-D (channels, time): its 3 spatial axes
        itk_affine = itk_affine[np.ix_([0, 1, 2, -1], [0, 1, 2, -1])]
    if itk_affine is None or _same_grid(affine, itk_affine):
        return
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        logger.warning(
            "%s: no sform nor qform code: the world position of its grid is undefined (nibabel, read here, centres "
            "it; ITK-based tools put voxel 0 at the origin): outputs follow nibabel.",
            what,
        )
        return
    raise ValueError(
        f"{what}: ambiguous NIfTI header: nibabel and MONAI read the grid {np.round(affine[:-1], 4).tolist()} "
        f"(sform), ITK-based tools (ANTs, 3D Slicer) {np.round(itk_affine[:-1], 4).tolist()} (qform); outputs would "
        "not overlay it in every viewer: make the sform and qform agree."
    )


def check_nifti_size(path: Path, name: str, max_voxels: int = MAX_VOXELS) -> None:
    """Check a NIfTI header against its file before any voxel is read (no allocation).

    A header may claim far more voxels than the file holds (a truncated or forged file): the data size it implies is
    compared with the file size (``.nii``) or with the gzip trailer's uncompressed size (``.nii.gz``, under 4 GiB),
    and images over ``max_voxels`` are refused. Other formats are left to their readers.

    Raises:
        ValueError: naming the input, its file, the header's shape and what the file holds.
    """
    import struct

    import nibabel as nib

    suffixes = "".join(path.suffixes[-2:]).lower()
    if not (suffixes.endswith(".nii") or suffixes.endswith(".nii.gz")):
        return
    try:
        header = nib.load(str(path)).header
        shape = tuple(int(d) for d in header.get_data_shape())
        itemsize = int(header.get_data_dtype().itemsize)
        offset = max(int(header.get_data_offset()), int(getattr(header, "single_vox_offset", 0)))
    except Exception:  # unreadable headers are reported by the image reader with its own message
        return
    voxels = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if voxels == 0:
        raise ValueError(f"{name}: {str(path)!r} declares shape {shape}: an empty image (an axis without voxels).")
    if voxels > max_voxels:
        raise ValueError(
            f"{name}: {str(path)!r} declares shape {shape} ({voxels:,} voxels), over the limit of {max_voxels:,} "
            "voxels; refusing to allocate it."
        )
    expected = offset + voxels * itemsize
    if suffixes.endswith(".nii.gz"):
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 4:
                return
            f.seek(-4, os.SEEK_END)
            actual = struct.unpack("<I", f.read(4))[0]
        if expected < 2**32 and actual < expected:
            raise ValueError(
                f"{name}: {str(path)!r} is truncated or its header is wrong: shape {shape} needs {expected:,} bytes, "
                f"the compressed file holds {actual:,}."
            )
    elif path.stat().st_size < expected:
        raise ValueError(
            f"{name}: {str(path)!r} is truncated or its header is wrong: shape {shape} needs {expected:,} bytes, "
            f"the file has {path.stat().st_size:,}."
        )
