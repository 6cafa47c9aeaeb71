"""Registration data: paired, unpaired and grouped datasets, layouts, H5 reading, synthetic deformations.

Public contract: :class:`PairedDataset`, :class:`UnpairedDataset`, :class:`GroupedDataset`,
:func:`random_smooth_ddf`. Layouts and examples: ``docs/data.md``; conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from .datasets import GroupedDataset, PairedDataset, RegistrationDataset, UnpairedDataset
from .io import H5ImageReader, h5_ref, scan_h5_file, scan_image_folder
from .layouts import ImageEntry, entries_from_datalist, find_entries, find_paired_entries
from .synthetic import gaussian_smooth, random_smooth_ddf

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
