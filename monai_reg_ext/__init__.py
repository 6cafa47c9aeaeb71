"""monai_reg_ext: what MONAI lacks for deep-learning image registration.

Conventions (DDF layout, units, moving vs fixed) are written once in ``docs/conventions.md``.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .api import RegistrationResult, register
from .spatial import (
    affine_to_ddf,
    compose_ddf,
    ddf_mm_to_voxel,
    ddf_voxel_to_mm,
    dvf_to_ddf,
    jacobian_determinant,
    resize_ddf,
    resize_image,
    warp_image,
)

__all__ = [
    "register",
    "RegistrationResult",
    "warp_image",
    "dvf_to_ddf",
    "affine_to_ddf",
    "compose_ddf",
    "resize_ddf",
    "resize_image",
    "jacobian_determinant",
    "ddf_voxel_to_mm",
    "ddf_mm_to_voxel",
]
