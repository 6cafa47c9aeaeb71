"""Deterministic SYNTHETIC demo data for ``unpaired_us_prostate_cv``: 3D transrectal-ultrasound-like volumes, 10 folds.

Nothing here is a real patient or a real scan. Each "subject" is a random analytic prostate region (gland with a
peripheral and a transition zone, urethra, capsule, periprostatic fat, bladder, rectum around the probe, small
calcifications; size, shape, pose and position vary between subjects) rendered as a TRUS-like volume by
:func:`monai_reg_ext.demo.ultrasound.simulate_ultrasound` (speckle, depth attenuation, specular capsule, shadows behind
calcifications, a fan-shaped field of view from a probe at the same place in every volume, as in a TRUS sweep).

As in DeepReg's ``unpaired_us_prostate_cv`` demo the training data is **unlabelled**; the generator's gland masks are
kept in a separate file per fold (``gland_masks.h5``, not a layout name the data loaders read) and are used **only
for evaluation** (Dice of the warped hidden masks).

Usage (from the repository root)::

    python bundles/unpaired_us_prostate_cv/scripts/make_demo_data.py            # writes bundles/.../data
    python bundles/unpaired_us_prostate_cv/scripts/make_demo_data.py --check    # regenerate, compare sha256

Output layout (DeepReg's: one folder per fold, unpaired H5 layout)::

    data/fold{0..9}/images.h5        uint8 volumes (X, Y, Z) = 40x64x64, 1.25 mm voxels, keys subject_XXX
    data/fold{0..9}/gland_masks.h5   uint8 0/1 gland masks, same keys (evaluation only, never used in training)
    data/example/{moving,fixed,moving_mask,fixed_mask}.nii.gz   the first test pair (fold 9) as NIfTI, 1.25 mm
    data/test_pairs.json             that pair, for the inference config and ``monai-reg predict``
    data/manifest.json               sha256 of every file + generator parameters
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from scipy import ndimage

from monai_reg_ext.demo.manifest import (
    centred_affine,
    check_regeneration,
    file_hashes,
    nifti_image,
    save_nifti_gz,
    synthetic_maker_main,
    write_json,
)
from monai_reg_ext.demo.ultrasound import simulate_ultrasound

__all__ = ["DEFAULTS", "Subject", "render_subject", "generate", "check", "main"]

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS: dict = {
    "seed": 7,
    "n_folds": 10,
    "subjects_per_fold": 6,
    "shape": [40, 64, 64],
    "spacing_mm": 1.25,
    "gland_shift_mm": 4.0,
}


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Subject:
    """A random analytic prostate region in world mm (axis 0 lateral, 1 posterior->anterior, 2 caudal->cranial)."""

    def __init__(self, rng: np.random.Generator, params: dict):
        u = rng.uniform
        s = float(params["gland_shift_mm"])
        self.probe = np.array([0.0, -30.0, -8.0])  # same probe position in every volume (TRUS sweep geometry)
        self.c = np.array([u(-s, s), u(-s, s) - 2.0, u(-s, s)])
        self.r = np.array([u(13, 19), u(10, 14), u(12, 17)])
        a = math.radians(u(-12, 12))
        self.rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        self.shape_coef = u(-0.1, 0.1, size=4)
        self.shape_phase = u(0, 2 * math.pi, size=4)
        self.tz_c = self.c + np.array([0, 0.25 * self.r[1], 0.15 * self.r[2]])
        self.tz_r = self.r * np.array([u(0.45, 0.7), u(0.45, 0.65), u(0.45, 0.7)])
        self.ure_xy = self.c[:2] + np.array([0, 0.2 * self.r[1]])
        self.bladder_c = self.c + np.array([0, 4.0, self.r[2] + u(9, 13)])
        self.bladder_r = np.array([u(18, 24), u(14, 18), u(10, 13)])
        self.rectum_xy = np.array([0.0, -30.0])
        self.rectum_r = 12.0
        n_calc = int(rng.integers(0, 4))
        dirs = rng.normal(size=(n_calc, 3))
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
        self.calc = self.tz_c + dirs * self.tz_r * u(0.8, 1.0, size=(n_calc, 1))
        self.calc_r = u(1.0, 1.8, size=n_calc)
        self.texture_seed = int(rng.integers(2**31))

    def gland_rho(self, p: np.ndarray) -> np.ndarray:
        """Normalised radius of the (perturbed) gland ellipsoid: < 1 inside."""
        bc = (1,) * (p.ndim - 1)
        q = np.tensordot(self.rot.T, p - self.c.reshape(3, *bc), axes=1) / self.r.reshape(3, *bc)
        rho = np.sqrt((q**2).sum(0))
        theta = np.arctan2(q[1], q[0])
        cz = q[2] / np.maximum(rho, 1e-6)
        k, ph = self.shape_coef, self.shape_phase
        pert = k[0] * np.cos(2 * theta + ph[0]) + k[1] * np.cos(3 * theta + ph[1]) + k[2] * cz + k[3] * cz**2
        flat = np.where(q[1] < 0, 0.12 * np.clip(-q[1], 0, 1) ** 2, 0.0)
        return rho * (1 + flat) / (1 + pert)

    def echogenicity(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Echogenicity map and gland membership at world points ``p`` ``(3, *S)``."""
        bc = (1,) * (p.ndim - 1)
        w = 0.6
        rho = self.gland_rho(p)
        gland = _sig((1 - rho) * self.r.min() / w)
        capsule = np.exp(-(((rho - 1) * self.r.min() / 1.0) ** 2))
        tz_rho = np.sqrt((((p - self.tz_c.reshape(3, *bc)) / self.tz_r.reshape(3, *bc)) ** 2).sum(0))
        tz = _sig((1 - tz_rho) * self.tz_r.min() / w) * gland
        d_ure = np.hypot(p[0] - self.ure_xy[0], p[1] - self.ure_xy[1])
        ure = _sig((1.6 - d_ure) / w) * gland
        b_rho = np.sqrt((((p - self.bladder_c.reshape(3, *bc)) / self.bladder_r.reshape(3, *bc)) ** 2).sum(0))
        bladder = _sig((1 - b_rho) * self.bladder_r.min() / w) * (1 - gland)
        d_rec = np.hypot(p[0] - self.rectum_xy[0], p[1] - self.rectum_xy[1])
        lumen = _sig((self.rectum_r - 2.5 - d_rec) / w)
        wall = _sig((self.rectum_r - d_rec) / w) - lumen
        fat = np.clip(_sig((1.35 - rho) * self.r.min() / w) * (1 - gland) * (1 - bladder) * (1 - lumen - wall), 0, 1)
        calc = np.zeros_like(rho)
        for c, r in zip(self.calc, self.calc_r):
            d = np.sqrt(((p - c.reshape(3, *bc)) ** 2).sum(0))
            calc = np.maximum(calc, _sig((r - d) / 0.3))
        rng = np.random.default_rng([self.texture_seed, 0])
        tex = ndimage.gaussian_filter(rng.standard_normal(p.shape[1:]), 2.0, mode="wrap")
        tex /= tex.std() + 1e-12
        other = (1 - gland - fat - bladder - lumen - wall).clip(0, 1)
        echo = other * (0.55 + 0.06 * tex) + fat * (0.8 + 0.05 * tex) + bladder * 0.02 + lumen * 0.1 + wall * 0.8
        echo += (gland - tz) * (0.45 + 0.04 * tex) + tz * (0.25 + 0.07 * tex)
        echo = echo * (1 - 0.3 * ure) + 0.4 * capsule * (1 - bladder)
        echo = np.clip(echo * (1 - calc) + 3.0 * calc, 0, None)
        return echo, gland


