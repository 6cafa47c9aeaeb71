"""DDF files as ITK displacement fields (vector image, mm, ITK's LPS physical frame).

A DDF in monai-reg is a ``(D, *S)`` tensor in voxels of the fixed grid with pull semantics
(``warped(x) = moving(x + ddf(x))``, docs/conventions.md). ``save_ddf`` writes the equivalent ITK displacement field:

* the image grid is the fixed grid: ITK spacing/origin/direction come from the fixed RAS affine (as MONAI and nibabel
  read it) after flipping the first two world axes (RAS -> LPS: ``A_lps = diag(-1, -1, 1[, 1]) @ A_ras``);
* each pixel holds the physical displacement ``d_lps = F · R_ras · d_voxel`` in mm (``R_ras`` the linear part of the
  affine, ``F`` the flip), i.e. the displacement of the physical point, so that ITK's ``WarpImageFilter`` /
  ``DisplacementFieldTransform`` (and SimpleITK, ANTs, 3D Slicer) compute ``out(x) = moving(x + d(x))`` in world
  coordinates;
* ITK stores arrays in ``(z, y, x)`` index order with the vector last; MONAI's channel-first ``(D, x, y, z)`` is
  transposed accordingly.

Assumption: the moving image lives in the **same world frame** as the fixed image (its own affine places it there,
e.g. both come from the same scanner session or were pre-aligned to a common space). ITK then resamples the moving
image through its own affine, which gives exactly ``monai_reg_ext.warp_image`` when the moving image is on the fixed
grid (same affine and shape), and the same result up to interpolation when it is on a grid covering the same field of
view, which is what ``warp_image`` assumes for a moving image of another shape.

``monai.data.itk_torch_bridge.monai_to_itk_ddf`` is not used for writing: it expects a DDF in ITK's array order
(``(D, z, y, x)``, channel 0 along ``z``) with an ITK reference image, whereas monai-reg DDFs are channel-first in
MONAI's ``(x, y, z)`` order. Reading reads the file header first and converts any component type (float32, or the
float64 of SimpleITK's ``DisplacementFieldTransform``) to float32 vectors: ITK's Python wheels wrap file readers for
float vectors only.

File formats, by suffix: ``.nii`` / ``.nii.gz`` (vector NIfTI, intent 1007, written with nibabel in the layout ITK's
NIfTI writer gives, so that writing imports no ITK), ``.mha``, ``.nrrd`` (written with ITK). Reading uses ITK.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..spatial import ddf_mm_to_voxel, ddf_voxel_to_mm
from .atomic import atomic_write_path
from .images import check_output_suffix, itk_write
from .inputs import check_nifti_size

__all__ = ["save_ddf", "load_ddf", "ras_to_lps_affine", "itk_geometry_from_affine"]

PathLike = Union[str, os.PathLike]


def ras_to_lps_affine(affine: np.ndarray) -> np.ndarray:
    """Flip the first two world axes of a ``(D+1, D+1)`` affine (RAS <-> LPS; the operation is its own inverse)."""
    affine = np.asarray(affine, dtype=np.float64)
    ndim = affine.shape[0] - 1
    flip = np.diag([-1.0, -1.0] + [1.0] * (ndim - 2) + [1.0])
    return flip @ affine


def itk_geometry_from_affine(affine_ras) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITK ``(spacing, origin, direction)`` of a grid whose voxel-to-world RAS affine is ``affine_ras``.

    Args:
        affine_ras: ``(D+1, D+1)`` NIfTI/MONAI RAS affine. Its linear part must be rotation x scaling (no shear).

    Returns:
        ``spacing (D,)``, ``origin (D,)`` in LPS mm, ``direction (D, D)`` (columns = LPS direction of each array axis).
    """
    aff = np.asarray(affine_ras.detach().cpu() if isinstance(affine_ras, torch.Tensor) else affine_ras, np.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4):
        raise ValueError(f"affine: expected a (3, 3) or (4, 4) voxel-to-world matrix, got shape {aff.shape}.")
    lps = ras_to_lps_affine(aff)
    ndim = aff.shape[0] - 1
    lin = lps[:ndim, :ndim]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine: singular linear part {lin.tolist()}.")
    direction = lin / spacing
    return spacing, lps[:ndim, ndim].copy(), direction


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}.")
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return x.detach().cpu()


