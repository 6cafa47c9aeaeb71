"""The ``run`` entry of ``classical_mr_prostate_nonrigid``: non-rigid registration of each pair by optimisation.

No network: :func:`monai_reg_ext.optimise.register_by_optimisation` optimises a displacement field (by default on a
control-point grid, coarse to fine) with Adam on LNCC + weighted bending energy, as DeepReg's classical prostate demo
(which optimised a dense DDF for 3000 iterations). For each pair this writes, under ``output_dir/<pair name>/``:
``warped.nii.gz`` (moving image on the fixed grid), ``warped_label.nii.gz`` (gland, bilinear then 0.5 threshold),
``ddf.nii.gz`` (ITK displacement field, :func:`monai_reg_ext.io.save_ddf`), ``loss_curve.json`` and
``metrics.json``; and ``output_dir/metrics.json`` with every pair's metrics.

Metrics: gland Dice before/after; displacement error (mm) against the known true field, mean over the fixed gland and
over the whole grid, before (identity) and after; folding fraction (voxels with a non-positive Jacobian
determinant); seconds of the optimisation.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext import ddf_voxel_to_mm, warp_image
from monai_reg_ext.demo.classical import PairSettings, load_pair_images, optimisation_run
from monai_reg_ext.metrics import folding_fraction, label_dice
from monai_reg_ext.optimise import register_by_optimisation
from monai_reg_ext.reporting import optimisation_metrics, save_pair_outputs

__all__ = ["run", "register_pair", "load_true_ddf"]

#: The line printed per pair (``str.format`` of its metrics)
SUMMARY = (
    "gland Dice {dice_before:.3f} -> {dice_after:.3f}, displacement error in the gland "
    "{displacement_error_mm_before[gland]:.2f} -> {displacement_error_mm_after[gland]:.2f} mm, "
    "folding {folding_fraction:.4f}, {iterations} iterations, {seconds:.1f} s"
)


def load_true_ddf(path: Path) -> torch.Tensor:
    """The pair's true voxel DDF ``(1, 3, *S)`` (stored as int16 ``(X, Y, Z, 3)`` with a scale slope)."""
    data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    return torch.as_tensor(np.moveaxis(data, -1, 0)).unsqueeze(0)


def register_pair(pair: dict, data_dir: Path, out_dir: Path, settings: PairSettings) -> dict:
    """Register one pair of ``pairs.json`` (non-rigid, on intensities / 255) and write its outputs; returns its
    metrics."""
    fixed_img, moving_img, fixed_label, moving_label, affine = load_pair_images(pair, data_dir)
    true = load_true_ddf(data_dir / pair["true_ddf"])
    fixed = (fixed_img[None] / 255.0).to(settings.device)
    moving = (moving_img[None] / 255.0).to(settings.device)
    losses = {"image_loss": settings.image_loss, "regulariser": settings.regulariser}

    result = register_by_optimisation(moving, fixed, **losses, **settings.optimisation)
    ddf = result.ddf.cpu().float()

    gland = fixed_label[None] >= 0.5
    err = ddf_voxel_to_mm(ddf - true, affine).norm(dim=1, keepdim=True)
    before = ddf_voxel_to_mm(true, affine).norm(dim=1, keepdim=True)
    warped_label = (warp_image(moving_label[None], ddf) >= 0.5).float()
    warped = warp_image(moving_img[None], ddf)
    metrics = {
        "pair": pair["name"],
        "spatial_shape": list(fixed.shape[2:]),
        "dice_before": float(label_dice(moving_label[None], fixed_label[None])[0, 0]),
        "dice_after": float(label_dice(warped_label, fixed_label[None])[0, 0]),
        "displacement_error_mm_before": {"gland": float(before[gland].mean()), "all": float(before.mean())},
        "displacement_error_mm_after": {"gland": float(err[gland].mean()), "all": float(err.mean())},
        "folding_fraction": float(folding_fraction(ddf).reshape(-1)[0]),
        **optimisation_metrics(result, settings.device),
    }
    save_pair_outputs(
        out_dir / pair["name"],
        metrics,
        result.loss_curve,
        warped[0].round().clamp(0, 255),
        warped_label[0],
        ddf,
        affine,
        warped_dtype=np.uint8,
        overwrite=settings.overwrite,
    )
    return metrics


#: ``run(pairs_file, output_dir, optimisation, image_loss=None, regulariser=None, device="cpu", pairs=None,
#: shard=(0, 1), overwrite=False)``: :func:`register_pair` on each pair, see
#: :func:`monai_reg_ext.demo.classical.optimisation_run`
run = optimisation_run(register_pair, SUMMARY)
