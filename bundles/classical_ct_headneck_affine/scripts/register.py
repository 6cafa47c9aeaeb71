"""The ``run`` entry of ``classical_ct_headneck_affine``: affine registration of each shipped pair by optimisation.

No network: :func:`monai_reg_ext.optimise.register_by_optimisation` optimises an affine matrix with Adam on the SSD of
window-normalised intensities, coarse to fine. For each pair this writes, under ``output_dir/<pair name>/``:
``theta.json`` (recovered and true ``[A | t]``, voxel indices, origin at voxel 0, ``docs/conventions.md``),
``warped.nii.gz`` (moving image on the fixed grid, HU), ``warped_label.nii.gz`` (bilinear then 0.5 threshold),
``ddf.nii.gz`` (ITK displacement field, :func:`monai_reg_ext.io.save_ddf`), ``loss_curve.json`` and
``metrics.json``; and ``output_dir/metrics.json`` with every pair's metrics.

Metrics: the displacement error (mm, mean and max over the fixed grid) between the recovered and the true affine,
before (identity) and after; the largest absolute error of the matrix ``A``; Dice of each label before and after;
seconds of the optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import affine_to_ddf, ddf_voxel_to_mm, warp_image
from monai_reg_ext.demo.classical import PairSettings, load_pair_images, optimisation_run
from monai_reg_ext.metrics import label_dice
from monai_reg_ext.optimise import register_by_optimisation
from monai_reg_ext.reporting import optimisation_metrics, save_pair_outputs

__all__ = ["run", "register_pair"]

#: The line printed per pair (``str.format`` of its metrics)
SUMMARY = (
    "displacement error {displacement_error_mm_before[mean]:.2f} -> {displacement_error_mm_after[mean]:.3f} mm "
    "(mean), Dice {dice_before} -> {dice_after}, {iterations} iterations, {seconds:.1f} s"
)


def _normalise(hu: torch.Tensor, window: Sequence[float]) -> torch.Tensor:
    lo, hi = float(window[0]), float(window[1])
    return ((hu.clamp(lo, hi) - lo) / (hi - lo)).float()


def _dice(pred: torch.Tensor, target: torch.Tensor) -> list[float]:
    return [float(v) for v in label_dice(pred, target).reshape(-1)]


def register_pair(pair: dict, data_dir: Path, out_dir: Path, settings: PairSettings) -> dict:
    """Register one pair of ``pairs.json`` (affine, on window-normalised intensities) and write its outputs; returns
    its metrics."""
    ndim = len(pair["spatial_shape"])
    fixed_hu, moving_hu, fixed_label, moving_label, affine = load_pair_images(pair, data_dir, spatial_dims=ndim)
    fixed = _normalise(fixed_hu[None], pair["window"]).to(settings.device)
    moving = _normalise(moving_hu[None], pair["window"]).to(settings.device)

    result = register_by_optimisation(
        moving, fixed, transform="affine", image_loss=settings.image_loss, **settings.optimisation
    )
    ddf = result.ddf.cpu()
    theta = result.theta.cpu().double()[0]
    true = torch.as_tensor(pair["true_theta"], dtype=torch.float64)

    size = tuple(fixed.shape[2:])
    true_mm = ddf_voxel_to_mm(affine_to_ddf(true[None], size), affine)
    err = (ddf_voxel_to_mm(affine_to_ddf(theta[None], size), affine) - true_mm).norm(dim=1)
    before = true_mm.norm(dim=1)  # the identity's error
    warped_label = (warp_image(moving_label[None], ddf.to(moving_label.dtype)) >= 0.5).float()
    warped = warp_image(moving_hu[None], ddf.to(moving_hu.dtype))
    metrics = {
        "pair": pair["name"],
        "spatial_shape": list(size),
        "label_names": pair["label_names"],
        "displacement_error_mm_before": {"mean": float(before.mean()), "max": float(before.max())},
        "displacement_error_mm_after": {"mean": float(err.mean()), "max": float(err.max())},
        "matrix_max_abs_error_before": float((true[:, :ndim] - torch.eye(ndim, dtype=torch.float64)).abs().max()),
        "matrix_max_abs_error_after": float((true[:, :ndim] - theta[:, :ndim]).abs().max()),
        "dice_before": _dice(moving_label[None], fixed_label[None]),
        "dice_after": _dice(warped_label, fixed_label[None]),
        **optimisation_metrics(result, settings.device),
    }
    save_pair_outputs(
        out_dir / pair["name"],
        metrics,
        result.loss_curve,
        warped[0].round(),
        warped_label[0],
        ddf,
        affine,
        warped_dtype=np.int16,
        extra_json={"theta.json": {"recovered": np.round(theta.numpy(), 8).tolist(), "true": pair["true_theta"]}},
        overwrite=settings.overwrite,
    )
    return metrics


#: ``run(pairs_file, output_dir, optimisation, image_loss=None, device="cpu", pairs=None, shard=(0, 1),
#: overwrite=False)``: :func:`register_pair` on each pair (``transform`` is always ``"affine"``), see
#: :func:`monai_reg_ext.demo.classical.optimisation_run`
run = optimisation_run(register_pair, SUMMARY)
