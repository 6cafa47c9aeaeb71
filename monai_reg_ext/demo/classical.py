"""The ``run`` entries of the classical (optimisation-based) bundles, around each bundle's own pair registration.

``bundles/classical_ct_headneck_affine`` and ``bundles/classical_mr_prostate_nonrigid`` have no network: their
``scripts/register.py`` registers one shipped demo pair by :func:`monai_reg_ext.optimise.register_by_optimisation`
(``register_pair(pair, data_dir, out_dir, settings)``) and builds its ``run`` entry, the function the bundle configs
call, with :func:`optimisation_run`. :func:`load_pair_images` reads a pair's four images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..bundle import run_pairs
from ..io import load_image

__all__ = ["PairSettings", "load_pair_images", "optimisation_run"]


@dataclass(frozen=True)
class PairSettings:
    """What a ``run`` call gives every pair's registration.

    Attributes:
        optimisation: keyword arguments of ``register_by_optimisation`` (a fresh copy for each pair).
        image_loss: ``(warped, fixed) -> scalar``; None: the optimiser's default.
        regulariser: ``ddf -> scalar``; None: the optimiser's default.
        device: where the optimisation runs.
        overwrite: replace existing outputs.
    """

    optimisation: dict[str, Any]
    image_loss: Callable | None
    regulariser: Callable | None
    device: torch.device
    overwrite: bool


def load_pair_images(
    pair: Mapping[str, Any], data_dir: str | os.PathLike, spatial_dims: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(fixed, moving, fixed_label, moving_label, fixed affine)`` of a pairs-file entry: channel-first tensors read
    by :func:`monai_reg_ext.io.load_image` from ``data_dir / pair[key]`` (``spatial_dims`` as there)."""
    data_dir = Path(data_dir)
    fixed, affine = load_image(data_dir / pair["fixed"], spatial_dims=spatial_dims)
    moving, _ = load_image(data_dir / pair["moving"], spatial_dims=spatial_dims)
    fixed_label, _ = load_image(data_dir / pair["fixed_label"], spatial_dims=spatial_dims)
    moving_label, _ = load_image(data_dir / pair["moving_label"], spatial_dims=spatial_dims)
    return fixed, moving, fixed_label, moving_label, affine


def optimisation_run(
    register_pair: Callable[[dict, Path, Path, PairSettings], dict], summary: str
) -> Callable[..., dict]:
    """The ``run`` entry of a classical bundle: ``register_pair`` on the pairs of a pairs file, with a printed line
    per pair: ``"<name>: " + summary.format(**metrics)``."""

    def run(
        pairs_file: str,
        output_dir: str,
        optimisation: dict[str, Any],
        image_loss: Callable | None = None,
        regulariser: Callable | None = None,
        device: str | torch.device = "cpu",
        pairs: Sequence[str] | None = None,
        shard: Sequence[int] = (0, 1),
        overwrite: bool = False,
    ) -> dict:
        """Register the pairs of ``pairs_file`` (paths relative to its folder) and write outputs and metrics.

        Args:
            pairs_file: ``data/pairs.json`` as written by the bundle's ``scripts/make_demo_data.py``.
            output_dir: output folder (created).
            optimisation: keyword arguments of ``register_by_optimisation`` (``levels``, ``iterations``, ``lr``,
                ``tolerance``, ...; the affine bundle always uses ``transform="affine"``).
            image_loss: ``(warped, fixed) -> scalar``; None: the optimiser's default (LNCC).
            regulariser: ``ddf -> scalar``; None: the optimiser's default (bending energy; unused by an affine).
            device: torch device.
            pairs: names of the pairs to run; None: all.
            shard: ``(rank, world_size)``: this process runs every ``world_size``-th pair from ``rank`` (multi-GPU).
            overwrite: replace existing outputs.

        Returns:
            ``{pair name: metrics}``, also written to ``output_dir/metrics.json`` (``metrics_rank<r>.json`` when
            sharded).
        """
        dev = torch.device(device)

        def one(entry: dict, data_dir: Path, out_dir: Path) -> dict:
            settings = PairSettings(dict(optimisation), image_loss, regulariser, dev, overwrite)
            return register_pair(entry, data_dir, out_dir, settings)

        results = run_pairs(pairs_file, output_dir, one, pairs, shard)
        for pair, m in results.items():
            print(f"{pair}: {summary.format(**m)}")
        return results

    return run
