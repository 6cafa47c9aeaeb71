"""Spatial core: warping, DDF algebra, physical units, smoothing, random smooth DDFs (``docs/conventions.md``)."""

from __future__ import annotations

from .ddf import affine_to_ddf, compose_ddf, dvf_to_ddf, jacobian_determinant, resize_ddf
from .inverse import inverse_consistency_error, invert_ddf
from .physical import ddf_mm_to_voxel, ddf_voxel_to_mm
from .random import random_smooth_ddf
from .resample import fixed_to_moving_matrix, grid_differences, resample_to_grid, warp_to_grid
from .smooth import anti_aliasing_sigma, gaussian_smooth, resize_image
from .warp import check_ddf, identity_grid, warp_image

__all__ = [
    "warp_image",
    "identity_grid",
    "check_ddf",
    "dvf_to_ddf",
    "affine_to_ddf",
    "compose_ddf",
    "resize_ddf",
    "jacobian_determinant",
    "ddf_voxel_to_mm",
    "ddf_mm_to_voxel",
    "gaussian_smooth",
    "anti_aliasing_sigma",
    "resize_image",
    "random_smooth_ddf",
    "fixed_to_moving_matrix",
    "grid_differences",
    "resample_to_grid",
    "warp_to_grid",
    "invert_ddf",
    "inverse_consistency_error",
]
