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
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from monai_reg_ext.demo import manifest as mf
from monai_reg_ext.demo.prostate import ProstateRegion, render_trus

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


class Subject(ProstateRegion):
    """A random analytic prostate region in world mm (axis 0 lateral, 1 posterior->anterior, 2 caudal->cranial)."""

    def __init__(self, rng: np.random.Generator, params: dict):
        u = rng.uniform
        s = float(params["gland_shift_mm"])
        self.probe = np.array([0.0, -30.0, -8.0])  # same probe position in every volume (TRUS sweep geometry)
        self.c = np.array([u(-s, s), u(-s, s) - 2.0, u(-s, s)])
        self.r = np.array([u(13, 19), u(10, 14), u(12, 17)])
        self.draw_gland(u, 12, 0.1, ((0.45, 0.7), (0.45, 0.65), (0.45, 0.7)))
        self.rectum_xy = np.array([0.0, -30.0])
        self.rectum_r = 12.0
        self.draw_calcifications(rng, (0, 4), (1.0, 1.8))
        self.texture_seed = int(rng.integers(2**31))

    def echogenicity(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Echogenicity map and gland membership at world points ``p`` ``(3, *S)``."""
        d_ure = np.hypot(p[0] - self.ure_xy[0], p[1] - self.ure_xy[1])
        d_rec = np.hypot(p[0] - self.rectum_xy[0], p[1] - self.rectum_xy[1])
        m = self.memberships(p, 0.6, 1.0, d_ure, d_rec)
        gland, tz, bladder, lumen, wall, fat, calc = (
            m[k] for k in ("gland", "tz", "bladder", "lumen", "wall", "fat", "calc")
        )
        ure = m["urethra"] * gland
        rng = np.random.default_rng([self.texture_seed, 0])
        tex = ndimage.gaussian_filter(rng.standard_normal(p.shape[1:]), 2.0, mode="wrap")
        tex /= tex.std() + 1e-12
        other = (1 - gland - fat - bladder - lumen - wall).clip(0, 1)
        echo = other * (0.55 + 0.06 * tex) + fat * (0.8 + 0.05 * tex) + bladder * 0.02 + lumen * 0.1 + wall * 0.8
        echo += (gland - tz) * (0.45 + 0.04 * tex) + tz * (0.25 + 0.07 * tex)
        echo = echo * (1 - 0.3 * ure) + 0.4 * m["capsule"] * (1 - bladder)
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
    us, _ = render_trus(echo, [sp] * 3, origin, [0.0, 1.0, 0.2], 120.0, seed)
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
    mf.save_nifti_gz(mf.nifti_image(data, mf.centred_affine(data.shape, spacing), descrip), path)


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
    select = lambda rel: rel.name == "test_pairs.json" or rel.parts[0].startswith(("fold", "example"))  # noqa: E731
    generator = "bundles/unpaired_us_prostate_cv/scripts/make_demo_data.py"
    return mf.write_synthetic_manifest(out, generator, params, ("numpy", "h5py", "nibabel"), select)


check, main = mf.synthetic_entry_points(
    __doc__, Path(__file__).resolve().parents[1] / "data", generate, DEFAULTS, ("seed", "subjects_per_fold")
)


if __name__ == "__main__":
    sys.exit(main())
