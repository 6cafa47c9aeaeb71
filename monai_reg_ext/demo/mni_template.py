"""The real MNI ICBM152 2009a template as a source of demo data: reading it and resampling it onto a demo grid.

The MNI ICBM152 2009a symmetric T1 template and its grey/white-matter probability maps (a population average of 152
adults, Fonov et al. 2011) ship inside the nilearn wheel (``nilearn/datasets/data/``). The demo-data makers of the
brain bundles (``bundles/unpaired_mr_brain``, ``bundles/paired_mrus_brain``) read them from a wheel, the installed
nilearn package or a folder, place a grid of ``spacing`` mm around the brain and sample the (anti-aliased) template
on that grid, optionally through a displacement field.

Coordinates: source and target volumes are arrays read by nibabel; affines are voxel-to-world RAS (mm). Displacement
fields are in **target-grid voxels** with pull semantics (``docs/conventions.md``): the target voxel ``x`` takes the
template value at ``x + ddf(x)``.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = [
    "MNI_FILES",
    "read_nifti_bytes",
    "mni_source_bytes",
    "load_mni_template",
    "brain_mask",
    "target_grid",
    "world_to_source_index",
    "antialias",
    "sample_volumes",
    "template_manifest",
]

#: The template files in nilearn (``nilearn/datasets/data/``): key -> file name.
MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_NILEARN_DATA = "nilearn/datasets/data"


def read_nifti_bytes(data: bytes) -> nib.Nifti1Image:
    """A NIfTI image from the bytes of a ``.nii`` or ``.nii.gz`` file."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return nib.Nifti1Image.from_bytes(data)


def mni_source_bytes(source: str | None, files: Mapping[str, str] = MNI_FILES) -> tuple[dict[str, bytes], str]:
    """Raw (compressed) bytes of the template ``files`` and a description of where they came from.

    Args:
        source: a nilearn wheel (``pip download --no-deps nilearn``), ``"nilearn"`` or ``None`` (the installed
            package), or a folder holding the files (directly, or under ``nilearn/datasets/data``/``datasets/data``).
        files: ``{key: file name}`` to read.

    Raises:
        ValueError: naming ``--source`` and the files expected when they cannot be found.
    """
    if source is None or source == "nilearn":
        try:
            import nilearn  # optional: only the demo-data makers need it
        except ImportError as err:
            raise ValueError(
                "--source: nilearn is not installed; pass a nilearn wheel (`pip download --no-deps nilearn`) or a "
                f"folder holding {sorted(files.values())}."
            ) from err
        folder = Path(nilearn.__file__).parent / "datasets" / "data"
        return {k: (folder / v).read_bytes() for k, v in files.items()}, f"installed nilearn {folder}"
    path = Path(source)
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [f"{_NILEARN_DATA}/{v}" for v in files.values() if f"{_NILEARN_DATA}/{v}" not in names]
            if missing:
                raise ValueError(f"--source: wheel {path} lacks {missing}.")
            return {k: zf.read(f"{_NILEARN_DATA}/{v}") for k, v in files.items()}, f"wheel {path.name}"
    if path.is_dir():
        for folder in (path, path / _NILEARN_DATA, path / "datasets" / "data"):
            if all((folder / v).is_file() for v in files.values()):
                return {k: (folder / v).read_bytes() for k, v in files.items()}, f"folder {folder}"
    raise ValueError(
        f"--source: expected a nilearn wheel, 'nilearn' or a folder holding {sorted(files.values())}, got {source!r}."
    )


def load_mni_template(
    source: str | None, files: Mapping[str, str] = MNI_FILES
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str], str]:
    """Load the template volumes as float64 arrays scaled to [0, 1] (divided by 255, their uint8 maximum).

    Args:
        source: see :func:`mni_source_bytes`.
        files: ``{key: file name}``; the first key is the reference the others must match in shape and affine.

    Returns:
        ``(volumes {key: (X, Y, Z) array}, (4, 4) RAS affine, {file name: sha256 of its bytes}, description)``.

    Raises:
        ValueError: a volume is not 3-D, or shapes/affines differ.
    """
    raw, where = mni_source_bytes(source, files)
    volumes: dict[str, np.ndarray] = {}
    affine, first = None, next(iter(files))
    for key, data in raw.items():
        img = read_nifti_bytes(data)
        arr = np.asarray(img.dataobj, dtype=np.float64)
        if arr.ndim != 3:
            raise ValueError(f"source {key}: expected a 3-D volume, got shape {arr.shape}.")
        volumes[key] = np.clip(arr / 255.0, 0.0, 1.0)
        if affine is None:
            affine = img.affine
        elif not np.allclose(affine, img.affine) or arr.shape != volumes[first].shape:
            raise ValueError(
                f"source {key}: shape/affine differ from the {first}'s ({arr.shape} vs {volumes[first].shape})."
            )
    hashes = {files[k]: hashlib.sha256(v).hexdigest() for k, v in raw.items()}
    return volumes, np.asarray(affine, dtype=np.float64), hashes, where


