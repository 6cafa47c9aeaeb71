"""File I/O for registration: ITK-compatible DDF files, landmarks, images, H5 datasets and image folders.

World frame: NIfTI/MONAI RAS (the affine as nibabel reads it). DDF files are ITK displacement fields (LPS mm); see
:mod:`.ddf` and ``docs/conventions.md``.
"""

from __future__ import annotations

from .ddf import itk_geometry_from_affine, load_ddf, ras_to_lps_affine, save_ddf
from .folders import IMAGE_SUFFIXES, natural_key, scan_image_folder
from .h5 import H5ImageReader, h5_ref, is_h5_ref, ref_exists, scan_h5_file, split_h5_ref
from .images import OUTPUT_SUFFIXES, check_output_suffix, load_image, save_image
from .inputs import ImageLike, load_input
from .landmarks import physical_to_voxel, read_landmarks, voxel_to_physical
from .transforms import load_itk_affine, save_itk_affine

__all__ = [
    "save_ddf",
    "load_ddf",
    "ras_to_lps_affine",
    "itk_geometry_from_affine",
    "save_image",
    "load_image",
    "check_output_suffix",
    "OUTPUT_SUFFIXES",
    "load_input",
    "ImageLike",
    "read_landmarks",
    "physical_to_voxel",
    "voxel_to_physical",
    "H5ImageReader",
    "h5_ref",
    "is_h5_ref",
    "split_h5_ref",
    "scan_h5_file",
    "ref_exists",
    "IMAGE_SUFFIXES",
    "natural_key",
    "scan_image_folder",
    "save_itk_affine",
    "load_itk_affine",
]
