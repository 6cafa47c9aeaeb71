"""Deterministic demo data for the ``unpaired_mr_brain`` bundle, made from the real MNI ICBM152 2009a template.

What is real: the MNI ICBM152 2009a symmetric T1 template and its grey/white-matter probability maps (a population
average of 152 adults, shipped inside the nilearn wheel). What is synthetic: every "subject" is that one template under
an independent random smooth diffeomorphic deformation plus intensity changes (bias field, gamma, Rician noise); the
subjects are NOT different people. See ``bundles/unpaired_mr_brain/docs/data.md``.

Usage (from the repository root)::

    pip download --no-deps nilearn -d downloads/nl   # or: pip install nilearn (optional, used by this script only)
    python bundles/unpaired_mr_brain/scripts/make_demo_data.py --source downloads/nl/nilearn-*.whl \\
        --output bundles/unpaired_mr_brain/data
    python bundles/unpaired_mr_brain/scripts/make_demo_data.py --source downloads/nl/nilearn-*.whl \\
        --output bundles/unpaired_mr_brain/data --check      # regenerate in a temp dir, compare sha256

``--source`` is a nilearn wheel, the word ``nilearn`` (the installed package), or a folder holding the three files.

Output layout (DeepReg "unpaired" layout; DDF convention in ``docs/conventions.md``)::

    data/{train,val,test}/images/subject_XXX.nii.gz   uint8 (X, Y, Z), min-max scaled to 0-255
    data/{train,val,test}/labels/subject_XXX.nii.gz   uint8 one-hot (X, Y, Z, 2), channels [GM, WM]
    data/test/pairs.json                              test pairs: moving, fixed, labels, true DDF
    data/test/true_ddf/pair_XX.nii.gz                 int16 (X, Y, Z, 3), scl_slope 0.05: VOXEL DDF (our convention,
                                                      pull, channel k = array axis k), NOT an ITK displacement field
    data/test/baseline.json                           "no registration" Dice and displacement, true-DDF ceiling
    data/example/{moving,fixed,moving_label,fixed_label}.nii.gz   = test pair 0
    data/manifest.json                                sha256 of every file + generator parameters
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_reg_ext import compose_ddf, ddf_voxel_to_mm, dvf_to_ddf, jacobian_determinant, warp_image
from monai_reg_ext.demo import manifest as mf
from monai_reg_ext.demo import mni_template as mni
from monai_reg_ext.demo.deformation import coarse_random_field, random_velocity, scaled_velocity_ddf
from monai_reg_ext.demo.mni_template import MNI_FILES, target_grid

__all__ = [
    "DEFAULTS",
    "SOURCE_FILES",
    "load_source",
    "target_grid",
    "random_velocity",
    "subject_deformation",
    "generate",
    "check",
    "main",
]

#: The three files read from nilearn (``nilearn/datasets/data/``).
SOURCE_FILES = MNI_FILES

#: The generated top-level folders of ``data`` (``manifest.json`` lists their files).
OUTPUTS = ("train", "val", "test", "example")

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "shape": [64, 80, 64],  # voxels, divisible by 8
    "spacing": 2.5,  # mm, isotropic
    **mf.split_parameters((16, 4, 4), (1000, 2000, 3000)),  # subject k of a split uses seed = seed_<split> + k
    "max_displacement": 3.0,  # voxels: maximum displacement norm of each subject's field (7.5 mm)
    "smoothness": 7.0,  # voxels: Gaussian sigma of the random velocity field (17.5 mm)
    "inverse_iterations": 10,  # fixed-point polishing steps of each inverse
    "bias_max": 0.2,  # log bias field amplitude drawn in [0, bias_max]: factors within exp(+-0.2) = [0.82, 1.22]
    "gamma_range": [0.8, 1.25],  # log-uniform
    "noise_std": 0.02,  # Rician noise sigma, on intensities in [0, 1]
    "ddf_scale": 0.05,  # voxels per int16 step in true_ddf files (scl_slope): 0.125 mm, error <= 0.0625 mm
}

#: The description of the test pairs' ``baseline.json``
BASELINE = (
    "Test pairs (moving -> fixed). no_registration: Dice of the moving vs fixed label, |true displacement| "
    "in mm inside the fixed brain (GM or WM), mean |moving - fixed| of the noise-free intensities [0, 1] in "
    "the brain. true_ddf: the same after warping the moving label (bilinear on bg/GM/WM, argmax) and the "
    "noise-free moving image with the stored true DDF (the ceiling of this protocol)."
)


# ----------------------------------------------------------------------------------------------------------- source
def load_source(source: str | None) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str], str]:
    """Load T1, GM and WM as float64 arrays in [0, 1] (:func:`monai_reg_ext.demo.mni_template.load_mni_template`).

    Returns:
        ``(volumes, affine, sha256 of each source file, description)``; all three must share shape and affine.
    """
    return mni.load_mni_template(source, SOURCE_FILES)


def _sample(
    smoothed: dict[str, np.ndarray], tgt_affine: np.ndarray, src_affine: np.ndarray, shape, ddf: np.ndarray | None
):
    """Sample the (pre-filtered) source at ``x + ddf(x)`` for every target voxel ``x`` (one linear interpolation).

    Returns:
        dict of float64 arrays of ``shape``: ``t1`` and the label probabilities ``bg``, ``gm``, ``wm``.
    """
    out = mni.sample_volumes(smoothed, tgt_affine, src_affine, shape, ddf)
    out["bg"] = np.clip(1.0 - out["gm"] - out["wm"], 0.0, 1.0)  # CSF and outside the brain
    return out


def _one_hot(probs: dict[str, np.ndarray]) -> np.ndarray:
    """Argmax of (background, GM, WM): uint8 one-hot ``(X, Y, Z, 2)`` with channels [GM, WM] (disjoint)."""
    arg = np.argmax(np.stack([probs["bg"], probs["gm"], probs["wm"]]), axis=0)
    return np.stack([arg == 1, arg == 2], axis=-1).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------- deformation
def subject_deformation(shape: Sequence[int], max_displacement: float, smoothness: float, seed: int, iterations: int):
    """Diffeomorphic subject DDF ``d`` (max norm ``max_displacement`` voxels) and its inverse.

    ``d = dvf_to_ddf(s * v)`` of :func:`monai_reg_ext.demo.deformation.scaled_velocity_ddf` (``max |d| =
    max_displacement``). Inverse: ``dvf_to_ddf(-s * v)`` polished by ``iterations`` fixed-point steps of
    ``inv(x) = -d(x + inv(x))``, i.e. ``compose_ddf(first=d, second=inv) ~= 0`` and
    ``warp_image(warp_image(img, d), inv) ~= img``.

    Returns:
        ``(d, inv)``, each ``(1, 3, *shape)`` float64 in voxels.
    """
    ddf, velocity = scaled_velocity_ddf(shape, max_displacement, smoothness, seed)
    inv = dvf_to_ddf(-velocity)
    for _ in range(iterations):
        inv = -warp_image(ddf, inv, mode="bilinear", padding_mode="border")
    return ddf, inv


def _bias_field(rng: np.random.Generator, shape, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(a * b)``, ``b`` = trilinear upsampling of a 4x4x4 normal grid, max |b| = 1."""
    b = coarse_random_field(rng, shape)
    return np.exp(amplitude * b / max(np.abs(b).max(), 1e-12))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.round((x - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)


def _make_subject(seed: int, smoothed, tgt_affine, src_affine, p: dict) -> dict:
    shape = tuple(p["shape"])
    ddf, inv = subject_deformation(shape, p["max_displacement"], p["smoothness"], seed, p["inverse_iterations"])
    sampled = _sample(smoothed, tgt_affine, src_affine, shape, ddf[0].numpy())
    clean = sampled["t1"]
    rng = np.random.default_rng([seed, 7])
    lo_g, hi_g = p["gamma_range"]
    gamma = float(np.exp(rng.uniform(np.log(lo_g), np.log(hi_g))))
    amplitude = float(rng.uniform(0.0, p["bias_max"]))
    bias = _bias_field(rng, shape, amplitude)
    img = np.clip(clean, 0.0, 1.0) ** gamma * bias
    sigma = p["noise_std"]
    img = np.sqrt((img + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
    img = img * (clean > 0.01)  # skull-stripped like the template: zero outside the (deformed) brain
    label = _one_hot(sampled)
    brain = torch.from_numpy(label.any(-1))
    res_fwd = compose_ddf(first=ddf, second=inv).norm(dim=1)[0][brain]  # the one the pair DDFs rely on
    res_bwd = compose_ddf(first=inv, second=ddf).norm(dim=1)[0][brain]
    jac = jacobian_determinant(ddf)
    return {
        "image": _to_uint8(img),
        "label": label,
        "clean": clean,
        "ddf": ddf,
        "inverse": inv,
        "info": {
            "seed": seed,
            "gamma": round(gamma, 4),
            "bias_log_amplitude": round(amplitude, 4),
            "mean_disp_vox_in_brain": round(float(ddf.norm(dim=1)[0][brain].mean()), 4),
            "jacobian_min": round(float(jac.min()), 4),
            "inverse_residual_max_vox_in_brain": [round(float(res_fwd.max()), 5), round(float(res_bwd.max()), 5)],
        },
    }


# ------------------------------------------------------------------------------------------------------------ output
def _warp_label(label: np.ndarray, ddf: torch.Tensor) -> np.ndarray:
    """Warp a one-hot (X, Y, Z, 2) label: bilinear on (bg, GM, WM), then argmax (stays one-hot)."""
    onehot = torch.from_numpy(label.astype(np.float64)).permute(3, 0, 1, 2)
    full = torch.cat([1.0 - onehot.sum(0, keepdim=True), onehot])[None]
    arg = warp_image(full, ddf.to(torch.float64), mode="bilinear", padding_mode="border")[0].argmax(0).numpy()
    return np.stack([arg == 1, arg == 2], axis=-1).astype(np.uint8)


def generate(source: str | None, output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the demo data set into ``output`` (cleared first) and return the manifest dict.

    Args:
        source: nilearn wheel path, ``"nilearn"``/None (installed package) or a folder with the three files.
        output: destination folder (its ``train``, ``val``, ``test``, ``example`` and ``manifest.json`` are replaced).
        params: overrides of :data:`DEFAULTS`.
        verbose: print progress and the baseline.
    """
    p, say = mf.start_split_maker(DEFAULTS, params, {"train": 1, "val": 0, "test": 2}, verbose)

    volumes, src_affine, src_hashes, where = load_source(source)
    say(f"source: {where}, shape {volumes['t1'].shape}")
    shape = tuple(p["shape"])
    tgt_affine, margins = target_grid(volumes, src_affine, shape, float(p["spacing"]))
    say(f"grid {shape} at {p['spacing']} mm, origin {tgt_affine[:3, 3].tolist()} mm, brain margins {margins}")
    smoothed = mni.antialias(volumes, src_affine, float(p["spacing"]))

    out = Path(output)
    mf.clear_outputs(out, (*OUTPUTS, "manifest.json"))

    subjects_info, test_subjects = {}, []
    for split in ("train", "val", "test"):
        subjects_info[split] = []
        for k in range(int(p[f"n_{split}"])):
            subj = _make_subject(int(p[f"seed_{split}"]) + k, smoothed, tgt_affine, src_affine, p)
            name = f"subject_{k:03d}.nii.gz"
            mf.save_nifti_gz(
                mf.nifti_image(subj["image"], tgt_affine, "synthetic subject: MNI152 2009a T1, random warp"),
                out / split / "images" / name,
            )
            mf.save_nifti_gz(
                mf.nifti_image(subj["label"], tgt_affine, "one-hot labels [GM, WM] (last axis)"),
                out / split / "labels" / name,
            )
            subjects_info[split].append({"file": name, **subj["info"]})
            if split == "test":
                test_subjects.append(subj)
            say(f"  {split}/{name}: {subj['info']}")

    # test pairs: subject k -> subject k+1 (cyclic)
    n = len(test_subjects)
    pair_list = [(k, (k + 1) % n) for k in range(n)] if n > 2 else [(0, 1), (1, 0)]
    pairs, baseline_pairs = [], []
    r = torch.from_numpy(tgt_affine)
    for idx, (i, j) in enumerate(pair_list):
        mov, fix = test_subjects[i], test_subjects[j]
        true = compose_ddf(first=mov["inverse"], second=fix["ddf"])  # (1, 3, *S) voxels on the fixed grid
        q = torch.round(true / p["ddf_scale"])
        if float(q.abs().max()) > 32767:
            raise ValueError(f"pair {idx}: displacement {float(true.abs().max())} voxels overflows int16 at ddf_scale.")
        ddf_img = mf.nifti_image(
            q[0].permute(1, 2, 3, 0).numpy().astype(np.int16), tgt_affine, "voxel DDF, pull, ch k=axis k"
        )
        ddf_img.header.set_slope_inter(p["ddf_scale"], 0.0)
        ddf_name = f"true_ddf/pair_{idx:02d}.nii.gz"
        mf.save_nifti_gz(ddf_img, out / "test" / ddf_name)
        stored = q * p["ddf_scale"]
        entry = {
            "moving": f"images/subject_{i:03d}.nii.gz",
            "fixed": f"images/subject_{j:03d}.nii.gz",
            "moving_label": f"labels/subject_{i:03d}.nii.gz",
            "fixed_label": f"labels/subject_{j:03d}.nii.gz",
            "ddf": ddf_name,
        }
        pairs.append(entry)

        brain = fix["label"].any(-1)
        mm = ddf_voxel_to_mm(stored, r)[0].norm(dim=0).numpy()
        warped_label = _warp_label(mov["label"], stored)
        warped_clean = warp_image(torch.from_numpy(mov["clean"])[None, None], stored)[0, 0].numpy()
        baseline_pairs.append(
            {
                "pair": idx,
                **{k: entry[k] for k in ("moving", "fixed", "ddf")},
                "no_registration": {
                    "dice_gm": round(mf.binary_dice(mov["label"][..., 0] > 0, fix["label"][..., 0] > 0), 4),
                    "dice_wm": round(mf.binary_dice(mov["label"][..., 1] > 0, fix["label"][..., 1] > 0), 4),
                    "mean_disp_mm_in_brain": round(float(mm[brain].mean()), 4),
                    "max_disp_mm_in_brain": round(float(mm[brain].max()), 4),
                    "clean_image_mae": round(float(np.abs(mov["clean"] - fix["clean"])[brain].mean()), 4),
                    "true_ddf_jacobian_min": round(float(jacobian_determinant(stored).min()), 4),
                },
                "true_ddf": {
                    "dice_gm": round(mf.binary_dice(warped_label[..., 0] > 0, fix["label"][..., 0] > 0), 4),
                    "dice_wm": round(mf.binary_dice(warped_label[..., 1] > 0, fix["label"][..., 1] > 0), 4),
                    "clean_image_mae": round(float(np.abs(warped_clean - fix["clean"])[brain].mean()), 4),
                },
            }
        )
    summary = mf.write_test_pairs(out / "test", pairs, baseline_pairs, ("no_registration", "true_ddf"), BASELINE)
    mf.copy_example(out / "test", pairs[0], ("moving", "fixed", "moving_label", "fixed_label"), out / "example")
    manifest = {
        **mni.template_manifest(
            "bundles/unpaired_mr_brain/scripts/make_demo_data.py", src_hashes, p, tgt_affine, margins
        ),
        "subjects": subjects_info,
    }
    return mf.finish_maker(out, manifest, OUTPUTS, ("numpy", "scipy", "torch", "nibabel"), say, summary)


def check(source: str | None, output: str | Path, verbose: bool = True) -> bool:
    """Regenerate with the parameters of ``output/manifest.json`` and compare the sha256s file by file."""
    return mf.check_source_regeneration(generate, source, output, verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    return mf.source_maker_main(
        __doc__,
        Path(__file__).resolve().parents[1] / "data",
        "nilearn wheel, 'nilearn' (installed) or folder with the 3 files",
        generate,
        check,
        DEFAULTS,
        {**dict.fromkeys(DEFAULTS), "shape": "grid size in voxels"},
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
