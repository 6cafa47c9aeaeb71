"""Deterministic demo data for the ``paired_ct_lung`` bundle: inspiration/expiration pairs made from real chest CTs.

What is real: three chest CTs of three patients shipped inside registry packages (TotalSegmentator 2.18.0 source
tarball: ``tests/reference_files/aorta_report/example_ct.nii.gz``, a contrast chest CT; pyradiomics 3.1.0 source:
``data/lung1_image.nrrd`` and ``data/lung2_image.nrrd``). Each real CT is the **inspiration** (fixed) image. What is
synthetic: the **expiration** (moving) image, made by a known breathing motion (diaphragm moving cranially, decaying
towards the apex; chest wall moving inwards; sliding at the pleura; lung density raised by mass conservation,
``monai_reg_ext.demo.chest_ct``), the anatomy variants of the training pairs (a smooth random deformation of the real
CT), and the landmarks' expiration positions (the real vessel keypoints carried through the known motion). See
``bundles/paired_ct_lung/docs/data.md``.

Usage: as :mod:`monai_reg_ext.demo.chest_ct_demo` says, with ``<bundle>`` = ``paired_ct_lung``.

Output layout (DeepReg "paired" layout; DDF convention in ``docs/conventions.md``)::

    data/{train,val,test}/{moving,fixed}_images/pair_XXX.nii.gz   uint8 (64, 56, 64), HU = -1000 + 1200 / 255 * q
    data/{train,val,test}/{moving,fixed}_labels/pair_XXX.nii.gz   uint8 lung mask
    data/{val,test}/true_ddf/pair_XXX.nii.gz     int16 (X, Y, Z, 3), scl_slope 0.05: VOXEL DDF
                                                  (pull, moving = expiration, channel k = array axis k)
    data/{val,test}/landmarks/pair_XXX_{fixed,moving}.csv         vessel keypoints, voxel indices i, j, k
    data/{val,test}/pairs.json, baseline.json                     pairs with all files; "no registration" numbers
    data/example/{moving,fixed,moving_label,fixed_label}.nii.gz, {moving,fixed}_landmarks.csv   = test pair 0
    data/manifest.json                                            sha256 of every file + generator parameters
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext.demo import chest_ct_demo as lung_demo
from monai_reg_ext.demo.chest_ct import (
    body_mask,
    breathing_motion,
    expiration_image,
    grid_affine,
    lung_centre,
    lung_mask,
    resample,
    sample_breathing_params,
    sample_field,
    smooth_random_field,
    vessel_keypoints,
)
from monai_reg_ext.demo.chest_ct_demo import HU_MAX, HU_MIN
from monai_reg_ext.demo.manifest import binary_dice, nifti_image, save_nifti_gz
from monai_reg_ext.spatial import warp_image

__all__ = ["DEFAULTS", "HU_MIN", "HU_MAX", "generate", "check", "main"]

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "shape": [64, 56, 64],  # voxels (R-L, A-P, S-I), divisible by 8
    "spacing": 4.5,  # mm, isotropic
    "train_subjects": ["ts_chest", "pyrad_lung1"],
    "test_subjects": ["pyrad_lung2"],  # held out of training: the reported results
    "n_train_per_subject": 5,
    "n_val_per_subject": 1,
    "n_test_per_subject": 3,
    "seed": 6000,
    "anatomy_max_mm": 9.0,  # training pairs only: smooth random deformation of the real CT (max norm)
    "anatomy_smoothness": 8.0,  # voxels
    "inverse_iterations": 20,
    "keypoint_spacing": 2.0,  # mm: grid on which vessel keypoints are detected
    "max_keypoints": 300,
    "keypoint_min_distance_mm": 8.0,
    "ddf_scale": 0.05,  # voxels per int16 step of the stored true DDFs (0.225 mm)
}


def _write_csv(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["i,j,k"] + [",".join(f"{v:.4f}" for v in p) for p in points]
    path.write_text("\n".join(lines) + "\n")


def _subject_grid(hu: np.ndarray, affine: np.ndarray, p: dict) -> tuple[np.ndarray, dict]:
    centre, extent = lung_centre(hu, affine)
    grid = grid_affine(centre, p["shape"], p["spacing"])
    return grid, {"lung_centre_mm": np.round(centre, 2).tolist(), "lung_extent_mm": np.round(extent, 1).tolist()}


def _keypoints(hu: np.ndarray, affine: np.ndarray, grid: np.ndarray, p: dict) -> np.ndarray:
    """Vessel keypoints of the real CT (detected on a fine grid covering the demo grid), in demo-grid voxels."""
    sp = float(p["keypoint_spacing"])
    shape = np.asarray(p["shape"])
    fine_shape = np.ceil((shape - 1) * p["spacing"] / sp).astype(int) + 1
    fine = np.diag([sp, sp, sp, 1.0])
    fine[:3, 3] = grid[:3, 3]
    hu_f = np.clip(resample(hu, affine, fine, fine_shape), HU_MIN, HU_MAX)
    pts, _ = vessel_keypoints(
        hu_f, lung_mask(hu_f), sp, max_points=p["max_keypoints"], min_distance_mm=p["keypoint_min_distance_mm"]
    )
    world = (fine[:3, :3] @ pts.T).T + fine[:3, 3]
    vox = (np.linalg.inv(grid)[:3, :3] @ world.T).T + np.linalg.inv(grid)[:3, 3]
    inside = np.all((vox >= 0) & (vox <= shape - 1), axis=1)
    return vox[inside]


def _make_pair(hu, affine, grid, p: dict, seed: int, augment: bool) -> dict:
    shape = tuple(p["shape"])
    anatomy = None
    if augment:
        anatomy = smooth_random_field(shape, p["anatomy_max_mm"] / p["spacing"], p["anatomy_smoothness"], seed + 7)
    insp = np.clip(resample(hu, affine, grid, shape, ddf=anatomy), HU_MIN, HU_MAX)
    lungs, body = lung_mask(insp), body_mask(insp)
    rng = np.random.default_rng(seed)
    params = sample_breathing_params(rng)
    motion, _ = breathing_motion(lungs, body, p["spacing"], params, seed=seed)
    exp = expiration_image(hu, affine, grid, shape, motion, lungs, anatomy=anatomy, iterations=p["inverse_iterations"])
    return {
        "fixed": insp,
        "moving": np.clip(exp["image"], HU_MIN, HU_MAX),
        "fixed_label": lungs,
        "moving_label": exp["lungs"],
        "motion": motion,
        "info": {
            "seed": seed,
            "breathing": params.as_dict(),
            "max_motion_mm": round(float(np.linalg.norm(motion, axis=0).max() * p["spacing"]), 2),
            "mean_motion_in_lungs_mm": round(float(np.linalg.norm(motion, axis=0)[lungs].mean() * p["spacing"]), 2),
            "lung_volume_ratio_exp_insp": round(float(exp["jacobian"][lungs].mean()), 4),
            "min_jacobian": round(float(exp["jacobian"].min()), 4),
            "inverse_residual_voxels": round(exp["inverse_residual"], 5),
        },
    }


def generate(totalsegmentator: str, pyradiomics: str, output: str | Path, params: dict | None = None, verbose=True):
    """Write the demo data set to ``output``; returns the manifest (also written as ``output/manifest.json``)."""
    p, cts, source_sha = lung_demo.start_chest_ct_maker(DEFAULTS, params, totalsegmentator, pyradiomics)
    out = Path(output)
    manifest: dict = {"parameters": p, "sources": source_sha, "subjects": {}, "pairs": {}, "files": {}}
    grids = {}
    for name, (hu, aff) in cts.items():
        grids[name], manifest["subjects"][name] = _subject_grid(hu, aff, p)
    splits = {
        "train": [(s, p["n_train_per_subject"], True) for s in p["train_subjects"]],
        "val": [(s, p["n_val_per_subject"], False) for s in p["train_subjects"]],
        "test": [(s, p["n_test_per_subject"], False) for s in p["test_subjects"]],
    }
    offsets = {"train": 0, "val": 1000, "test": 2000}
    for split, items in splits.items():
        idx, pairs, baseline = 0, [], []
        for s_i, (subject, n, augment) in enumerate(items):
            hu, aff = cts[subject]
            grid = grids[subject]
            kp = None if split == "train" else _keypoints(hu, aff, grid, p)
            for k in range(n):
                seed = p["seed"] + offsets[split] + 100 * s_i + k
                pair = _make_pair(hu, aff, grid, p, seed, augment)
                name = f"pair_{idx:03d}"
                fimg, _ = lung_demo.ct_uint8_image(pair["fixed"], grid)
                mimg, _ = lung_demo.ct_uint8_image(pair["moving"], grid)
                save_nifti_gz(fimg, out / split / "fixed_images" / f"{name}.nii.gz")
                save_nifti_gz(mimg, out / split / "moving_images" / f"{name}.nii.gz")
                for key in ("fixed_label", "moving_label"):
                    lab = lung_demo.mask_image(pair[key], grid, "lung mask (HU < -400, largest components)")
                    save_nifti_gz(lab, out / split / f"{key}s" / f"{name}.nii.gz")
                manifest["pairs"][f"{split}/{name}"] = {"subject": subject, **pair["info"]}
                if kp is not None:
                    q = np.round(pair["motion"] / p["ddf_scale"])
                    ddf = np.moveaxis(q, 0, -1).astype(np.int16)
                    ddf_img = nifti_image(ddf, grid, "voxel DDF pull moving=exp ch k=axis k", units=None)
                    ddf_img.header.set_slope_inter(p["ddf_scale"], 0.0)
                    save_nifti_gz(ddf_img, out / split / "true_ddf" / f"{name}.nii.gz")
                    stored = q * p["ddf_scale"]
                    moving_kp = kp + sample_field(stored, kp)
                    _write_csv(out / split / "landmarks" / f"{name}_fixed.csv", kp)
                    _write_csv(out / split / "landmarks" / f"{name}_moving.csv", moving_kp)
                    pairs.append(
                        {
                            "moving": f"moving_images/{name}.nii.gz",
                            "fixed": f"fixed_images/{name}.nii.gz",
                            "moving_label": f"moving_labels/{name}.nii.gz",
                            "fixed_label": f"fixed_labels/{name}.nii.gz",
                            "ddf": f"true_ddf/{name}.nii.gz",
                            "moving_landmarks": f"landmarks/{name}_moving.csv",
                            "fixed_landmarks": f"landmarks/{name}_fixed.csv",
                            "subject": subject,
                        }
                    )
                    tre0 = np.linalg.norm((moving_kp - kp) * p["spacing"], axis=1)
                    warped = warp_image(
                        torch.from_numpy(pair["moving_label"].astype(np.float64))[None, None],
                        torch.from_numpy(stored)[None],
                    )[0, 0].numpy()
                    baseline.append(
                        {
                            "pair": name,
                            "subject": subject,
                            "n_landmarks": int(len(kp)),
                            "dice_before": round(binary_dice(pair["moving_label"], pair["fixed_label"]), 4),
                            "dice_true_ddf": round(binary_dice(warped > 0.5, pair["fixed_label"]), 4),
                            "tre_before_mm": round(float(tre0.mean()), 3),
                            "tre_before_max_mm": round(float(tre0.max()), 3),
                        }
                    )
                    if split == "test" and idx == 0:
                        ex = out / "example"
                        save_nifti_gz(fimg, ex / "fixed.nii.gz")
                        save_nifti_gz(mimg, ex / "moving.nii.gz")
                        for key in ("fixed_label", "moving_label"):
                            lab = lung_demo.mask_image(pair[key], grid, "lung mask")
                            save_nifti_gz(lab, ex / f"{key}.nii.gz")
                        _write_csv(ex / "fixed_landmarks.csv", kp)
                        _write_csv(ex / "moving_landmarks.csv", moving_kp)
                if verbose:
                    print(f"{split}/{name} ({subject}): {pair['info']}", flush=True)
                idx += 1
        if pairs:
            (out / split / "pairs.json").write_text(json.dumps(pairs, indent=2) + "\n")
            keys = ("dice_before", "dice_true_ddf", "tre_before_mm")
            summary = {}
            for k in keys:
                vals = [b[k] for b in baseline]
                summary[k] = [round(float(np.mean(vals)), 4), round(float(np.std(vals)), 4)]
            (out / split / "baseline.json").write_text(
                json.dumps({"pairs": baseline, "mean_std": summary}, indent=2) + "\n"
            )
    return lung_demo.finish_chest_ct_maker(out, manifest)


check, main = lung_demo.chest_ct_entry_points(__doc__, Path(__file__).resolve().parents[1] / "data", generate)


if __name__ == "__main__":
    sys.exit(main())
