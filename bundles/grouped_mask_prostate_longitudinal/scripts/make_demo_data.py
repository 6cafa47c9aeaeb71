"""Deterministic SYNTHETIC longitudinal prostate gland masks for the ``grouped_mask_prostate_longitudinal`` bundle.

Nothing here is real: every "patient" is a random smooth gland-like shape (an ellipsoid whose radius is modulated by a
random polynomial of degree <= 3 on the unit sphere, i.e. spherical-harmonic-like lobulation of degree <= 3) that
changes smoothly over 3-6 "visits" (growth or shrinkage, a drift of the lobulation, and a growing smooth
deformation from ``monai_reg_ext.data.random_smooth_ddf`` applied with ``monai_reg_ext.warp_image``), seen in a new
random rigid pose at every visit. DeepReg's original data (example-data ``longi-masks``) are also simulated masks;
they are not used here. See ``bundles/grouped_mask_prostate_longitudinal/docs/data.md``.

Usage (from the repository root)::

    python bundles/grouped_mask_prostate_longitudinal/scripts/make_demo_data.py
    python bundles/grouped_mask_prostate_longitudinal/scripts/make_demo_data.py --check   # regenerate, compare sha256

Output layout (DeepReg "grouped" layout: one folder per group = patient)::

    data/{train,val,test}/images/patient_XXX/visit_K.nii.gz   uint8 (64, 64, 32) binary gland mask, values 0/1
    data/test/pairs.json                                       first -> last visit of every test patient (inference)
    data/manifest.json                                         sha256 of every file, parameters, per-patient facts
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import warp_image
from monai_reg_ext.demo.manifest import (
    centred_affine,
    check_regeneration,
    file_hashes,
    folder_bytes,
    nifti_image,
    package_version,
    save_nifti_gz,
    synthetic_maker_main,
    write_json,
)
from monai_reg_ext.spatial import random_smooth_ddf

__all__ = ["DEFAULTS", "gland_occupancy", "make_patient", "generate", "check", "main"]

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS: dict = {
    "shape": [64, 64, 32],
    "spacing": [1.5, 1.5, 2.5],
    "n_train": 40,
    "n_val": 4,
    "n_test": 6,
    "seed_train": 1000,
    "seed_val": 2000,
    "seed_test": 3000,
    "visits": [3, 6],
    "radii_mm": [[18.0, 24.0], [13.0, 18.0], [15.0, 21.0]],
    "lobulation": 0.08,
    "lobulation_drift": 0.04,
    "growth": [-0.12, 0.18],
    "max_displacement": 2.5,
    "smoothness": 8.0,
    "rotation_deg": 6.0,
    "translation_mm": 4.0,
}

# monomials of degree 1..3 in the unit direction (u, v, w): the span of real spherical harmonics of degree 1..3
_EXPONENTS = [(a, b, c) for d in (1, 2, 3) for a in range(d + 1) for b in range(d + 1 - a) for c in [d - a - b]]


def _grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """World coordinates (mm) of every voxel, origin at the grid centre: ``(3, *shape)``."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _rotation(angles: Sequence[float]) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def gland_occupancy(
    points: np.ndarray, radii: Sequence[float], coeffs: np.ndarray, scale: float, edge_mm: float = 0.75
) -> np.ndarray:
    """Soft occupancy in [0, 1] of the gland at ``points`` ``(3, ...)`` (mm, gland frame).

    The surface is ``|q / radii| = scale * (1 + P(q / |q|))`` with ``P`` the polynomial
    ``sum_k coeffs[k] * u^a v^b w^c`` over the monomials of degree 1-3 (lobulation);
    the edge is a logistic ramp of width ``edge_mm``.
    """
    q = points / np.asarray(radii, dtype=np.float64).reshape(3, *([1] * (points.ndim - 1)))
    norm = np.sqrt((q**2).sum(0)) + 1e-9
    u, v, w = (points / (np.sqrt((points**2).sum(0)) + 1e-9))[:3]
    poly = sum(c * u**a * v**b * w**e for c, (a, b, e) in zip(coeffs, _EXPONENTS))
    rho = norm / (scale * (1.0 + poly))
    mean_radius = float(np.mean(radii)) * scale
    return 1.0 / (1.0 + np.exp(-np.clip((1.0 - rho) * mean_radius / edge_mm, -50, 50)))


