"""Writing registration results of the optimisation-based bundles' ``run`` entries and of the benchmark scripts.

Evaluation summaries (statistics, results files, ``eval_metrics``) live in :mod:`monai_reg_ext.evaluation`;
:func:`mean_std` is re-exported from there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluation.summary import mean_std

__all__ = ["mean_std", "optimisation_metrics", "save_pair_outputs", "emit_report"]


def optimisation_metrics(result: Any, device: str | torch.device) -> dict[str, Any]:
    """The optimiser's part of a pair's metrics: initial and final loss, iterations, seconds and device.

    Args:
        result: what :func:`monai_reg_ext.optimise.register_by_optimisation` returned.
        device: the device it ran on.
    """
    return {
        "loss_initial": result.initial_loss,
        "loss_final": result.final_loss,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "device": str(device),
    }


def save_pair_outputs(
    out: str | os.PathLike,
    metrics: Mapping[str, Any],
    loss_curve: Sequence[float],
    warped: torch.Tensor,
    warped_label: torch.Tensor,
    ddf: torch.Tensor,
    affine: Any,
    warped_dtype: Any,
    extra_json: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Write one registered pair's outputs into ``out`` (created).

    Files: each of ``extra_json`` (name -> object, indented by 1), ``loss_curve.json``, ``metrics.json`` (indented by
    1), ``warped.nii.gz`` (as ``warped_dtype``), ``warped_label.nii.gz`` (uint8) and ``ddf.nii.gz`` (ITK displacement
    field).

    Args:
        out: the pair's output folder.
        metrics: the pair's metrics.
        loss_curve: the optimiser's loss per iteration.
        warped: ``(C, *S)`` warped moving image on the fixed grid, already rounded/clamped as wanted.
        warped_label: ``(L, *S)`` warped moving label (thresholded).
        ddf: ``(1, D, *S)`` voxel DDF of the fixed grid.
        affine: the fixed image's voxel-to-world affine.
        warped_dtype: NIfTI data type of ``warped.nii.gz`` (e.g. ``np.int16``).
        extra_json: further JSON files, written first.
        overwrite: replace existing outputs.

    Raises:
        FileExistsError: a JSON output exists and ``overwrite`` is False (checked before anything is written).
    """
    from .io import save_ddf, save_image

    out = Path(out)
    extra = dict(extra_json or {})
    out.mkdir(parents=True, exist_ok=True)
    for name in (*extra, "metrics.json", "loss_curve.json"):
        if (out / name).exists() and not overwrite:
            raise FileExistsError(f"{out / name} exists; set overwrite to true to replace it.")
    for name, data in extra.items():
        (out / name).write_text(json.dumps(data, indent=1) + "\n")
    (out / "loss_curve.json").write_text(json.dumps(loss_curve) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    save_image(out / "warped.nii.gz", warped, affine, dtype=warped_dtype, overwrite=overwrite)
    save_image(out / "warped_label.nii.gz", warped_label, affine, dtype=np.uint8, overwrite=overwrite)
    save_ddf(out / "ddf.nii.gz", ddf, affine, overwrite=overwrite)


def emit_report(report: dict[str, Any], output: str | os.PathLike | None = None) -> dict[str, Any]:
    """Print ``report`` as indented JSON, also write it to ``output`` when given; returns ``report``."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        Path(output).write_text(text)
    return report