def _lps_mm_field(d: torch.Tensor, aff: torch.Tensor) -> np.ndarray:
    """``(D, *S)`` float64 voxel DDF -> ``(*S, D)`` float32 displacements in LPS mm, MONAI ``(x, y[, z])`` order."""
    ndim = d.shape[0]
    ddf_lps = ddf_voxel_to_mm(d[None], aff)[0]  # (D, *S), world RAS mm
    ddf_lps[:2] = -ddf_lps[:2]
    return np.ascontiguousarray(ddf_lps.numpy().transpose(*range(1, ndim + 1), 0).astype(np.float32))


def _is_orthogonal(aff: np.ndarray) -> bool:
    """Whether the voxel axes of a ``(D+1, D+1)`` affine are orthogonal (no shear), as NIfTI's qform and ITK need."""
    ndim = aff.shape[0] - 1
    unit = aff[:ndim, :ndim] / np.linalg.norm(aff[:ndim, :ndim], axis=0)
    return bool(np.allclose(unit.T @ unit, np.eye(ndim), atol=1e-4))


def _write_nifti_field(path: Path, arr: np.ndarray, aff: np.ndarray) -> None:
    """Write ``arr`` ``(*S, D)`` (LPS mm vectors, MONAI order) with nibabel as the NIfTI file ITK's writer makes.

    The header is ITK's for a vector image: dims ``(x, y, z, 1, D)`` (``(x, y, 1, 1, 2)`` in 2-D), intent 1007
    (vector), float32, units mm and s, ``pixdim[4:] = 0``, qform and sform code 1 (scanner). The sform is the RAS
    affine ``aff`` itself (2-D affines embedded in 4x4, as :func:`~monai_reg_ext.io.save_image` writes them), the
    qform its quaternion: ITK wrote the sform back from that quaternion, which differs by float32 rounding.
    """
    import nibabel as nib

    ndim = aff.shape[0] - 1
    a4 = aff
    if ndim == 2:
        a4 = np.eye(4)
        a4[:2, :2], a4[:2, 3] = aff[:2, :2], aff[:2, 2]
    vectors = arr.reshape(*arr.shape[:ndim], *([1] * (4 - ndim)), ndim)  # (x, y, z, t=1, D)
    img = nib.Nifti1Image(vectors, a4)
    img.set_qform(a4, code=1)
    img.set_sform(a4, code=1)
    header = img.header
    header.set_intent("vector")
    header.set_xyzt_units("mm", "sec")
    header["pixdim"][4:] = 0.0
    header["regular"] = b"r"
    nib.save(img, str(path))


def _write_itk_field(path: Path, arr: np.ndarray, aff: np.ndarray) -> None:
    """Write ``arr`` ``(*S, D)`` (LPS mm vectors, MONAI order) with ITK as an ``Image[Vector[F, D], D]`` on the grid
    of the RAS affine ``aff`` (``.mha``, ``.nrrd``; NIfTI on a sheared grid)."""
    import itk

    ndim = aff.shape[0] - 1
    spacing, origin, direction = itk_geometry_from_affine(aff)
    itk_order = np.ascontiguousarray(arr.transpose(*range(ndim - 1, -1, -1), ndim))  # (z, y, x, D)
    field = itk.GetImageFromArray(itk_order, ttype=itk.Image[itk.Vector[itk.F, ndim], ndim])
    field.SetSpacing(spacing.tolist())
    field.SetOrigin(origin.tolist())
    field.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    itk_write(field, path)


