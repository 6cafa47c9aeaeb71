"""Affine transforms as ITK transform files (``.tfm`` / ``.txt``) that SimpleITK, ANTs and 3D Slicer read.

monai-reg's affine ``theta = [A | t]`` (``(D, D + 1)``) acts on **fixed voxel indices** with the origin at voxel 0:
the fixed voxel ``p`` samples the moving image (as resampled on the fixed grid, i.e. placed in the fixed image's
world frame) at the voxel position ``p' = A p + t`` of the fixed grid (``docs/conventions.md``,
:func:`monai_reg_ext.spatial.affine_to_ddf`). With the fixed image's voxel-to-world RAS affine ``W`` and the RAS -> LPS
flip ``F = diag(-1, -1, 1[, 1])``, the physical map ITK applies is

``T_lps = F W [A | t] W^-1 F`` (homogeneous ``(D + 1, D + 1)`` matrices),

the map from a fixed physical point to a moving physical point (ITK's resampling direction), written as an
``AffineTransform_double_D_D`` with centre 0: ``Parameters`` = the ``D x D`` matrix row by row then the translation
(mm), ``FixedParameters`` = the centre. The moving image is assumed to lie in the same world frame as the fixed one
(as for the DDF files of :mod:`.ddf`); ITK then resamples it through its own affine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .atomic import atomic_write_path
from .ddf import ras_to_lps_affine

__all__ = ["save_itk_affine", "load_itk_affine"]

PathLike = Union[str, os.PathLike]

_SUFFIXES = (".tfm", ".txt")
_TYPE = re.compile(r"^(AffineTransform|MatrixOffsetTransformBase)_(double|float)_([23])_([23])$")


def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values.")
    return arr


def _fixed_affine(fixed_affine, ndim: int) -> np.ndarray:
    """The ``(ndim + 1, ndim + 1)`` RAS affine (a 2D image may carry MONAI's 4x4 affine)."""
    from monai.data.utils import to_affine_nd

    aff = _as_array(fixed_affine, "fixed_affine")
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4) or aff.shape[0] < ndim + 1:
        raise ValueError(f"fixed_affine: expected a ({ndim + 1}, {ndim + 1}) voxel-to-world matrix, got {aff.shape}.")
    aff = np.asarray(to_affine_nd(ndim, aff), dtype=np.float64)
    if abs(np.linalg.det(aff[:ndim, :ndim])) < 1e-12:
        raise ValueError(f"fixed_affine: singular linear part {aff[:ndim, :ndim].tolist()}.")
    return aff


def _homogeneous(theta: np.ndarray) -> np.ndarray:
    ndim = theta.shape[0]
    return np.vstack([theta, np.eye(ndim + 1)[-1:]])


def _flip(matrix: np.ndarray) -> np.ndarray:
    """``F @ matrix @ F`` with ``F = diag(-1, -1, 1[, 1])``: a homogeneous map between RAS and LPS (both ways)."""
    flip = ras_to_lps_affine(np.eye(matrix.shape[0]))
    return flip @ matrix @ flip


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(f"ITK transform file {path}: expected a {' or '.join(_SUFFIXES)} name, got {path.suffix!r}.")


