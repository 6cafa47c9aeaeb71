"""Python API: :func:`register` a pair with a trained bundle, a network, or by optimisation without a network.

``register`` takes file paths, arrays or MONAI ``MetaTensor`` of any size and spacing and returns a
:class:`RegistrationResult` whose DDF is on the fixed image's native grid (``docs/conventions.md``).
"""

from __future__ import annotations

from ..io import load_input
from .register import register
from .result import RegistrationResult

__all__ = ["register", "RegistrationResult", "load_input"]