def save_ddf(path: PathLike, ddf, fixed_affine, overwrite: bool = False) -> Path:
    """Write a voxel DDF as an ITK displacement field (float32 vectors; vector NIfTI / ``.mha`` / ``.nrrd`` by suffix).

    ``.nii`` / ``.nii.gz`` files are written with nibabel (no ITK import: about 3 s cold), with the header and
    voxels ITK's NIfTI writer gives (:func:`_write_nifti_field`); ``.mha`` / ``.nrrd`` files with ITK.

    Args:
        path: output file: ``.nii``, ``.nii.gz``, ``.mha`` or ``.nrrd``, e.g. ``ddf.nii.gz``.
        ddf: ``(D, *S)`` or ``(1, D, *S)`` DDF in voxels of the fixed grid (D = 2 or 3), pull semantics.
        fixed_affine: ``(D+1, D+1)`` voxel-to-world affine of the fixed image, RAS mm as MONAI/nibabel read it
            (e.g. ``MetaTensor.affine``).
        overwrite: replace an existing file.

    Returns:
        The written path (written under a temporary name and renamed when complete).

    Raises:
        ValueError: on a shape mismatch or a suffix other than ``.nii``, ``.nii.gz``, ``.mha``, ``.nrrd``.
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    writer = check_output_suffix(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    d = _as_tensor(ddf, "ddf").to(torch.float64)
    if d.ndim in (4, 5) and d.shape[0] == 1 and d.shape[1] == d.ndim - 2:
        d = d[0]
    ndim = d.ndim - 1
    if ndim not in (2, 3) or d.shape[0] != ndim:
        raise ValueError(
            f"ddf: expected shape (D, *spatial) or (1, D, *spatial) with D in (2, 3), got {tuple(d.shape)}."
        )
    aff = _as_tensor(
        torch.as_tensor(np.asarray(fixed_affine)) if not isinstance(fixed_affine, torch.Tensor) else fixed_affine,
        "fixed_affine",
    )
    aff = aff.to(torch.float64)
    if aff.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"fixed_affine: expected ({ndim + 1}, {ndim + 1}) for a {ndim}-D DDF, got {tuple(aff.shape)}.")
    aff_np = aff.numpy()
    itk_geometry_from_affine(aff_np)  # a singular affine: refused before anything is written
    arr = _lps_mm_field(d, aff)
    nifti = writer == "nifti" and _is_orthogonal(aff_np)  # a sheared grid: as ITK writes it (no shear)
    with atomic_write_path(path) as tmp:  # never a half-written file under the final name
        (_write_nifti_field if nifti else _write_itk_field)(tmp, arr, aff_np)
    return path


def _nifti_finite(path: Path) -> bool:
    """Whether a NIfTI file's voxels are all finite, read with nibabel: ITK's NIfTI reader turns NaN vectors into 0."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return True
    import nibabel as nib

    return bool(np.isfinite(np.asanyarray(nib.load(str(path)).dataobj)).all())


def _first_line(err: BaseException) -> str:
    """One line of an exception's message: ITK's run over many lines, starting with a source file location and
    ``ITK ERROR: Class(0x...):``; a line ending with ``:`` gets the last line (the reason) appended."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not re.fullmatch(r"\S+\.(cxx|hxx|h|cpp):\d+:", ln)]
    lines = [re.sub(r"^ITK ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", ln) for ln in lines] or [type(err).__name__]
    return f"{lines[0]} {lines[-1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _read_vector_field(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a vector image file with ITK as float32 vectors, whatever its component type (float, double...).

    ITK's Python wheels wrap file readers for ``Vector[F, D]`` images only, so the header is read first (number of
    dimensions and components) and the file is read into ``Image[Vector[F, D], D]``: ITK converts double (e.g.
    SimpleITK's ``sitkVectorFloat64``) or integer components on reading.

    Returns:
        ``(arr, affine_ras)``: ``arr`` ``(*S, D)`` float32 in MONAI's ``(x, y[, z])`` array order, LPS mm vectors;
        ``affine_ras`` the ``(D+1, D+1)`` float64 voxel-to-world RAS affine of the grid.
    """
    import itk

    try:
        image_io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
        if image_io is None:
            raise ValueError("no ITK reader for this file type (use .nii, .nii.gz, .mha, .nrrd)")
        image_io.SetFileName(str(path))
        image_io.ReadImageInformation()
        file_dims, ncomp = int(image_io.GetNumberOfDimensions()), int(image_io.GetNumberOfComponents())
        component = image_io.GetComponentTypeAsString(image_io.GetComponentType())
    except Exception as err:  # re-raised with the file name
        raise ValueError(f"cannot read DDF file {path} as an ITK displacement field: {_first_line(err)}") from err
    # a 3-D field on one slice reads as a 2-D grid of 3-vectors from NIfTI: keep it 3-D
    ndim = 3 if (file_dims, ncomp) == (2, 3) else file_dims
    if ndim not in (2, 3) or ncomp != ndim:
        raise ValueError(
            f"DDF file {path}: expected an ITK displacement field (a 2-D or 3-D grid of 2- or 3-vectors), got a "
            f"{file_dims}-D grid of {ncomp}-component {component} pixels."
        )
    try:
        reader = itk.ImageFileReader[itk.Image[itk.Vector[itk.F, ndim], ndim]].New(FileName=str(path))
        reader.Update()
        field = reader.GetOutput()
    except Exception as err:  # re-raised with the file name
        raise ValueError(f"cannot read DDF file {path} ({component} vectors): {_first_line(err)}") from err
    arr = np.array(itk.array_view_from_image(field), dtype=np.float32)  # (z, y, x, D)
    arr = np.ascontiguousarray(arr.transpose(*range(ndim - 1, -1, -1), ndim))  # (x, y, z, D)
    spacing = np.asarray(field.GetSpacing(), dtype=np.float64)
    direction = np.asarray(itk.array_from_matrix(field.GetDirection()), dtype=np.float64)
    affine_lps = np.eye(ndim + 1)
    affine_lps[:ndim, :ndim] = direction * spacing
    affine_lps[:ndim, ndim] = np.asarray(field.GetOrigin(), dtype=np.float64)
    return arr, ras_to_lps_affine(affine_lps)


