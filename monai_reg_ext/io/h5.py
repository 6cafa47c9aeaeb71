"""H5 image references and a MONAI reader for H5 datasets.

A file reference is a plain path for image files (read by MONAI's ``LoadImage``; found by
:func:`~monai_reg_ext.io.folders.scan_image_folder`), or ``"<file>.h5::<key>"`` for one dataset of an H5 file (read by
:class:`H5ImageReader`). Conventions: ``docs/conventions.md``; layouts: ``docs/data.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys

from .folders import natural_key

__all__ = [
    "H5_SEPARATOR",
    "H5ImageReader",
    "h5_ref",
    "split_h5_ref",
    "is_h5_ref",
    "scan_h5_file",
    "ref_exists",
]

#: Separator between an H5 file path and a dataset key in a file reference.
H5_SEPARATOR = "::"
_H5_SUFFIXES = (".h5", ".hdf5")


def h5_ref(path: str | os.PathLike, key: str) -> str:
    """Reference to dataset ``key`` of H5 file ``path``: ``"<path>::<key>"``."""
    return f"{os.fspath(path)}{H5_SEPARATOR}{key}"


def is_h5_ref(ref: str) -> bool:
    """Whether ``ref`` is an H5 reference ``"<file>.h5::<key>"``."""
    if H5_SEPARATOR not in str(ref):
        return False
    path = str(ref).rsplit(H5_SEPARATOR, 1)[0]
    return path.lower().endswith(_H5_SUFFIXES)


def split_h5_ref(ref: str) -> tuple[str, str]:
    """Split ``"<file>.h5::<key>"`` into ``(file, key)``.

    Raises:
        ValueError: if ``ref`` is not an H5 reference.
    """
    if not is_h5_ref(ref):
        raise ValueError(f"expected an H5 reference '<file>.h5{H5_SEPARATOR}<key>', got '{ref}'.")
    path, key = str(ref).rsplit(H5_SEPARATOR, 1)
    return path, key


def scan_h5_file(path: str | os.PathLike) -> list[str]:
    """Dataset keys at the top level of H5 file ``path``, in natural sort order.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it cannot be read as H5, holds no dataset, or holds a group instead of a dataset.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected an H5 file at '{path}', but it does not exist.")
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
            not_datasets = [k for k in keys if not isinstance(f[k], h5py.Dataset)]
    except OSError as e:
        raise ValueError(f"cannot read H5 file '{path}' (unreadable or truncated): {e}") from e
    if not_datasets:
        raise ValueError(
            f"H5 file '{path}': expected only datasets at the top level, got groups {sorted(not_datasets)[:5]}."
        )
    if not keys:
        raise ValueError(f"no datasets found in H5 file '{path}'.")
    return sorted(keys, key=natural_key)


def ref_exists(ref: str) -> bool:
    """Whether the file a reference points to exists (the H5 key is not checked)."""
    path = split_h5_ref(ref)[0] if is_h5_ref(ref) else ref
    return os.path.exists(path)


class H5ImageReader(ImageReader):
    """MONAI image reader for H5 datasets referenced as ``"<file>.h5::<key>"``.

    H5 has no geometry: the affine is the identity (1 mm voxels at the origin), as in DeepReg. An array with
    ``spatial_dims + 1`` dimensions is channel-last (several labels, one-hot), as DeepReg's 4th label axis.

    Args:
        spatial_dims: number of spatial dimensions; ``None`` means 3 for arrays with 3 or more dimensions, else 2.

    Example:
        >>> from monai.transforms import LoadImage
        >>> img = LoadImage(reader=H5ImageReader(), image_only=True)("images.h5::case01")  # doctest: +SKIP
    """

    def __init__(self, spatial_dims: int | None = None):
        super().__init__()
        if spatial_dims not in (None, 2, 3):
            raise ValueError(f"spatial_dims must be None, 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        return len(names) > 0 and all(is_h5_ref(str(n)) for n in names)

    def read(self, data: Sequence[str] | str, **kwargs) -> list[tuple[str, np.ndarray]]:
        import h5py

        refs = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        out = []
        for ref in refs:
            path, key = split_h5_ref(str(ref))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"H5 file '{path}' (for key '{key}') does not exist.")
            try:
                with h5py.File(path, "r") as f:
                    if key not in f:
                        known = sorted(f.keys(), key=natural_key)[:8]
                        raise ValueError(f"unknown H5 key '{key}' in '{path}'; expected one of {known}.")
                    arr = np.asarray(f[key], dtype=np.float32)
            except OSError as e:
                raise ValueError(f"cannot read key '{key}' of H5 file '{path}' (unreadable or truncated): {e}") from e
            out.append((str(ref), arr))
        return out

    def get_data(self, img: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict]:
        arrays = []
        meta: dict = {}
        for ref, arr in img:
            dims = self.spatial_dims or (3 if arr.ndim >= 3 else 2)
            if arr.ndim not in (dims, dims + 1):
                raise ValueError(
                    f"H5 dataset '{ref}': expected {dims} spatial dimensions (plus an optional last label axis), "
                    f"got an array of shape {arr.shape}."
                )
            if not meta:
                meta = {
                    MetaKeys.AFFINE: np.eye(dims + 1),
                    MetaKeys.ORIGINAL_AFFINE: np.eye(dims + 1),
                    MetaKeys.SPATIAL_SHAPE: np.asarray(arr.shape[:dims]),
                    MetaKeys.SPACE: SpaceKeys.RAS,
                    "pixdim": np.ones(8),
                    MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if arr.ndim == dims else -1,
                }
            arrays.append(arr)
        if len(arrays) == 1:
            return arrays[0], meta
        if np.isnan(meta[MetaKeys.ORIGINAL_CHANNEL_DIM]):
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
            return np.stack(arrays, axis=0), meta
        return np.concatenate(arrays, axis=-1), meta
