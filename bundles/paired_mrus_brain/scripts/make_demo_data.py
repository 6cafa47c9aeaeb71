"""Deterministic demo data for ``paired_mrus_brain``: real brain MR (moving) and a simulated intra-operative
ultrasound of the same brain after a synthetic brain shift (fixed), with landmarks carried through the known shift.

What is real: the MNI ICBM152 2009a symmetric T1 template and its grey/white-matter maps (population average of 152
adults, shipped in the nilearn wheel; read by :mod:`monai_reg_ext.demo.mni_template`). What is synthetic: every
"case" is that one template under a random smooth subject deformation (so the cases are NOT different people); the
brain shift (a smooth sinking of tissue under a random craniotomy, largest under the opening and decaying with depth);
the ultrasound (rendered from tissue echogenicity by :func:`monai_reg_ext.demo.ultrasound.simulate_ultrasound`); and
the landmarks (distinctive points found automatically in the template, mapped through the known deformations).
See ``bundles/paired_mrus_brain/docs/data.md``.

Usage (from the repository root)::

    pip download --no-deps nilearn -d downloads/nl
    python bundles/paired_mrus_brain/scripts/make_demo_data.py --source downloads/nl/nilearn-*.whl \\
        --output bundles/paired_mrus_brain/data
    python bundles/paired_mrus_brain/scripts/make_demo_data.py --source downloads/nl/nilearn-*.whl \\
        --output bundles/paired_mrus_brain/data --check     # regenerate in a temp dir, compare sha256

Output layout (DeepReg "paired" layout; DDF convention in ``docs/conventions.md``)::

    data/{train,val,test}/moving_images/case_XXX.nii.gz   uint8 (X, Y, Z) T1 MR (pre-operative), 0-255
    data/{train,val,test}/fixed_images/case_XXX.nii.gz    uint8 (X, Y, Z) simulated 3D ultrasound, 0 outside its cone
    data/{val,test}/moving_landmarks/case_XXX.json        {"space": "physical", "points": [[x, y, z], ...]} RAS mm
    data/{val,test}/fixed_landmarks/case_XXX.json         the same anatomical points after the shift (same order)
    data/test/moving_labels/case_XXX.nii.gz               hidden tissue masks, uint8 one-hot (X, Y, Z, 2) [GM, WM]
    data/test/fixed_labels/case_XXX.nii.gz                the same after the shift (never used for training)
    data/test/fov/case_XXX.nii.gz                         uint8 ultrasound field of view (cone within its depth)
    data/test/true_ddf/case_XXX.nii.gz                    int16 (X, Y, Z, 3), scl_slope 0.05: VOXEL DDF (pull)
    data/test/pairs.json, data/test/baseline.json         test pairs with every file; TRE etc. before registration
    data/example/{moving,fixed}.nii.gz, {moving,fixed}_landmarks.json   = test case 0
    data/manifest.json                                    sha256 of every file + generator parameters
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import jacobian_determinant, warp_image
from monai_reg_ext.demo import manifest as mf
from monai_reg_ext.demo import mni_template as mni
from monai_reg_ext.demo.ultrasound import simulate_ultrasound
from monai_reg_ext.metrics.landmark import sample_ddf
from monai_reg_ext.spatial import random_smooth_ddf

__all__ = [
    "DEFAULTS",
    "template_landmarks",
    "craniotomy",
    "brain_shift_ddf",
    "invert_at_points",
    "echogenicity",
    "generate",
    "check",
    "main",
]

#: The generated top-level folders of ``data`` (``manifest.json`` lists their files).
OUTPUTS = ("train", "val", "test", "example")
#: The images of a case: (key of the case, sub-folder, NIfTI description); only the test split has the labels,
#: the field of view and the true DDF
IMAGES = (
    ("moving", "moving_images", "MNI152 2009a T1, random subject warp"),
    ("fixed", "fixed_images", "simulated iUS after synthetic brain shift"),
    ("moving_label", "moving_labels", "one-hot [GM, WM] (last axis)"),
    ("fixed_label", "fixed_labels", "one-hot [GM, WM] after shift"),
    ("fov", "fov", "ultrasound field of view"),
)

#: The description of the test pairs' ``baseline.json``
BASELINE = (
    "Test pairs (moving MR -> fixed US). no_registration: TRE (mm) of the landmarks with a zero DDF, Dice "
    "of the hidden GM/WM masks inside the ultrasound field of view, |true shift| (mm) in the brain inside the "
    "field of view and its maximum. true_ddf: TRE with the stored (int16-quantised) true DDF, the ceiling."
)

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "shape": [56, 64, 56],  # voxels, divisible by 8
    "spacing": 3.0,  # mm, isotropic
    "n_train": 32,
    "n_val": 4,
    "n_test": 6,
    "seed_train": 1000,  # case k of a split uses seed = seed_<split> + k
    "seed_val": 2000,
    "seed_test": 3000,
    "subject_max_displacement": 2.0,  # voxels: random smooth subject deformation (6 mm)
    "subject_smoothness": 6.0,  # voxels
    "shift_amplitude_mm": [5.0, 12.0],  # sinking of the tissue right under the craniotomy, uniform in the range
    "shift_radius_mm": [25.0, 40.0],  # Gaussian sigma across the beam axis
    "shift_depth_mm": [35.0, 60.0],  # Gaussian sigma of the decay with depth below the brain surface
    "craniotomy_elevation_deg": [30.0, 80.0],  # angle of the opening above the axial plane (90 = vertex)
    "echogenicity": {"outside": 0.0, "csf": 0.03, "gm": 0.25, "wm": 0.6},
    "texture": 0.1,  # relative amplitude of a smooth random tissue texture of the echogenicity
    "us_fan_angle_deg": 80.0,
    "us_depth_mm": 70.0,
    "us_attenuation_db_per_mm": 0.05,
    "us_speckle_size_mm": 1.5,
    "us_boundary_strength": 4.0,
    "us_shadow_strength": 0.5,
    "us_smoothing_vox": 0.7,  # Gaussian sigma inside the cone: averaging of sub-voxel speckle grains in a 3 mm voxel
    "mr_noise_std": 0.01,  # Rician noise sigma on T1 in [0, 1]
    "landmark_candidates": 300,  # distinctive template points (3D Harris corners), ranked by response
    "landmark_separation_mm": 8.0,
    "landmark_max_per_case": 20,
    "landmark_min_per_case": 5,
    "ddf_scale": 0.05,  # voxels per int16 step in true_ddf files (scl_slope)
}


# --------------------------------------------------------------------------------------------------------- landmarks
def template_landmarks(
    volumes: dict[str, np.ndarray], src_affine: np.ndarray, n: int, separation_mm: float
) -> np.ndarray:
    """Distinctive points of the template T1: 3D Harris corners inside the brain, at least 6 mm from its surface.

    Structure tensor of the T1 smoothed with sigma 1.5 mm (integration sigma 3 mm); response
    ``det(J) - 0.005 * trace(J) ** 3``; greedy non-maximum suppression keeping points ``separation_mm`` apart.

    Returns:
        ``(N, 3)`` world RAS mm, ``N <= n``, strongest first.
    """
    t1 = volumes["t1"]
    sp = np.linalg.norm(src_affine[:3, :3], axis=0)
    grads = [
        ndimage.gaussian_filter(t1, 1.5 / sp, order=tuple(int(a == k) for a in range(3))) / sp[k] for k in range(3)
    ]
    j = {}
    for a in range(3):
        for b in range(a, 3):
            j[a, b] = ndimage.gaussian_filter(grads[a] * grads[b], 3.0 / sp)
    det = (
        j[0, 0] * (j[1, 1] * j[2, 2] - j[1, 2] ** 2)
        - j[0, 1] * (j[0, 1] * j[2, 2] - j[1, 2] * j[0, 2])
        + j[0, 2] * (j[0, 1] * j[1, 2] - j[1, 1] * j[0, 2])
    )
    response = det - 0.005 * (j[0, 0] + j[1, 1] + j[2, 2]) ** 3
    inside = ndimage.binary_erosion(
        ndimage.binary_fill_holes(mni.brain_mask(volumes)), iterations=int(round(6 / sp.min()))
    )
    peaks = (response == ndimage.maximum_filter(response, size=5)) & inside & (response > 0)
    idx = np.argwhere(peaks)
    order = np.argsort(-response[peaks], kind="stable")
    world = (src_affine[:3, :3] @ idx[order].T).T + src_affine[:3, 3]
    chosen: list[np.ndarray] = []
    for p in world:
        if all(np.linalg.norm(p - q) >= separation_mm for q in chosen):
            chosen.append(p)
            if len(chosen) == n:
                break
    return np.asarray(chosen, dtype=np.float64).reshape(-1, 3)


def invert_at_points(ddf: torch.Tensor, targets: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Points ``y`` with ``y + ddf(y) = targets`` (fixed-point iteration ``y <- targets - ddf(y)``, linear sampling).

    Args:
        ddf: ``(1, 3, *S)`` pull field in voxels.
        targets: ``(N, 3)`` voxel coordinates.

    Returns:
        ``(N, 3)`` voxel coordinates (converges for fields with a spatial gradient below 1).
    """
    t = torch.as_tensor(targets, dtype=torch.float64)
    y = t.clone()
    for _ in range(iterations):
        y = t - sample_ddf(ddf.to(torch.float64), y)
    return y.numpy()