def make_patient(seed: int, p: dict) -> dict:
    """Masks (``uint8`` 0/1, one per visit) and facts of one synthetic patient."""
    rng = np.random.default_rng([seed, 11])
    shape, spacing = tuple(p["shape"]), tuple(p["spacing"])
    n_visits = int(rng.integers(p["visits"][0], p["visits"][1] + 1))
    radii = [float(rng.uniform(lo, hi)) for lo, hi in p["radii_mm"]]
    n_coef = len(_EXPONENTS)
    c0 = rng.normal(0.0, p["lobulation"] / math.sqrt(3), n_coef)
    c1 = c0 + rng.normal(0.0, p["lobulation_drift"] / math.sqrt(3), n_coef)
    growth = float(rng.uniform(*p["growth"]))
    steps = rng.uniform(0.5, 1.5, n_visits - 1)
    times = np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])  # 0 = first visit, 1 = last
    field = random_smooth_ddf(shape, p["max_displacement"], p["smoothness"], seed=seed, diffeomorphic=True).double()
    grid = _grid_mm(shape, spacing)
    masks, visits = [], []
    for t in times:
        angles = np.deg2rad(rng.uniform(-p["rotation_deg"], p["rotation_deg"], 3))
        shift = rng.uniform(-p["translation_mm"], p["translation_mm"], 3)
        rot = _rotation(angles)
        local = np.einsum("ji,j...->i...", rot, grid - shift.reshape(3, 1, 1, 1))  # R^T (x - shift)
        occ = gland_occupancy(local, radii, (1 - t) * c0 + t * c1, 1.0 + growth * t)
        warped = warp_image(torch.from_numpy(occ)[None, None], t * field)[0, 0].numpy()
        mask = (warped >= 0.5).astype(np.uint8)
        masks.append(mask)
        visits.append(
            {
                "time": round(float(t), 4),
                "rotation_deg": [round(float(a), 3) for a in np.rad2deg(angles)],
                "translation_mm": [round(float(s), 3) for s in shift],
                "volume_ml": round(float(mask.sum()) * float(np.prod(spacing)) / 1000.0, 3),
            }
        )
    facts = {"seed": seed, "n_visits": n_visits, "radii_mm": [round(r, 3) for r in radii], "growth": round(growth, 4)}
    return {"masks": masks, "facts": {**facts, "visits": visits}}


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """``.nii.gz`` with gzip level 9 and no time stamp (same bytes each run)."""
    save_nifti_gz(nifti_image(data, affine, "SYNTHETIC prostate gland mask (monai-reg demo)"), path)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def generate(output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the data set into ``output`` and return the manifest (also written as ``manifest.json``)."""
    p = {**DEFAULTS, **(params or {})}
    out = Path(output)
    affine = centred_affine(p["shape"], p["spacing"])
    patients: dict[str, dict] = {}
    pairs = []
    for split in ("train", "val", "test"):
        for k in range(int(p[f"n_{split}"])):
            seed = int(p[f"seed_{split}"]) + k
            res = make_patient(seed, p)
            name = f"patient_{k:03d}"
            for v, mask in enumerate(res["masks"]):
                _save(mask, affine, out / split / "images" / name / f"visit_{v}.nii.gz")
            res["facts"]["dice_first_last"] = round(_dice(res["masks"][0] > 0, res["masks"][-1] > 0), 4)
            patients[f"{split}/{name}"] = res["facts"]
            if split == "test":
                first, last = f"images/{name}/visit_0.nii.gz", f"images/{name}/visit_{len(res['masks']) - 1}.nii.gz"
                pairs.append({"moving": first, "fixed": last, "moving_label": first, "fixed_label": last})
            if verbose:
                facts = res["facts"]
                print(f"{split}/{name}: {facts['n_visits']} visits, Dice first/last {facts['dice_first_last']}")
    (out / "test").mkdir(parents=True, exist_ok=True)
    write_json(out / "test" / "pairs.json", pairs, indent=1)
    files = file_hashes(out)
    manifest = {
        "generator": "bundles/grouped_mask_prostate_longitudinal/scripts/make_demo_data.py",
        "synthetic": True,
        "parameters": p,
        "grid": {"shape": p["shape"], "spacing_mm": p["spacing"], "affine": affine.tolist()},
        "versions": {m: package_version(m) for m in ("numpy", "torch", "nibabel")},
        "patients": patients,
        "files": files,
    }
    write_json(out / "manifest.json", manifest, indent=1)
    if verbose:
        print(f"wrote {len(files) + 1} files to {out} ({folder_bytes(out) / 1e6:.2f} MB)")
    return manifest


def check(output: str | Path, verbose: bool = True) -> bool:
    """Regenerate into a temporary folder with the parameters of ``output/manifest.json`` and compare the sha256s."""
    return check_regeneration(output, lambda tmp, params: generate(tmp, params, verbose=False), verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    default_out = Path(__file__).resolve().parents[1] / "data"
    return synthetic_maker_main(__doc__, default_out, generate, check, DEFAULTS, ("n_train", "n_val", "n_test"), argv)


if __name__ == "__main__":
    sys.exit(main())
