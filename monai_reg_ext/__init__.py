"""monai_reg_ext: what MONAI lacks for deep-learning image registration.

Conventions (DDF layout, units, moving vs fixed) are written once in ``docs/conventions.md``.

The re-exports below and the subpackages are imported on first use (PEP 562 ``__getattr__``): ``import
monai_reg_ext`` and the ``monai-reg --help`` command line stay light (no torch / MONAI), while
``from monai_reg_ext import register, warp_image`` and ``monai_reg_ext.bundle.load_bundle`` (as bundle configs write
it) work as with eager imports.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these are imported by __getattr__
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

#: re-exported name -> the subpackage that defines it
_EXPORTS: dict[str, str] = {
    "register": "api",
    "RegistrationResult": "api",
    "warp_image": "spatial",
    "dvf_to_ddf": "spatial",
    "affine_to_ddf": "spatial",
    "compose_ddf": "spatial",
    "resize_ddf": "spatial",
    "resize_image": "spatial",
    "jacobian_determinant": "spatial",
    "ddf_voxel_to_mm": "spatial",
    "ddf_mm_to_voxel": "spatial",
}

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


def __getattr__(name: str) -> Any:
    """Import a re-exported name (``register``, ``warp_image``...) or a subpackage (``bundle``, ``engines``...) on
    first access, and cache it in the package namespace."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