# ------------------------------------------------------------------------------------------------------- brain shift
def craniotomy(brain: np.ndarray, elevation_deg: float, azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Position of a craniotomy on the brain surface and the outward unit direction of the opening.

    The direction ``u`` has elevation ``elevation_deg`` above the axial plane and azimuth ``azimuth_deg`` (array axes
    = RAS axes of the demo grid: 0 right, 1 anterior, 2 superior). The point is where the ray from the brain's
    centroid along ``u`` leaves the mask ``brain``.

    Returns:
        ``(point (3,) voxels, u (3,) unit vector)``.
    """
    el, az = np.deg2rad(elevation_deg), np.deg2rad(azimuth_deg)
    u = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    centre = np.argwhere(brain).mean(0)
    t = 0.0
    shape = np.asarray(brain.shape)
    while True:
        p = centre + (t + 0.25) * u
        q = np.round(p).astype(int)
        if np.any(q < 0) or np.any(q >= shape) or not brain[tuple(q)]:
            break
        t += 0.25
    return centre + t * u, u


def brain_shift_ddf(
    points: np.ndarray, centre: np.ndarray, u: np.ndarray, spacing: float, amplitude_mm: float, radius_mm, depth_mm
) -> np.ndarray:
    """Pull displacement (voxels) of a brain shift: tissue sinks along ``-u`` under the craniotomy.

    ``d(x) = A g(x) u`` with ``g = exp(-r^2 / (2 R^2)) * exp(-max(h, 0)^2 / (2 H^2))``, ``r`` the distance (mm) of
    ``x`` from the beam axis through ``centre`` along ``u``, ``h`` the depth (mm) of ``x`` below ``centre``. With
    pull semantics the intra-operative voxel ``x`` shows the pre-operative tissue at ``x + d(x)``, i.e. tissue that
    was ``A g`` mm closer to the opening: the brain surface under the craniotomy sinks by ``A`` mm.

    Args:
        points: ``(3, ...)`` voxel coordinates (e.g. a meshgrid) or ``(3, N)``.
        centre: ``(3,)`` craniotomy point (voxels); ``u``: ``(3,)`` outward unit vector.
        spacing: voxel size (mm); amplitude_mm, radius_mm, depth_mm: ``A``, ``R``, ``H`` in mm.

    Returns:
        ``(3, ...)`` displacement in voxels, same layout as ``points``.
    """
    rel = (points - centre.reshape(3, *([1] * (points.ndim - 1)))) * spacing
    along = np.tensordot(u, rel, axes=1)  # mm, positive towards the opening
    r2 = np.maximum((rel**2).sum(0) - along**2, 0.0)
    depth = np.maximum(-along, 0.0)
    g = np.exp(-r2 / (2 * radius_mm**2)) * np.exp(-(depth**2) / (2 * depth_mm**2))
    return (amplitude_mm / spacing) * g[None] * u.reshape(3, *([1] * (points.ndim - 1)))


def echogenicity(probs: dict[str, np.ndarray], values: dict[str, float], texture: np.ndarray) -> np.ndarray:
    """Echogenicity map from tissue probabilities: ``sum_t p_t e_t`` times ``texture`` (>= 0).

    ``probs`` has ``gm``, ``wm`` and ``icv`` (intracranial volume); CSF = icv - GM - WM, outside = 1 - icv.
    """
    csf = np.clip(probs["icv"] - probs["gm"] - probs["wm"], 0.0, 1.0)
    outside = np.clip(1.0 - probs["icv"], 0.0, 1.0)
    e = values["gm"] * probs["gm"] + values["wm"] * probs["wm"] + values["csf"] * csf + values["outside"] * outside
    return np.clip(e * texture, 0.0, None)


# -------------------------------------------------------------------------------------------------------- one case
def _to_uint8(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.round((x - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / max(float(n.std()), 1e-12)


def _one_hot(probs: dict[str, np.ndarray]) -> np.ndarray:
    bg = np.clip(1.0 - probs["gm"] - probs["wm"], 0.0, 1.0)
    arg = np.argmax(np.stack([bg, probs["gm"], probs["wm"]]), axis=0)
    return np.stack([arg == 1, arg == 2], axis=-1).astype(np.uint8)


def _make_case(seed: int, smoothed, tgt_affine, src_affine, landmarks_world, p: dict) -> dict:
    shape = tuple(p["shape"])
    sp = float(p["spacing"])
    rng = np.random.default_rng([seed, 11])
    # pre-operative subject: template under a random smooth diffeomorphism s (pull, voxels)
    s = random_smooth_ddf(shape, p["subject_max_displacement"], p["subject_smoothness"], seed=seed, dtype=torch.float64)
    pre = mni.sample_volumes(smoothed, tgt_affine, src_affine, shape, s[0].numpy())
    t1 = np.clip(pre["t1"], 0.0, 1.0)
    sigma = p["mr_noise_std"]
    mr = np.sqrt((t1 + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
    mr = mr * (pre["t1"] > 0.01)
    # craniotomy and brain shift d (pull, voxels, on the fixed grid)
    brain = pre["icv"] > 0.5
    el = float(rng.uniform(*p["craniotomy_elevation_deg"]))
    az = float(rng.uniform(0.0, 360.0))
    centre, u = craniotomy(brain, el, az)
    amp = float(rng.uniform(*p["shift_amplitude_mm"]))
    rad = float(rng.uniform(*p["shift_radius_mm"]))
    dep = float(rng.uniform(*p["shift_depth_mm"]))
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    d = torch.from_numpy(brain_shift_ddf(grid, centre, u, sp, amp, rad, dep))[None]
    # intra-operative tissue: template at x + d(x) + s(x + d(x))
    total = d + warp_image(s, d, mode="bilinear", padding_mode="border")
    intra = mni.sample_volumes(smoothed, tgt_affine, src_affine, shape, total[0].numpy())
    texture = 1.0 + p["texture"] * np.tanh(_smooth_noise(rng, shape, 1.0))
    echo = echogenicity(intra, p["echogenicity"], texture)
    probe = centre + (3.0 / sp) * u  # 3 mm above the brain surface, in the opening
    us, fov = simulate_ultrasound(
        echo,
        [sp] * 3,
        probe.tolist(),
        (-u).tolist(),
        fan_angle_deg=p["us_fan_angle_deg"],
        depth_mm=p["us_depth_mm"],
        attenuation_db_per_mm=p["us_attenuation_db_per_mm"],
        speckle_size_mm=p["us_speckle_size_mm"],
        boundary_strength=p["us_boundary_strength"],
        shadow_strength=p["us_shadow_strength"],
        seed=seed,
    )
    if p["us_smoothing_vox"] > 0:  # normalised convolution inside the cone (no dark rim at its edge)
        num = ndimage.gaussian_filter(np.where(fov, us, 0.0).astype(np.float64), p["us_smoothing_vox"])
        den = ndimage.gaussian_filter(fov.astype(np.float64), p["us_smoothing_vox"])
        us = np.where(fov, num / np.maximum(den, 1e-6), 0.0)
    # landmarks: template (world) -> template grid voxels q -> moving y (y + s(y) = q) -> fixed f (f + d(f) = y)
    inv_t = np.linalg.inv(tgt_affine)
    q = (inv_t[:3, :3] @ landmarks_world.T).T + inv_t[:3, 3]
    y = invert_at_points(s, q)
    f = y.copy()
    for _ in range(50):  # the shift is analytic: f = y - d(f) evaluated exactly
        f = y - brain_shift_ddf(f.T, centre, u, sp, amp, rad, dep).T
    inside_fov = ndimage.binary_erosion(fov, iterations=1)
    in_brain = ndimage.map_coordinates(intra["gm"] + intra["wm"], f.T, order=1, mode="constant") > 0.5
    fi = np.round(f).astype(int)
    in_grid = np.all((fi >= 0) & (fi < np.asarray(shape)), axis=1)
    keep = np.zeros(len(f), dtype=bool)
    keep[in_grid] = inside_fov[tuple(fi[in_grid].T)] & in_brain[in_grid]
    keep_idx = np.nonzero(keep)[0][: int(p["landmark_max_per_case"])]
    if keep_idx.size < int(p["landmark_min_per_case"]):
        raise ValueError(f"case seed {seed}: only {keep_idx.size} landmarks in the ultrasound cone.")
    jac = jacobian_determinant(d)
    res_s = np.abs(y + sample_ddf(s, torch.from_numpy(y)).numpy() - q)[keep_idx].max()
    return {
        "moving": _to_uint8(mr),
        "fixed": np.round(np.clip(us, 0.0, 1.0) * 255.0).astype(np.uint8),
        "fov": fov.astype(np.uint8),
        "moving_label": _one_hot(pre),
        "fixed_label": _one_hot(intra),
        "ddf": d,
        "moving_landmarks": y[keep_idx],
        "fixed_landmarks": f[keep_idx],
        "info": {
            "seed": seed,
            "craniotomy_voxel": np.round(centre, 2).tolist(),
            "craniotomy_direction": np.round(u, 4).tolist(),
            "elevation_deg": round(el, 2),
            "azimuth_deg": round(az, 2),
            "shift_amplitude_mm": round(amp, 3),
            "shift_radius_mm": round(rad, 3),
            "shift_depth_mm": round(dep, 3),
            "shift_jacobian_min": round(float(jac.min()), 4),
            "fov_fraction": round(float(fov.mean()), 4),
            "n_landmarks": int(keep_idx.size),
            "landmark_template_index": keep_idx.tolist(),
            "subject_inverse_residual_max_vox": round(float(res_s), 5),
        },
    }


# ------------------------------------------------------------------------------------------------------------ output
def _save_points(points_vox: np.ndarray, affine: np.ndarray, path: Path) -> None:
    world = (affine[:3, :3] @ points_vox.T).T + affine[:3, 3]
    path.parent.mkdir(parents=True, exist_ok=True)
    pts = [[round(float(v), 4) for v in row] for row in world]
    path.write_text(json.dumps({"space": "physical", "points": pts}) + "\n")


def generate(source: str | None, output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the demo data set into ``output`` (its generated sub-folders are replaced) and return the manifest.

    Args:
        source: nilearn wheel path, ``"nilearn"``/None (installed package) or a folder with the template files.
        output: destination folder.
        params: overrides of :data:`DEFAULTS`.
        verbose: print progress and the baseline.
    """
    p, say = mf.start_split_maker(DEFAULTS, params, {"train": 1, "val": 0, "test": 1}, verbose)

    volumes, src_affine, src_hashes, where = mni.load_mni_template(source)
    say(f"source: {where}, shape {volumes['t1'].shape}")
    shape = tuple(p["shape"])
    sp = float(p["spacing"])
    tgt_affine, margins = mni.target_grid(volumes, src_affine, shape, sp)
    volumes["icv"] = ndimage.binary_fill_holes(mni.brain_mask(volumes)).astype(np.float64)
    smoothed = mni.antialias(volumes, src_affine, sp)
    landmarks_world = template_landmarks(
        volumes, src_affine, int(p["landmark_candidates"]), float(p["landmark_separation_mm"])
    )
    say(f"grid {shape} at {sp} mm; {len(landmarks_world)} template landmark candidates")

    out = Path(output)
    mf.clear_outputs(out, (*OUTPUTS, "manifest.json"))

    cases_info: dict[str, list] = {}
    pairs, baseline_pairs = [], []
    r = tgt_affine[:3, :3]
    for split in ("train", "val", "test"):
        cases_info[split] = []
        for k in range(int(p[f"n_{split}"])):
            case = _make_case(int(p[f"seed_{split}"]) + k, smoothed, tgt_affine, src_affine, landmarks_world, p)
            name = f"case_{k:03d}"
            folder = out / split
            for key, sub, descrip in IMAGES:
                if split == "test" or sub.endswith("_images"):
                    mf.save_nifti_gz(mf.nifti_image(case[key], tgt_affine, descrip), folder / sub / f"{name}.nii.gz")
            if split in ("val", "test"):
                _save_points(case["moving_landmarks"], tgt_affine, folder / "moving_landmarks" / f"{name}.json")
                _save_points(case["fixed_landmarks"], tgt_affine, folder / "fixed_landmarks" / f"{name}.json")
            if split == "test":
                q = torch.round(case["ddf"] / p["ddf_scale"])
                ddf_img = mf.nifti_image(
                    q[0].permute(1, 2, 3, 0).numpy().astype(np.int16), tgt_affine, "voxel DDF, pull, ch k=axis k"
                )
                ddf_img.header.set_slope_inter(p["ddf_scale"], 0.0)
                mf.save_nifti_gz(ddf_img, folder / "true_ddf" / f"{name}.nii.gz")
                entry = {
                    "moving": f"moving_images/{name}.nii.gz",
                    "fixed": f"fixed_images/{name}.nii.gz",
                    "moving_label": f"moving_labels/{name}.nii.gz",
                    "fixed_label": f"fixed_labels/{name}.nii.gz",
                    "moving_landmarks": f"moving_landmarks/{name}.json",
                    "fixed_landmarks": f"fixed_landmarks/{name}.json",
                    "fov": f"fov/{name}.nii.gz",
                    "ddf": f"true_ddf/{name}.nii.gz",
                }
                pairs.append(entry)
                stored = q * p["ddf_scale"]
                f, y = case["fixed_landmarks"], case["moving_landmarks"]
                before = np.linalg.norm((f - y) @ r.T, axis=1)
                moved = f + sample_ddf(stored, torch.from_numpy(f)).numpy()
                after = np.linalg.norm((moved - y) @ r.T, axis=1)
                fov = case["fov"] > 0
                mm = np.linalg.norm(np.einsum("ij,jxyz->ixyz", r, case["ddf"][0].numpy()), axis=0)
                brain_fov = fov & case["fixed_label"].any(-1)
                ml, fl = case["moving_label"] > 0, case["fixed_label"] > 0
                baseline_pairs.append(
                    {
                        "case": name,
                        "no_registration": {
                            "tre_mm": round(float(before.mean()), 4),
                            "tre_max_mm": round(float(before.max()), 4),
                            "dice_gm_fov": round(mf.binary_dice(ml[..., 0] & fov, fl[..., 0] & fov), 4),
                            "dice_wm_fov": round(mf.binary_dice(ml[..., 1] & fov, fl[..., 1] & fov), 4),
                            "mean_shift_mm_in_fov_brain": round(float(mm[brain_fov].mean()), 4),
                            "max_shift_mm": round(float(mm.max()), 4),
                        },
                        "true_ddf": {
                            "tre_mm": round(float(after.mean()), 4),
                            "tre_max_mm": round(float(after.max()), 4),
                        },
                        "n_landmarks": int(len(f)),
                    }
                )
            cases_info[split].append({"file": f"{name}.nii.gz", **case["info"]})
            say(f"  {split}/{name}: {case['info']}")
    summary = mf.write_test_pairs(out / "test", pairs, baseline_pairs, ("no_registration", "true_ddf"), BASELINE)
    mf.copy_example(out / "test", pairs[0], ("moving", "fixed", "moving_landmarks", "fixed_landmarks"), out / "example")
    manifest = {
        **mni.template_manifest(
            "bundles/paired_mrus_brain/scripts/make_demo_data.py", src_hashes, p, tgt_affine, margins
        ),
        "template_landmarks_mm": np.round(landmarks_world, 3).tolist(),
        "cases": cases_info,
    }
    return mf.finish_maker(out, manifest, OUTPUTS, ("numpy", "scipy", "torch", "nibabel"), say, summary)


def check(source: str | None, output: str | Path, verbose: bool = True) -> bool:
    """True when :func:`generate` with the parameters of ``output/manifest.json`` gives every listed file again."""
    return mf.check_source_regeneration(generate, source, output, verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    keys = ("n_train", "n_val", "n_test", "seed_train", "seed_val", "seed_test")
    options = {"shape": "grid size in voxels", "spacing": "voxel size in mm", **dict.fromkeys(keys)}
    source_help = "nilearn wheel, 'nilearn' (installed) or folder with the files"
    default_out = Path(__file__).resolve().parents[1] / "data"
    return mf.source_maker_main(__doc__, default_out, source_help, generate, check, DEFAULTS, options, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