def save_itk_affine(path: PathLike, theta, fixed_affine, overwrite: bool = False) -> Path:
    """Write a voxel affine as an ITK ``AffineTransform_double_D_D`` text file (physical LPS, fixed -> moving).

    Args:
        path: output ``.tfm`` or ``.txt`` file (ITK's text transform format, "#Insight Transform File V1.0").
        theta: ``(D, D + 1)`` (or ``(1, D, D + 1)``) ``[A | t]`` on fixed voxel indices, ``t`` in fixed voxels: the
            fixed voxel ``p`` samples the moving image at the fixed-grid voxel position ``A p + t``.
        fixed_affine: ``(D + 1, D + 1)`` voxel-to-world RAS affine of the fixed image (nibabel/MONAI convention).
        overwrite: replace an existing file.

    Returns:
        The written path (written under a temporary name and renamed when complete).

    Raises:
        ValueError: for a wrong suffix, shape or non-finite values; FileExistsError if ``path`` exists and
            ``overwrite`` is False.
    """
    path = Path(path)
    _check_suffix(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    th = _as_array(theta, "theta")
    if th.ndim == 3 and th.shape[0] == 1:
        th = th[0]
    if th.ndim != 2 or th.shape[0] not in (2, 3) or th.shape[1] != th.shape[0] + 1:
        raise ValueError(f"theta: expected shape (D, D + 1) with D in (2, 3), got {th.shape}.")
    ndim = th.shape[0]
    world = _fixed_affine(fixed_affine, ndim)
    ras = world @ _homogeneous(th) @ np.linalg.inv(world)
    lps = _flip(ras)
    params = [*lps[:ndim, :ndim].reshape(-1), *lps[:ndim, ndim]]
    text = (
        "#Insight Transform File V1.0\n#Transform 0\n"
        f"Transform: AffineTransform_double_{ndim}_{ndim}\n"
        f"Parameters: {' '.join(repr(float(v)) for v in params)}\n"
        f"FixedParameters: {' '.join(['0'] * ndim)}\n"
    )
    with atomic_write_path(path) as tmp:
        tmp.write_text(text)
    return path


def _parse(path: Path) -> tuple[str, list[float], list[float]]:
    """The single transform of an ITK text transform file: ``(type, parameters, fixed parameters)``."""
    fields: dict[str, list[str]] = {"Transform": [], "Parameters": [], "FixedParameters": []}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in fields:
            fields[key.strip()].append(value.strip())
    if not fields["Transform"]:
        raise ValueError(f"ITK transform file {path}: no 'Transform:' line (not an ITK text transform file).")
    if len(fields["Transform"]) != 1:
        raise ValueError(
            f"ITK transform file {path}: holds {len(fields['Transform'])} transforms "
            f"({', '.join(fields['Transform'])}); expected a single affine transform."
        )
    name = fields["Transform"][0]
    if not _TYPE.match(name):
        raise ValueError(
            f"ITK transform file {path}: transform type {name!r} is not supported; expected "
            "AffineTransform or MatrixOffsetTransformBase (double or float, 2_2 or 3_3)."
        )
    try:
        params = [float(v) for v in " ".join(fields["Parameters"]).split()]
        fixed = [float(v) for v in " ".join(fields["FixedParameters"]).split()]
    except ValueError as err:
        raise ValueError(f"ITK transform file {path}: unreadable number ({err}).") from err
    return name, params, fixed


def load_itk_affine(path: PathLike, fixed_affine, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Read an ITK affine transform file back to monai-reg's voxel affine ``theta`` (the inverse of the save).

    Accepts ``AffineTransform`` and ``MatrixOffsetTransformBase`` (``double`` or ``float``, 2D or 3D) with any
    centre (``FixedParameters``), as ITK, SimpleITK, ANTs and 3D Slicer write them in text form.

    Args:
        path: ``.tfm`` or ``.txt`` ITK text transform file (fixed -> moving physical LPS map).
        fixed_affine: ``(D + 1, D + 1)`` voxel-to-world RAS affine of the fixed image.
        dtype: floating dtype of the result.

    Returns:
        ``theta`` ``(D, D + 1)`` on fixed voxel indices (``t`` in fixed voxels), for
        :func:`monai_reg_ext.spatial.affine_to_ddf` after adding a batch axis.

    Raises:
        FileNotFoundError: when the file is missing. ValueError naming the file: another transform type (named),
            several transforms, wrong parameter counts, unreadable numbers or a wrong suffix.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"ITK transform file {path} does not exist.")
    name, params, fixed = _parse(path)
    ndim = int(_TYPE.match(name).group(3))
    if int(_TYPE.match(name).group(4)) != ndim or len(params) != ndim * (ndim + 1) or len(fixed) not in (0, ndim):
        raise ValueError(
            f"ITK transform file {path}: {name} needs {ndim * (ndim + 1)} Parameters and {ndim} FixedParameters, "
            f"got {len(params)} and {len(fixed)}."
        )
    matrix = np.asarray(params[: ndim * ndim]).reshape(ndim, ndim)
    centre = np.asarray(fixed if fixed else [0.0] * ndim)
    offset = np.asarray(params[ndim * ndim :]) + centre - matrix @ centre
    lps = _homogeneous(np.hstack([matrix, offset[:, None]]))
    ras = _flip(lps)
    world = _fixed_affine(fixed_affine, ndim)
    theta = np.linalg.inv(world) @ ras @ world
    return torch.as_tensor(theta[:ndim], dtype=dtype)