def _check_nifti_geometry(path: Path, affine_itk: np.ndarray) -> None:
    """Refuse a NIfTI DDF whose grid ITK (which reads it here) and nibabel read differently: a header with no sform nor
    qform code, or whose sform and qform disagree; warping with it would put the output elsewhere than other tools.

    Raises:
        ValueError: naming the file, with both affines.
    """
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return
    import nibabel as nib

    header = nib.load(str(path)).header
    ndim = affine_itk.shape[0] - 1
    ref = np.asarray(header.get_best_affine(), dtype=np.float64)
    ref = np.concatenate([ref[:ndim, :ndim], ref[:ndim, 3:]], axis=1) if ndim == 2 else ref[:3]
    if not np.allclose(affine_itk[:-1], ref, rtol=1e-4, atol=1e-3):
        codes = "no sform nor qform code" if header["sform_code"] == 0 == header["qform_code"] else "sform and qform"
        raise ValueError(
            f"DDF file {path}: ambiguous NIfTI header ({codes}): ITK reads the grid "
            f"{np.round(affine_itk[:-1], 4).tolist()}, nibabel {np.round(ref, 4).tolist()}; write the field with a "
            "consistent sform and qform (as ITK, ANTs, SimpleITK and monai-reg do)."
        )


def load_ddf(path: PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an ITK displacement field (written by :func:`save_ddf`, ITK, ANTs or SimpleITK) back to voxels.

    Float32 and float64 vectors (e.g. SimpleITK's ``sitkVectorFloat64``, the type ``sitk.DisplacementFieldTransform``
    uses) are read, from ``.nii``, ``.nii.gz``, ``.mha``, ``.nrrd`` (or any vector image ITK reads), 2-D and 3-D.

    Args:
        path: a vector image file with ``D`` components on a ``D``-dimensional grid, displacements in LPS mm.

    Returns:
        ``(ddf, affine)``: ``ddf`` ``(D, *S)`` float32 in voxels of the file's grid (channel ``k`` along array axis
        ``k``, MONAI order), ``affine`` ``(D+1, D+1)`` float64 voxel-to-world RAS affine of that grid.

    Raises:
        FileNotFoundError / IsADirectoryError / ValueError naming the file when it is missing, a folder, unreadable,
        truncated, not a displacement field (wrong number of components) or holds NaN/inf.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"DDF file {path} is a directory; expected an ITK displacement field file.")
    if not path.is_file():
        raise FileNotFoundError(f"DDF file {path} does not exist.")
    check_nifti_size(path, "DDF file")  # a header claiming more than the file holds: refused before reading
    arr, affine_ras = _read_vector_field(path)
    try:
        finite = np.isfinite(arr).all() and _nifti_finite(path)
    except Exception as err:  # ITK may zero-fill a truncated .nii(.gz); nibabel reads the bytes that are there
        raise ValueError(
            f"cannot read DDF file {path}: truncated or corrupt ({type(err).__name__}: {_first_line(err)})."
        ) from None
    if not finite:
        raise ValueError(f"DDF file {path}: contains NaN or infinite displacements.")
    _check_nifti_geometry(path, affine_ras)
    affine = torch.as_tensor(affine_ras)
    ddf_lps = torch.as_tensor(np.moveaxis(arr.astype(np.float64), -1, 0))  # (D, x, y, z) LPS mm
    ddf_ras = ddf_lps.clone()
    ddf_ras[:2] = -ddf_ras[:2]
    ddf = ddf_mm_to_voxel(ddf_ras[None], affine)[0]
    return ddf.to(torch.float32), affine
