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

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext import ddf_voxel_to_mm, warp_image
from monai_reg_ext.bundle import run_pairs
from monai_reg_ext.io import load_image
from monai_reg_ext.metrics import folding_fraction, label_dice
from monai_reg_ext.optimise import register_by_optimisation
from monai_reg_ext.reporting import optimisation_metrics, save_pair_outputs

__all__ = ["run", "register_pair", "load_true_ddf"]


def load_true_ddf(path: Path) -> torch.Tensor:
    """The pair's true voxel DDF ``(1, 3, *S)`` (stored as int16 ``(X, Y, Z, 3)`` with a scale slope)."""
    data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    return torch.as_tensor(np.moveaxis(data, -1, 0)).unsqueeze(0)


def register_pair(
    pair: dict,
    data_dir: Path,
    out_dir: Path,
    optimisation: dict,
    image_loss: Callable | None,
    regulariser: Callable | None,
    device: torch.device,
    overwrite: bool = False,
) -> dict:
    """Register one pair of ``pairs.json`` and write its outputs; returns its metrics."""
    fixed_img, affine = load_image(data_dir / pair["fixed"])
    moving_img, _ = load_image(data_dir / pair["moving"])
    fixed_label, _ = load_image(data_dir / pair["fixed_label"])
    moving_label, _ = load_image(data_dir / pair["moving_label"])
    true = load_true_ddf(data_dir / pair["true_ddf"])
    fixed = (fixed_img[None] / 255.0).to(device)
    moving = (moving_img[None] / 255.0).to(device)

    result = register_by_optimisation(moving, fixed, image_loss=image_loss, regulariser=regulariser, **optimisation)
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
        **optimisation_metrics(result, device),
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
        overwrite=overwrite,
    )
    return metrics


def run(
    pairs_file: str,
    output_dir: str,
    optimisation: dict,
    image_loss: Callable | None = None,
    regulariser: Callable | None = None,
    device: str | torch.device = "cpu",
    pairs: Sequence[str] | None = None,
    shard: Sequence[int] = (0, 1),
    overwrite: bool = False,
) -> dict:
    """Register the pairs of ``pairs_file`` (paths relative to its folder) and write outputs and metrics.

    Args:
        pairs_file: ``data/pairs.json`` as written by ``scripts/make_demo_data.py``.
        output_dir: output folder (created).
        optimisation: keyword arguments of ``register_by_optimisation`` (``transform``, ``levels``, ``iterations``,
            ``lr``, ``reg_weight``, ``control_point_spacing``, ``tolerance``, ...).
        image_loss: ``(warped, fixed) -> scalar``; None: the optimiser's default (LNCC, kernel 7).
        regulariser: ``ddf -> scalar``; None: the optimiser's default (bending energy).
        device: torch device.
        pairs: names of the pairs to run; None: all.
        shard: ``(rank, world_size)``: this process runs every ``world_size``-th pair from ``rank`` (multi-GPU).
        overwrite: replace existing outputs.

    Returns:
        ``{pair name: metrics}``, also written to ``output_dir/metrics.json`` (``metrics_rank<r>.json`` when sharded).
    """
    dev = torch.device(device)
    summary = run_pairs(
        pairs_file,
        output_dir,
        lambda e, d, o: register_pair(e, d, o, dict(optimisation), image_loss, regulariser, dev, overwrite),
        pairs,
        shard,
    )
    for pair, m in summary.items():
        print(
            f"{pair}: gland Dice {m['dice_before']:.3f} -> {m['dice_after']:.3f}, displacement error in the gland "
            f"{m['displacement_error_mm_before']['gland']:.2f} -> {m['displacement_error_mm_after']['gland']:.2f} mm, "
            f"folding {m['folding_fraction']:.4f}, {m['iterations']} iterations, {m['seconds']:.1f} s"
        )
    return summary
