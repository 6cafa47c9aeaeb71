"""File I/O for registration: ITK-compatible DDF files, landmarks, images.

World frame: NIfTI/MONAI RAS (the affine as nibabel reads it). DDF files are ITK displacement fields (LPS mm); see
:mod:`.ddf` and ``docs/conventions.md``.
"""

from __future__ import annotations

from .ddf import itk_geometry_from_affine, load_ddf, ras_to_lps_affine, save_ddf
from .images import load_image, save_image
from .landmarks import physical_to_voxel, read_landmarks, voxel_to_physical

__all__ = [
    "save_ddf",
    "load_ddf",
    "ras_to_lps_affine",
    "itk_geometry_from_affine",
    "save_image",
    "load_image",
    "read_landmarks",
    "physical_to_voxel",
    "voxel_to_physical",
]
