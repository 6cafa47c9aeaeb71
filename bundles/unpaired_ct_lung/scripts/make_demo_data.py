"""Deterministic demo data for the ``unpaired_ct_lung`` bundle: real inter-subject chest CT pairs.

What is real: three chest CTs of three different patients shipped inside registry packages (TotalSegmentator 2.18.0
source tarball: ``tests/reference_files/aorta_report/example_ct.nii.gz``, a contrast chest CT; pyradiomics 3.1.0
source: ``data/lung1_image.nrrd`` and ``data/lung2_image.nrrd``); the test pairs register them to each other. What is
synthetic: the extra training and validation images, which are the two training patients' CTs under random smooth
deformations (``monai_reg_ext.demo.chest_ct.smooth_random_field``, built on ``random_smooth_ddf``), so they are not
new patients. Lung masks come from thresholding (HU < -400, largest components). See
``bundles/unpaired_ct_lung/docs/data.md``.

Usage: as :mod:`monai_reg_ext.demo.chest_ct_demo` says, with ``<bundle>`` = ``unpaired_ct_lung``.

Output layout (DeepReg "unpaired" layout)::

    data/{train,val,test}/images/subject_XXX.nii.gz   uint8 (64, 56, 64) on one common grid, HU = -1000 + 1200 / 255 q
    data/{train,val,test}/labels/subject_XXX.nii.gz   uint8 lung mask
    data/test/pairs.json                              the real inter-subject test pairs (each involves the held-out CT)
    data/test/baseline.json                           "no registration" Dice of the test pairs
    data/example/{moving,fixed,moving_label,fixed_label}.nii.gz   = test pair 0
    data/manifest.json                                sha256 of every file + generator parameters
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from monai_reg_ext.demo import chest_ct
from monai_reg_ext.demo import chest_ct_demo as lung_demo
from monai_reg_ext.demo.chest_ct_demo import HU_MAX, HU_MIN
from monai_reg_ext.demo.manifest import binary_dice, copy_example, save_nifti_gz, write_json

__all__ = ["DEFAULTS", "HU_MIN", "HU_MAX", "generate", "check", "main"]

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "shape": [64, 56, 64],  # voxels (R-L, A-P, S-I), divisible by 8
    "spacing": 4.5,  # mm, isotropic
    "train_subjects": ["ts_chest", "pyrad_lung1"],
    "test_subjects": ["pyrad_lung2"],  # held out of training and validation
    "n_train_copies": 7,  # deformed copies per training subject (plus the undeformed CT)
    "n_val_copies": 2,  # deformed copies per training subject for validation (other seeds)
    "seed": 7000,
    "max_displacement_mm": 13.5,  # maximum norm of each random smooth deformation (3 voxels)
    "smoothness": 8.0,  # voxels: Gaussian sigma of the random velocity field
}


def _subject(hu, affine, centre, common, p: dict, seed: int | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The CT on the common grid (lung centre at the grid centre), optionally under a random smooth deformation."""
    shape = tuple(p["shape"])
    grid = chest_ct.grid_affine(centre, shape, p["spacing"])
    ddf, info = None, {}
    if seed is not None:
        ddf = chest_ct.smooth_random_field(shape, p["max_displacement_mm"] / p["spacing"], p["smoothness"], seed)
        info = {
            "seed": seed,
            "mean_displacement_mm": round(float(np.linalg.norm(ddf, axis=0).mean() * p["spacing"]), 2),
        }
    img = np.clip(chest_ct.resample(hu, affine, grid, shape, ddf=ddf), HU_MIN, HU_MAX)
    return img, chest_ct.lung_mask(img), info


def generate(totalsegmentator: str, pyradiomics: str, output: str | Path, params: dict | None = None, verbose=True):
    """Write the demo data set to ``output``; returns the manifest (also written as ``output/manifest.json``)."""
    p, cts, source_sha = lung_demo.start_chest_ct_maker(DEFAULTS, params, totalsegmentator, pyradiomics)
    out = Path(output)
    common = chest_ct.grid_affine([0.0, 0.0, 0.0], p["shape"], p["spacing"])
    centres = {name: chest_ct.lung_centre(hu, aff)[0] for name, (hu, aff) in cts.items()}
    manifest: dict = {
        "parameters": p,
        "sources": source_sha,
        "common_affine": common.tolist(),
        "lung_centres_mm": {k: np.round(v, 2).tolist() for k, v in centres.items()},
        "images": {},
        "files": {},
    }

    def write(split: str, idx: int, subject: str, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        hu, aff = cts[subject]
        img, lungs, info = _subject(hu, aff, centres[subject], common, p, seed)
        name = f"subject_{idx:03d}.nii.gz"
        save_nifti_gz(lung_demo.ct_uint8_image(img, common)[0], out / split / "images" / name)
        save_nifti_gz(lung_demo.mask_image(lungs, common, "lung mask (HU < -400)"), out / split / "labels" / name)
        manifest["images"][f"{split}/{name}"] = {"patient": subject, "deformed": seed is not None, **info}
        if verbose:
            print(f"{split}/{name}: {subject} {info}", flush=True)
        return img, lungs

    idx = 0
    for c in range(p["n_train_copies"] + 1):  # interleave patients: consecutive images are different patients
        for s_i, subject in enumerate(p["train_subjects"]):
            write("train", idx, subject, None if c == 0 else p["seed"] + 100 * s_i + c)
            idx += 1
    idx = 0
    for c in range(p["n_val_copies"]):
        for s_i, subject in enumerate(p["train_subjects"]):
            write("val", idx, subject, p["seed"] + 1000 + 100 * s_i + c)
            idx += 1
    test_subjects = list(p["test_subjects"]) + list(p["train_subjects"])
    real = {s: write("test", i, s, None) for i, s in enumerate(test_subjects)}
    pairs, baseline = [], []
    for held in p["test_subjects"]:
        for other in p["train_subjects"]:
            for mov, fix in ((held, other), (other, held)):
                i, j = test_subjects.index(mov), test_subjects.index(fix)
                pairs.append(
                    {
                        "moving": f"images/subject_{i:03d}.nii.gz",
                        "fixed": f"images/subject_{j:03d}.nii.gz",
                        "moving_label": f"labels/subject_{i:03d}.nii.gz",
                        "fixed_label": f"labels/subject_{j:03d}.nii.gz",
                        "subject": f"{mov}->{fix}",
                    }
                )
                baseline.append(
                    {"pair": f"{mov}->{fix}", "dice_before": round(binary_dice(real[mov][1], real[fix][1]), 4)}
                )
    write_json(out / "test" / "pairs.json", pairs)
    d = [b["dice_before"] for b in baseline]
    dice_before = [round(float(np.mean(d)), 4), round(float(np.std(d)), 4)]
    write_json(out / "test" / "baseline.json", {"pairs": baseline, "dice_before_mean_std": dice_before})
    copy_example(out / "test", pairs[0], ("moving", "fixed", "moving_label", "fixed_label"), out / "example")
    return lung_demo.finish_chest_ct_maker(out, manifest)


check, main = lung_demo.chest_ct_entry_points(__doc__, Path(__file__).resolve().parents[1] / "data", generate)


if __name__ == "__main__":
    sys.exit(main())
