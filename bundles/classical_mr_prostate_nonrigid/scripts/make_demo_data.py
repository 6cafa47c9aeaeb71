"""Deterministic SYNTHETIC prostate MR pairs for ``classical_mr_prostate_nonrigid`` (no real image is used).

No prostate MR volume is carried by any package registry, so every image here is drawn from a simple geometric model
of a T2-weighted pelvic MR: a body of fat with obturator muscles and pubic bones, an ellipsoidal prostate gland with a
bright peripheral zone (PZ), a darker textured transition zone (TZ) and a dark capsule, the fluid-filled bladder
above and in front of it, and the rectum behind it; smoothed (partial volume), multiplied by a smooth bias field,
with Rician noise. The moving image of each pair is one such subject; the **fixed image is that subject under a
known smooth random deformation** (:func:`monai_reg_ext.data.random_smooth_ddf`, warped with
:func:`monai_reg_ext.warp_image`), with its own bias field and noise; the gland masks are deformed alike. See
``bundles/classical_mr_prostate_nonrigid/docs/data.md``.

Usage (from the repository root)::

    python bundles/classical_mr_prostate_nonrigid/scripts/make_demo_data.py \\
        --output bundles/classical_mr_prostate_nonrigid/data

Output (DDF convention: ``docs/conventions.md``)::

    data/pair_XX/{moving,fixed}.nii.gz             uint8 T2-like intensity, 0-255
    data/pair_XX/{moving,fixed}_label.nii.gz       uint8 gland mask (0/1)
    data/pair_XX/true_ddf.nii.gz                   int16 (X, Y, Z, 3), scl_slope 0.01: VOXEL DDF of the fixed grid
                                                   (pull: fixed(x) = moving(x + ddf(x))), NOT an ITK displacement field
    data/pairs.json, data/manifest.json            the pairs; sha256 of every file + generator parameters
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import warp_image
from monai_reg_ext.io import save_image
from monai_reg_ext.spatial import random_smooth_ddf

__all__ = ["synthetic_prostate", "bias_and_noise", "make_pair", "main"]

SHAPE = (64, 64, 48)  # array axes 0, 1, 2 = right-left -> x (R to L is -), posterior -> anterior, inferior -> superior
SPACING = 1.5  # mm, isotropic
MAX_DISPLACEMENT = 8.0  # voxels, maximum norm of the true deformation
SMOOTHNESS = 10.0  # voxels, Gaussian sigma of the deformation's noise
NOISE = 0.03  # Rician noise sigma (image range ~[0, 1])
BIAS = 0.2  # bias field amplitude (multiplicative, +- 20 %)
DDF_SCALE = 0.01  # voxels per stored int16 unit of the true DDF


def _ellipsoid(coords: np.ndarray, centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Normalised radius ``sum(((x - c) / r)^2)`` on mm ``coords`` ``(3, *S)`` (< 1 inside)."""
    c = np.asarray(centre, dtype=np.float64).reshape(3, 1, 1, 1)
    r = np.asarray(radii, dtype=np.float64).reshape(3, 1, 1, 1)
    return (((coords - c) / r) ** 2).sum(0)


