"""A synthetic multi-modal example pair for the ``universal_3d`` bundle, made by the synthetic-data engine.

Nothing here is acquired: a random-shape label map (``RandShapeLabelMapd``), a random deformation of it
(``RandSynthPaird``: smooth + bumps + sliding + affine) and an independent random contrast for each image
(``RandLabelToImaged``), as in training but from a seed training never uses. The 12 labels are merged into 4 one-hot
channels (label value modulo 4) so that ``monai-reg register`` reports a Dice per channel.

Usage (from the repository root)::

    python bundles/universal_3d/scripts/make_example.py --output bundles/universal_3d/data/example

Output: ``moving.nii.gz``, ``fixed.nii.gz`` (uint8 0-255, 3 mm voxels), ``moving_label.nii.gz``,
``fixed_label.nii.gz`` (uint8 one-hot ``(X, Y, Z, 4)``) and ``pairs.json``; with ``--true_ddf`` also
``true_ddf.nii.gz`` (float32 ``(X, Y, Z, 3)``: the VOXEL DDF of the project's convention, pull, channel k = array
axis k; not an ITK displacement field; 2.8 MB, so the shipped example leaves it out).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Compose

from monai_reg_ext.transforms import (
    RandAffineDeformation,
    RandBumpDeformation,
    RandComposeDeformation,
    RandLabelToImaged,
    RandShapeLabelMapd,
    RandSlidingDeformation,
    RandSmoothDeformation,
    RandSynthPaird,
)

__all__ = ["synthetic_pair", "write_pair"]

#: seed of the example pair: training (data_seed * 1000003 + epoch), validation (100000 + i) and test (200000 + i)
#: seeds are far from it
EXAMPLE_SEED = 4_000_000_007
NUM_GROUPS = 4


def synthetic_pair(seed: int, spatial_size: Sequence[int] = (64, 64, 64), num_labels: int = 12) -> dict:
    """One synthetic pair from the engine: ``moving_image``/``fixed_image`` ``(1, *S)`` in [0, 1], integer label maps
    ``moving_label``/``fixed_label`` ``(1, *S)`` and the true ``ddf`` ``(3, *S)`` (voxels, pull)."""
    deformation = RandComposeDeformation(
        [
            RandSmoothDeformation((3.0, 6.0), (4.0, 10.0)),
            RandBumpDeformation(max_displacement=4.0),
            RandSlidingDeformation(max_displacement=3.0),
            RandAffineDeformation(rotate_range=0.1, scale_range=0.08, shear_range=0.03, translate_range=3.0),
        ]
    )
    make = Compose(
        [
            RandShapeLabelMapd("label", spatial_size, num_labels=num_labels, smoothness=(3.0, 8.0)),
            RandSynthPaird("label", deformation),
            RandLabelToImaged(("moving_label", "fixed_label"), ("moving_image", "fixed_image")),
        ]
    )
    return make.set_random_state(seed=seed % 2**32)({})


def _one_hot_groups(label: torch.Tensor) -> np.ndarray:
    """``(1, *S)`` label map -> uint8 one-hot ``(*S, NUM_GROUPS)`` of ``label % NUM_GROUPS``."""
    groups = (label[0] % NUM_GROUPS).numpy()
    return np.stack([(groups == g).astype(np.uint8) for g in range(NUM_GROUPS)], axis=-1)


def write_pair(
    output: str | Path,
    seed: int = EXAMPLE_SEED,
    spatial_size: Sequence[int] = (64, 64, 64),
    spacing: float = 3.0,
    true_ddf: bool = False,
) -> Path:
    """Write the pair of ``seed`` (see the module docstring) into ``output``; returns the path of ``pairs.json``."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pair = synthetic_pair(seed, spatial_size)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    for key in ("moving", "fixed"):
        image = np.round(pair[f"{key}_image"][0].numpy() * 255).astype(np.uint8)
        nib.save(nib.Nifti1Image(image, affine), str(out / f"{key}.nii.gz"))
        nib.save(nib.Nifti1Image(_one_hot_groups(pair[f"{key}_label"]), affine), str(out / f"{key}_label.nii.gz"))
    if true_ddf:
        ddf = np.moveaxis(pair["ddf"].numpy().astype(np.float32), 0, -1)
        nib.save(nib.Nifti1Image(ddf, affine), str(out / "true_ddf.nii.gz"))
    entry = {k: f"{k}.nii.gz" for k in ("moving", "fixed", "moving_label", "fixed_label")}
    (out / "pairs.json").write_text(json.dumps([{"name": "synthetic_example", **entry}], indent=1) + "\n")
    return out / "pairs.json"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--output DIR [--seed N] [--size 64] [--true_ddf]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=EXAMPLE_SEED)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--true_ddf", action="store_true")
    args = parser.parse_args(argv)
    print(write_pair(args.output, args.seed, (args.size,) * 3, true_ddf=args.true_ddf))


if __name__ == "__main__":
    main()
