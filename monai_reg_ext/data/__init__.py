"""Registration data: paired, unpaired and grouped datasets and their folder, H5 and datalist layouts.

Public contract: :class:`PairedDataset`, :class:`UnpairedDataset`, :class:`GroupedDataset`. Layouts and examples:
``docs/data.md``; conventions: ``docs/conventions.md``. Re-exported for compatibility: the H5 reader and folder
scanning (:mod:`monai_reg_ext.io`), :func:`random_smooth_ddf` and :func:`gaussian_smooth`
(:mod:`monai_reg_ext.spatial`). Demo-data generators live in :mod:`monai_reg_ext.demo`.
"""

from __future__ import annotations

from ..io import H5ImageReader, h5_ref, scan_h5_file, scan_image_folder
from ..spatial import gaussian_smooth, random_smooth_ddf
from .datasets import GroupedDataset, PairedDataset, RegistrationDataset, UnpairedDataset
from .layouts import ImageEntry, entries_from_datalist, find_entries, find_paired_entries

__all__ = [
    "PairedDataset",
    "UnpairedDataset",
    "GroupedDataset",
    "RegistrationDataset",
    "random_smooth_ddf",
    "gaussian_smooth",
    "H5ImageReader",
    "h5_ref",
    "scan_image_folder",
    "scan_h5_file",
    "ImageEntry",
    "find_entries",
    "find_paired_entries",
    "entries_from_datalist",
]