def brain_mask(volumes: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean brain mask of the template: ``T1 > 0.05`` or ``GM + WM > 0.5`` (values in [0, 1])."""
    return (volumes["t1"] > 0.05) | (volumes["gm"] + volumes["wm"] > 0.5)


def target_grid(
    volumes: Mapping[str, np.ndarray], src_affine: np.ndarray, shape: Sequence[int], spacing: float
) -> tuple[np.ndarray, dict]:
    """RAS affine of a demo grid: ``spacing`` mm isotropic, axes as RAS, centred on the brain's bounding box.

    Args:
        volumes: template volumes with ``t1``, ``gm``, ``wm`` (see :func:`brain_mask`).
        src_affine: ``(4, 4)`` RAS affine of the template.
        shape: grid size in voxels.
        spacing: voxel size in mm.

    Returns:
        ``((4, 4) affine, {"low_mm": [...], "high_mm": [...]})``: the affine and the margins (mm) between the
        brain's bounding box and the grid's ends.

    Raises:
        ValueError: if the brain (T1 > 5 % or GM + WM > 0.5) does not fit in the grid.
    """
    idx = np.argwhere(brain_mask(volumes))
    if idx.size == 0:
        raise ValueError("source: empty brain mask (T1 > 0.05 or GM + WM > 0.5).")
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    lo, hi = idx.min(0).astype(np.float64), idx.max(0).astype(np.float64)
    world = (src_affine[:3, :3] @ (lo + corners * (hi - lo)).T).T + src_affine[:3, 3]
    wlo, whi = world.min(0), world.max(0)
    shape_f = np.asarray(shape, dtype=np.float64)
    extent = spacing * (shape_f - 1)
    if np.any(whi - wlo > extent + 1e-6):
        raise ValueError(
            f"the brain ({np.round(whi - wlo, 1).tolist()} mm) does not fit in the grid "
            f"({np.round(extent, 1).tolist()} mm = {shape_f.astype(int).tolist()} voxels of {spacing} mm)."
        )
    origin = np.round((wlo + whi) / 2 - extent / 2, 3)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = origin
    margins = {"low_mm": np.round(wlo - origin, 2).tolist(), "high_mm": np.round(origin + extent - whi, 2).tolist()}
    return affine, margins


def world_to_source_index(points_vox: np.ndarray, tgt_affine: np.ndarray, src_affine: np.ndarray) -> np.ndarray:
    """Map target-grid voxel coordinates ``(3, N)`` to template voxel coordinates ``(3, N)``."""
    m = np.linalg.inv(src_affine) @ tgt_affine
    return m[:3, :3] @ points_vox + m[:3, 3:4]


def antialias(volumes: Mapping[str, np.ndarray], src_affine: np.ndarray, spacing: float) -> dict[str, np.ndarray]:
    """Gaussian pre-filter before downsampling to ``spacing`` mm: sigma = (factor - 1) / 2 template voxels per axis.

    ``factor`` = target spacing / template spacing (no filtering where it is <= 1).
    """
    src_spacing = np.linalg.norm(src_affine[:3, :3], axis=0)
    sigma = np.maximum((spacing / src_spacing - 1.0) / 2.0, 0.0)
    return {k: ndimage.gaussian_filter(v, sigma=sigma, mode="nearest") for k, v in volumes.items()}


def sample_volumes(
    smoothed: Mapping[str, np.ndarray],
    tgt_affine: np.ndarray,
    src_affine: np.ndarray,
    shape: Sequence[int],
    ddf: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Sample the (pre-filtered) template at ``x + ddf(x)`` for every target voxel ``x`` (one linear interpolation).

    Args:
        smoothed: template volumes (e.g. from :func:`antialias`).
        tgt_affine: ``(4, 4)`` RAS affine of the target grid.
        src_affine: ``(4, 4)`` RAS affine of the template.
        shape: target grid size ``(X, Y, Z)``.
        ddf: optional ``(3, X, Y, Z)`` pull displacement in target-grid voxels.

    Returns:
        ``{key: (X, Y, Z) float64}``; outside the template the nearest edge value is used.
    """
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    if ddf is not None:
        grid = grid + ddf
    coords = world_to_source_index(grid.reshape(3, -1), tgt_affine, src_affine)
    return {
        k: ndimage.map_coordinates(v, coords, order=1, mode="nearest").reshape(tuple(shape))
        for k, v in smoothed.items()
    }


def template_manifest(
    generator: str, hashes: Mapping[str, str], params: Mapping, affine: np.ndarray, margins: Mapping
) -> dict:
    """The first entries of a brain maker's ``manifest.json``: ``generator`` (the maker's path), ``source`` (the
    template's description and file ``hashes`` from :func:`load_mni_template`), ``parameters`` and ``grid`` (its
    ``shape``, the ``affine`` and the brain ``margins`` from :func:`target_grid`)."""
    return {
        "generator": generator,
        "source": {"description": "MNI ICBM152 2009a symmetric (nilearn), T1 + GM + WM", "sha256": dict(hashes)},
        "parameters": params,
        "grid": {"shape": list(params["shape"]), "affine": affine.tolist(), "brain_margins": margins},
    }
