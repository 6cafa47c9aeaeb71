"""Landmark files (CSV or JSON) read as voxel indices.

Formats:

* **CSV**: one point per row, 2 or 3 numeric columns. A header row is optional; with a header, the columns named
  ``x, y[, z]`` or ``i, j[, k]`` (case-insensitive) are used and other columns (e.g. ``name``) are ignored. Without a
  header every column must be numeric.
* **JSON**: either a list of points ``[[x, y, z], ...]`` or an object
  ``{"points": [...], "space": "voxel" | "physical"}``.

Spaces:

* ``"voxel"``: array indices of the image (MONAI/nibabel channel-first order, i.e. NIfTI ``i, j, k``; 0-based;
  non-integer values allowed).
* ``"physical"``: world coordinates in mm in the **NIfTI/MONAI RAS frame**, i.e. the frame of the image affine as
  nibabel (and MONAI's ``LoadImage``) read it. They are converted to voxels with the inverse affine. Points exported
  from ITK/3D Slicer in LPS must have their first two coordinates negated first.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np

__all__ = ["read_landmarks", "physical_to_voxel", "voxel_to_physical"]

PathLike = Union[str, os.PathLike]
_SPACES = ("voxel", "physical")
_NAME_SETS = (("x", "y", "z"), ("i", "j", "k"))


def _affine(affine, ndim: int, where: str) -> np.ndarray:
    if affine is None:
        raise ValueError(f"{where}: physical (mm) landmarks need the image affine (affine=None was given).")
    a = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=np.float64)
    if a.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"{where}: expected a ({ndim + 1}, {ndim + 1}) affine for {ndim}-D points, got {a.shape}.")
    return a


def physical_to_voxel(points, affine) -> np.ndarray:
    """Map ``(N, D)`` RAS mm points to voxel indices with the inverse of the ``(D+1, D+1)`` voxel-to-world affine."""
    p = np.asarray(points, dtype=np.float64)
    a = _affine(affine, p.shape[1], "physical_to_voxel")
    return (np.linalg.inv(a) @ np.concatenate([p, np.ones((len(p), 1))], 1).T).T[:, :-1]


def voxel_to_physical(points, affine) -> np.ndarray:
    """Map ``(N, D)`` voxel indices to RAS mm with the ``(D+1, D+1)`` voxel-to-world affine."""
    p = np.asarray(points, dtype=np.float64)
    a = _affine(affine, p.shape[1], "voxel_to_physical")
    return (a @ np.concatenate([p, np.ones((len(p), 1))], 1).T).T[:, :-1]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"landmark file {path}: empty; expected one point per row (columns x,y[,z] or i,j[,k]).")
    header = None if all(_is_number(c) for c in rows[0]) else [c.lower() for c in rows[0]]
    body = rows[1:] if header is not None else rows
    cols = None
    if header is not None:
        for names in _NAME_SETS:
            for nd in (3, 2):
                if all(n in header for n in names[:nd]):
                    cols = [header.index(n) for n in names[:nd]]
                    break
            if cols:
                break
        if cols is None:
            raise ValueError(
                f"landmark file {path}: header {rows[0]} has no columns named x,y[,z] or i,j[,k]; "
                "expected those names (or no header and 2 or 3 numeric columns)."
            )
    points = []
    for n, row in enumerate(body):
        values = [row[c] if c < len(row) else "" for c in cols] if cols else row
        if not all(_is_number(v) for v in values) or len(values) not in (2, 3):
            raise ValueError(
                f"landmark file {path}: row {n + (2 if header else 1)} = {row} is not 2 or 3 numeric coordinates."
            )
        points.append([float(v) for v in values])
    if len({len(p) for p in points}) > 1:
        raise ValueError(f"landmark file {path}: rows have different numbers of coordinates.")
    return np.asarray(points, dtype=np.float64).reshape(-1, len(points[0]) if points else 3)


def _read_json(path: Path) -> tuple[np.ndarray, str | None]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"landmark file {path}: invalid JSON ({err}).") from err
    space = None
    if isinstance(data, dict):
        if "points" not in data:
            raise ValueError(
                f"landmark file {path}: expected a list of points or an object with a 'points' key, "
                f"got keys {list(data)}."
            )
        space = data.get("space")
        data = data["points"]
    try:
        pts = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"landmark file {path}: 'points' must be a list of [x, y(, z)] numbers ({err}).") from err
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"landmark file {path}: expected points of shape (N, 2) or (N, 3), got {pts.shape}.")
    return pts, space


def read_landmarks(
    path: PathLike,
    space: str | None = None,
    affine=None,
    spatial_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Read landmarks from a CSV or JSON file and return them as voxel indices.

    Args:
        path: ``.csv`` (or ``.txt``) or ``.json`` file (formats in the module docstring).
        space: ``"voxel"`` or ``"physical"`` (RAS mm). ``None`` uses the JSON file's ``"space"`` if present, else
            ``"voxel"``. A value that contradicts the file's ``"space"`` is an error.
        affine: ``(D+1, D+1)`` voxel-to-world RAS affine of the image the landmarks belong to; required for
            physical points.
        spatial_shape: the image's array shape; if given, every point must lie in ``[0, S - 1]`` along each axis.

    Returns:
        ``(N, D)`` float64 voxel indices.

    Raises:
        ValueError: naming the file and what was expected (format, space, affine), or the index of a point outside
            the image. FileNotFoundError if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file {path} does not exist.")
    if space is not None and space not in _SPACES:
        raise ValueError(f"read_landmarks({path}): space must be one of {_SPACES}, got {space!r}.")
    suffix = path.suffix.lower()
    if suffix == ".json":
        points, file_space = _read_json(path)
        if file_space is not None and file_space not in _SPACES:
            raise ValueError(f"landmark file {path}: 'space' must be one of {_SPACES}, got {file_space!r}.")
        if space is not None and file_space is not None and space != file_space:
            raise ValueError(f"landmark file {path}: the file says space={file_space!r} but {space!r} was requested.")
        space = space or file_space
    elif suffix in (".csv", ".txt"):
        points = _read_csv(path)
    else:
        raise ValueError(f"landmark file {path}: unknown extension {suffix!r}; expected .csv, .txt or .json.")
    space = space or "voxel"
    if len(points) == 0:
        raise ValueError(f"landmark file {path}: no points found.")
    if space == "physical":
        points = physical_to_voxel(points, _affine(affine, points.shape[1], f"landmark file {path}"))
    if spatial_shape is not None:
        shape = np.asarray(list(spatial_shape), dtype=np.float64)
        if shape.size != points.shape[1]:
            raise ValueError(
                f"landmark file {path}: {points.shape[1]}-D points for an image of shape {tuple(spatial_shape)}."
            )
        tol = 1e-3
        bad = np.nonzero(((points < -tol) | (points > shape - 1 + tol)).any(axis=1))[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"landmark file {path}: point {i} at voxel {points[i].round(3).tolist()} is outside the image of "
                f"shape {tuple(int(s) for s in spatial_shape)} ({bad.size} point(s) outside)."
            )
    return points
