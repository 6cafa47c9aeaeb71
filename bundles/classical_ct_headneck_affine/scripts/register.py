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

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import affine_to_ddf, ddf_voxel_to_mm, warp_image
from monai_reg_ext.bundle import run_pairs
from monai_reg_ext.io import load_image
from monai_reg_ext.metrics import label_dice
from monai_reg_ext.optimise import register_by_optimisation
from monai_reg_ext.reporting import optimisation_metrics, save_pair_outputs

__all__ = ["run", "register_pair"]


def _normalise(hu: torch.Tensor, window: Sequence[float]) -> torch.Tensor:
    lo, hi = float(window[0]), float(window[1])
    return ((hu.clamp(lo, hi) - lo) / (hi - lo)).float()


def _dice(pred: torch.Tensor, target: torch.Tensor) -> list[float]:
    return [float(v) for v in label_dice(pred, target).reshape(-1)]


def register_pair(
    pair: dict,
    data_dir: Path,
    out_dir: Path,
    optimisation: dict,
    image_loss: Callable | None,
    device: torch.device,
    overwrite: bool = False,
) -> dict:
    """Register one pair of ``pairs.json`` and write its outputs; returns its metrics."""
    ndim = len(pair["spatial_shape"])
    fixed_hu, affine = load_image(data_dir / pair["fixed"], spatial_dims=ndim)
    moving_hu, _ = load_image(data_dir / pair["moving"], spatial_dims=ndim)
    fixed_label, _ = load_image(data_dir / pair["fixed_label"], spatial_dims=ndim)
    moving_label, _ = load_image(data_dir / pair["moving_label"], spatial_dims=ndim)
    fixed = _normalise(fixed_hu[None], pair["window"]).to(device)
    moving = _normalise(moving_hu[None], pair["window"]).to(device)

    result = register_by_optimisation(moving, fixed, transform="affine", image_loss=image_loss, **optimisation)
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
        **optimisation_metrics(result, device),
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
        overwrite=overwrite,
    )
    return metrics


def run(
    pairs_file: str,
    output_dir: str,
    optimisation: dict,
    image_loss: Callable | None = None,
    device: str | torch.device = "cpu",
    pairs: Sequence[str] | None = None,
    shard: Sequence[int] = (0, 1),
    overwrite: bool = False,
) -> dict:
    """Register the pairs of ``pairs_file`` (paths relative to its folder) and write outputs and metrics.

    Args:
        pairs_file: ``data/pairs.json`` as written by ``scripts/make_demo_data.py``.
        output_dir: output folder (created).
        optimisation: keyword arguments of ``register_by_optimisation`` (``levels``, ``iterations``, ``lr``,
            ``tolerance``, ...); ``transform`` is always ``"affine"``.
        image_loss: ``(warped, fixed) -> scalar``; None: the optimiser's default (LNCC).
        device: torch device.
        pairs: names of the pairs to run (``"3d"``, ``"2d"``); None: all.
        shard: ``(rank, world_size)``: this process runs every ``world_size``-th pair from ``rank`` (multi-GPU).
        overwrite: replace existing outputs.

    Returns:
        ``{pair name: metrics}``, also written to ``output_dir/metrics.json`` (``metrics_rank<r>.json`` when sharded).
    """
    dev = torch.device(device)
    summary = run_pairs(
        pairs_file,
        output_dir,
        lambda e, d, o: register_pair(e, d, o, dict(optimisation), image_loss, dev, overwrite),
        pairs,
        shard,
    )
    for pair, m in summary.items():
        print(
            f"{pair}: displacement error {m['displacement_error_mm_before']['mean']:.2f} -> "
            f"{m['displacement_error_mm_after']['mean']:.3f} mm (mean), Dice {m['dice_before']} -> {m['dice_after']}, "
            f"{m['iterations']} iterations, {m['seconds']:.1f} s"
        )
    return summary