def synthetic_prostate(rng: np.random.Generator, shape: Sequence[int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """One noise-free synthetic T2-like pelvic MR and its gland mask.

    Returns:
        ``(image float64 (*shape) in [0, 1], gland bool (*shape))``.
    """
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2.0
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    coords = (np.stack(grid) - centre.reshape(3, 1, 1, 1)) * SPACING  # mm from the centre
    jitter = lambda scale: rng.uniform(1 - scale, 1 + scale)  # noqa: E731

    img = np.zeros(shape)
    body = _ellipse_xy(coords, (0.0, 4.0), (46.0 * jitter(0.05), 40.0 * jitter(0.05)))
    img[body] = 0.55  # subcutaneous / periprostatic fat
    for side in (-1.0, 1.0):  # obturator internus muscles and pubic / ischial bones
        img[_ellipsoid(coords, (side * 27.0, 0.0, 0.0), (7.0, 16.0, 40.0)) < 1] = 0.25
        bone = _ellipsoid(coords, (side * 36.0, 2.0, 0.0), (6.0, 18.0, 45.0))
        img[bone < 1] = 0.1  # cortex
        img[bone < 0.45] = 0.45  # marrow
    # rectum behind the gland: wall (dark) and lumen (gas, darker)
    r_centre = (rng.normal(0, 1.5), -24.0 + rng.normal(0, 1.5))
    rect = _ellipse_xy(coords, r_centre, (11.0 * jitter(0.1), 8.5 * jitter(0.1)), radius=True)
    img[rect < 1] = 0.22
    img[rect < 0.5] = 0.05
    # bladder above and in front: wall, urine
    b_centre = (rng.normal(0, 2), 10.0 + rng.normal(0, 2), 28.0 + rng.normal(0, 2))
    b_radii = (24.0 * jitter(0.15), 18.0 * jitter(0.15), 16.0 * jitter(0.15))
    bladder = _ellipsoid(coords, b_centre, b_radii)
    img[bladder < 1] = 0.3
    img[bladder < 0.8] = 0.95
    # prostate: capsule, peripheral zone, textured transition zone, urethra
    g_centre = (rng.normal(0, 1), 0.0 + rng.normal(0, 1), rng.normal(0, 1))
    g_radii = (21.0 * jitter(0.15), 15.0 * jitter(0.15), 17.0 * jitter(0.15))
    gland_r = _ellipsoid(coords, g_centre, g_radii)
    gland = gland_r < 1
    img[gland_r < 1.15] = 0.3  # capsule and periprostatic venous plexus
    img[gland] = 0.72  # peripheral zone
    tz_scale = rng.uniform(0.5, 0.7)
    tz_centre = (g_centre[0], g_centre[1] + 0.35 * g_radii[1], g_centre[2] + 0.2 * g_radii[2])
    tz = (_ellipsoid(coords, tz_centre, [tz_scale * r for r in g_radii]) < 1) & gland
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
    texture /= texture.std() + 1e-12
    img[tz] = 0.38 + 0.06 * texture[tz]  # benign prostatic hyperplasia-like nodularity
    urethra = ((coords[0] - tz_centre[0]) ** 2 + (coords[1] - tz_centre[1]) ** 2 < 2.5**2) & gland
    img[urethra] = 0.55
    img = ndimage.gaussian_filter(img, 0.7)  # partial volume
    return np.clip(img, 0.0, 1.0), gland


def _ellipse_xy(
    coords: np.ndarray, centre: Sequence[float], radii: Sequence[float], radius: bool = False
) -> np.ndarray:
    """An elliptic cylinder along axis 2: boolean inside, or the normalised radius with ``radius=True``."""
    r = ((coords[0] - centre[0]) / radii[0]) ** 2 + ((coords[1] - centre[1]) / radii[1]) ** 2
    return r if radius else r < 1


def bias_and_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiply by a smooth random bias field (``1 +- BIAS``) and add Rician noise (``NOISE``)."""
    coarse = rng.standard_normal((4, 4, 3))
    field = ndimage.zoom(coarse, [s / c for s, c in zip(img.shape, coarse.shape)], order=3)
    field = 1.0 + BIAS * field / (np.abs(field).max() + 1e-12)
    out = img * field
    real = out + NOISE * rng.standard_normal(img.shape)
    imag = NOISE * rng.standard_normal(img.shape)
    return np.sqrt(real**2 + imag**2)


def make_pair(seed: int, shape: Sequence[int] = SHAPE) -> dict[str, np.ndarray]:
    """A moving subject and the fixed image = it under a known smooth deformation (own bias and noise).

    Returns:
        ``moving, fixed`` (uint8), ``moving_label, fixed_label`` (uint8 0/1), ``true_ddf`` ``(3, *shape)`` float32
        in fixed voxels with ``fixed(x) = moving(x + ddf(x))``.
    """
    rng = np.random.default_rng(seed)
    clean, gland = synthetic_prostate(rng, shape)
    ddf = random_smooth_ddf(shape, MAX_DISPLACEMENT, SMOOTHNESS, seed=seed, dtype=torch.float64)
    ddf = torch.round(ddf / DDF_SCALE) * DDF_SCALE  # exactly what the int16 file holds
    warped = warp_image(torch.as_tensor(clean)[None, None], ddf)[0, 0].numpy()
    fixed_label = warp_image(torch.as_tensor(gland, dtype=torch.float64)[None, None], ddf)[0, 0].numpy() >= 0.5
    to_u8 = lambda x: np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
    return {
        "moving": to_u8(bias_and_noise(clean, rng)),
        "fixed": to_u8(bias_and_noise(warped, rng)),
        "moving_label": gland.astype(np.uint8),
        "fixed_label": fixed_label.astype(np.uint8),
        "true_ddf": ddf[0].numpy().astype(np.float32),
    }


def _affine() -> np.ndarray:
    return np.diag([-SPACING, SPACING, SPACING, 1.0])  # axis 0 runs right to left (RAS x decreasing)


def _save_ddf_voxels(path: Path, ddf: np.ndarray) -> None:
    data = np.round(np.moveaxis(ddf, 0, -1) / DDF_SCALE).astype(np.int16)
    img = nib.Nifti1Image(data, _affine())
    img.header.set_slope_inter(DDF_SCALE, 0.0)
    img.set_qform(_affine(), code=1)
    img.set_sform(_affine(), code=1)
    nib.save(img, str(path))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    parser.add_argument("--shape", type=int, nargs=3, default=list(SHAPE))
    args = parser.parse_args(argv)

    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, seed in enumerate(args.seeds):
        name = f"pair_{i:02d}"
        pair = make_pair(seed, tuple(args.shape))
        (out / name).mkdir(exist_ok=True)
        for key in ("moving", "fixed", "moving_label", "fixed_label"):
            save_image(out / name / f"{key}.nii.gz", pair[key], _affine(), dtype=np.uint8, overwrite=True)
        _save_ddf_voxels(out / name / "true_ddf.nii.gz", pair["true_ddf"])
        pairs.append(
            {
                "name": name,
                **{key: f"{name}/{key}.nii.gz" for key in ("moving", "fixed", "moving_label", "fixed_label")},
                "true_ddf": f"{name}/true_ddf.nii.gz",
                "seed": seed,
                "spatial_shape": list(args.shape),
            }
        )
    (out / "pairs.json").write_text(json.dumps(pairs, indent=1) + "\n")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "synthetic": True,
        "parameters": {
            "shape": list(args.shape),
            "spacing_mm": SPACING,
            "seeds": args.seeds,
            "max_displacement_voxels": MAX_DISPLACEMENT,
            "smoothness_voxels": SMOOTHNESS,
            "noise": NOISE,
            "bias": BIAS,
            "ddf_scale": DDF_SCALE,
        },
        "sha256": {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    main()