def _world_points(shape: Sequence[int], spacing: float) -> np.ndarray:
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    return np.stack([(idx[k] - (shape[k] - 1) / 2.0) * spacing for k in range(3)])


def render_subject(seed: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8, gland mask uint8)`` of subject ``seed``, both of shape ``params["shape"]``."""
    shape, sp = [int(s) for s in params["shape"]], float(params["spacing_mm"])
    subject = Subject(np.random.default_rng(seed), params)
    echo, gland = subject.echogenicity(_world_points(shape, sp))
    origin = subject.probe / sp + (np.asarray(shape) - 1) / 2.0
    us, _ = simulate_ultrasound(
        echo,
        spacing=[sp] * 3,
        probe_origin=origin,
        probe_direction=[0.0, 1.0, 0.2],
        fan_angle_deg=120.0,
        attenuation_db_per_mm=0.03,
        speckle_size_mm=1.5,
        boundary_strength=1.0,
        shadow_strength=0.4,
        seed=seed,
    )
    return np.round(us * 255).astype(np.uint8), (gland >= 0.5).astype(np.uint8)


def _write_h5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an H5 file whose bytes depend only on ``arrays`` (no time stamps; fixed gzip level)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=True, libver="earliest") as f:
        for key, arr in arrays.items():
            f.create_dataset(key, data=arr, compression="gzip", compression_opts=9, chunks=arr.shape, track_times=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _save_nifti(data: np.ndarray, spacing: float, path: Path, descrip: str) -> None:
    """``.nii.gz`` with a centred ``spacing`` mm grid; gzip without time stamp (same bytes each run)."""
    save_nifti_gz(nifti_image(data, centred_affine(data.shape, spacing), descrip), path)


def generate(output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the 10 folds into ``output`` (``fold*`` folders replaced) and return the manifest dict."""
    import shutil

    params = {**DEFAULTS, **(params or {})}
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("fold*"), out / "example"]:
        if old.is_dir():
            shutil.rmtree(old)
    n_folds, per_fold = int(params["n_folds"]), int(params["subjects_per_fold"])
    for fold in range(n_folds):
        images, masks = {}, {}
        for j in range(per_fold):
            idx = fold * per_fold + j
            img, mask = render_subject(int(params["seed"]) * 1000 + idx, params)
            images[f"subject_{idx:03d}"], masks[f"subject_{idx:03d}"] = img, mask
        _write_h5(out / f"fold{fold}" / "images.h5", images)
        _write_h5(out / f"fold{fold}" / "gland_masks.h5", masks)
        if fold == n_folds - 1:  # the first test pair (UnpairedDataset order) as NIfTI, for inference
            keys = sorted(images)[:2]
            for role, key in zip(("moving", "fixed"), keys):
                sp = float(params["spacing_mm"])
                _save_nifti(images[key], sp, out / "example" / f"{role}.nii.gz", f"synthetic TRUS {key}")
                _save_nifti(masks[key], sp, out / "example" / f"{role}_mask.nii.gz", f"hidden gland mask {key}")
            pair = {
                "name": f"{keys[0]}->{keys[1]}",
                "moving": "example/moving.nii.gz",
                "fixed": "example/fixed.nii.gz",
                "moving_label": "example/moving_mask.nii.gz",
                "fixed_label": "example/fixed_mask.nii.gz",
            }
            (out / "test_pairs.json").write_text(json.dumps([pair], indent=2) + "\n")
        if verbose:
            vols = [float(m.sum()) * float(params["spacing_mm"]) ** 3 / 1000 for m in masks.values()]
            print(f"fold{fold}: {per_fold} subjects, gland volume {np.mean(vols):.1f} +- {np.std(vols):.1f} ml")
    manifest = {
        "generator": "bundles/unpaired_us_prostate_cv/scripts/make_demo_data.py",
        "synthetic": True,
        "parameters": params,
        "versions": {"numpy": np.__version__, "h5py": h5py.__version__, "nibabel": nib.__version__},
        "files": file_hashes(
            out, lambda rel: rel.name == "test_pairs.json" or rel.parts[0].startswith(("fold", "example"))
        ),
    }
    write_json(out / "manifest.json", manifest, indent=2)
    return manifest


def check(output: str | Path, verbose: bool = True) -> bool:
    """Regenerate into a temporary folder with the parameters in ``output/manifest.json``; compare the sha256s."""
    return check_regeneration(output, lambda tmp, params: generate(tmp, params, verbose=False), verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    default_out = Path(__file__).resolve().parents[1] / "data"
    return synthetic_maker_main(__doc__, default_out, generate, check, DEFAULTS, ("seed", "subjects_per_fold"), argv)


if __name__ == "__main__":
    sys.exit(main())
