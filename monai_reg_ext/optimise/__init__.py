"""Optimisation-based registration: transformation models, the level pyramid, the engine, the default pipeline.

- :func:`register_by_optimisation`: one transformation model (affine, dense, velocity, control points) optimised
  coarse to fine on a pair (``engine``).
- :func:`instance_optimise`: refine a network's DDF on the pair at test time (``engine``).
- :func:`register_images`: the bundle-free pipeline, initial alignment -> affine -> deformable (``pipeline``).

Conventions (DDF layout, units, pull): ``docs/conventions.md``; schedules and measurements: ``docs/optimisation.md``.
"""

from __future__ import annotations

from .engine import OptimisationResult, instance_optimise, register_by_optimisation
from .initial import initial_translation
from .models import TRANSFORMS, TransformModel
from .pipeline import STAGES, PipelineResult, normalise_intensity, overlap_fraction, register_images

__all__ = [
    "OptimisationResult",
    "register_by_optimisation",
    "instance_optimise",
    "TRANSFORMS",
    "TransformModel",
    "initial_translation",
    "STAGES",
    "PipelineResult",
    "register_images",
    "normalise_intensity",
    "overlap_fraction",
]
