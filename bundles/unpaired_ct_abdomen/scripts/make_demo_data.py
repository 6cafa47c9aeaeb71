"""Deterministic demo data for the ``unpaired_ct_abdomen`` bundle, made from two REAL abdominal CTs.

What is real: two abdominal CTs of two different patients shipped in the TotalSegmentator 2.18.0 source tarball
(Apache-2.0; image provenance not stated by the package): ``example_ct.nii.gz`` (3 mm, lower chest to pelvis) and the
DICOM series ``example_ct_dicom/`` (20 slices of 2 mm = 40 mm, upper abdomen), together with their organ label maps
``example_seg_fast_force_split.nii.gz`` and ``example_seg_dicom.nii.gz``. These label maps are the OUTPUT OF A
SEGMENTATION MODEL (TotalSegmentator), not manual delineations. What is synthetic: every training, validation and test
"subject" except ``test/subject_000`` is the 3 mm CT under an independent random smooth diffeomorphic deformation plus
CT intensity changes (HU scale/offset, smooth additive field, noise); they are NOT different people. See
``bundles/unpaired_ct_abdomen/docs/data.md``.

Usage (from the repository root)::

    pip download --no-deps --no-binary :all: TotalSegmentator==2.18.0 -d downloads/ts
    python bundles/unpaired_ct_abdomen/scripts/make_demo_data.py \\
        --source downloads/ts/totalsegmentator-2.18.0.tar.gz --output bundles/unpaired_ct_abdomen/data
    python bundles/unpaired_ct_abdomen/scripts/make_demo_data.py \\
        --source downloads/ts/totalsegmentator-2.18.0.tar.gz --output bundles/unpaired_ct_abdomen/data --check

``--source`` is the sdist tarball or its unpacked folder. The DICOM series is read with MONAI's ``ITKReader`` (itk).

Output layout (DeepReg "unpaired" layout; conventions in ``docs/conventions.md``)::

    data/{train,val,test}/images/subject_XXX.nii.gz   uint8 (X, Y, Z), CT window [-200, 300] HU mapped to 0-255
    data/{train,val,test}/labels/subject_XXX.nii.gz   uint8 one-hot (X, Y, Z, 4): liver, spleen, stomach, pancreas
    data/test/subject_000                             the real 3 mm CT itself (no deformation, no intensity change)
    data/test/pairs.json                              every ordered pair of the test subjects (12 pairs)
    data/slab/{moving,fixed}[_label].nii.gz           restricted field of view (72, 56, 8): moving = 3 mm CT patient,
                                                      fixed = DICOM patient (a second, independent real subject)
    data/slab/pairs.json                              that one pair
    data/example/{moving,fixed,moving_label,fixed_label}.nii.gz   = test pair 0
    data/manifest.json                                sha256 of every file + generator parameters and statistics
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import jacobian_determinant
from monai_reg_ext.demo import manifest as mf
from monai_reg_ext.demo.deformation import coarse_random_field, random_velocity, scaled_velocity_ddf

__all__ = [
    "DEFAULTS",
    "ORGANS",
    "SOURCE_FILES",
    "load_source",
    "organ_ids",
    "main_grid",
    "random_velocity",
    "generate",
    "check",
    "main",
]

#: Files read from the TotalSegmentator sdist (paths inside its top folder).
SOURCE_FILES = {
    "ct": "tests/reference_files/example_ct.nii.gz",
    "seg": "tests/reference_files/example_seg_fast_force_split.nii.gz",
    "dicom_seg": "tests/reference_files/example_seg_dicom.nii.gz",
    "class_map": "totalsegmentator/map_to_binary.py",
}
DICOM_DIR = "tests/reference_files/example_ct_dicom"

#: The common label set: organs present in BOTH real scans (the DICOM slab has no kidney and no gallbladder).
#: Names as in TotalSegmentator's ``class_map["total"]``; the ids are read from ``map_to_binary.py``.
ORGANS = ("liver", "spleen", "stomach", "pancreas")

#: The generated top-level folders of ``data`` (``manifest.json`` lists their files).
OUTPUTS = ("train", "val", "test", "slab", "example")

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS = {
    "shape": [72, 56, 40],  # voxels of the main grid, divisible by 8 (288 x 224 x 160 mm)
    "spacing": 4.0,  # mm, isotropic
    "window": [-200.0, 300.0],  # HU mapped linearly to 0..255 (soft-tissue window), clipped outside
    "n_train": 10,
    "n_val": 4,
    "n_test": 4,  # test subject 000 is the undeformed real scan
    "seed_train": 1000,
    "seed_val": 2000,
    "seed_test": 3000,
    "max_displacement": 4.0,  # voxels: max norm of each subject's field (16 mm)
    "smoothness": 6.0,  # voxels: Gaussian sigma of the random velocity (24 mm)
    "hu_scale_range": [0.92, 1.08],  # multiplicative HU change (contrast timing / calibration)
    "hu_offset_max": 15.0,  # HU: additive offset drawn in [-max, max]
    "bias_max": 20.0,  # HU: amplitude of a smooth additive field
    "noise_max": 12.0,  # HU: Gaussian noise sigma drawn in [0, max]
    "slab_slices": 8,  # slices of 4 mm in the restricted-field-of-view pair (the DICOM series is 40 mm thick)
}


# ----------------------------------------------------------------------------------------------------------- source
def _source_bytes(source: str | Path) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    """Raw bytes of :data:`SOURCE_FILES` and of the DICOM files, from the sdist tarball or its unpacked folder."""
    path = Path(source)
    wanted = list(SOURCE_FILES.values())
    if path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            members = {m.name.split("/", 1)[1]: m for m in tf.getmembers() if m.isfile() and "/" in m.name}
            missing = [w for w in wanted if w not in members]
            dicoms = sorted(k for k in members if k.startswith(DICOM_DIR + "/"))
            if missing or not dicoms:
                raise ValueError(f"--source: tarball {path} lacks {missing or [DICOM_DIR + '/*']}.")
            files = {k: tf.extractfile(members[v]).read() for k, v in SOURCE_FILES.items()}
            dcm = {Path(k).name: tf.extractfile(members[k]).read() for k in dicoms}
        return files, dcm, f"tarball {path.name}"
    if path.is_dir():
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            if all((folder / w).is_file() for w in wanted) and (folder / DICOM_DIR).is_dir():
                files = {k: (folder / v).read_bytes() for k, v in SOURCE_FILES.items()}
                dcm = {p.name: p.read_bytes() for p in sorted((folder / DICOM_DIR).iterdir()) if p.is_file()}
                return files, dcm, f"folder {folder.name}"
    raise ValueError(
        f"--source: expected the TotalSegmentator 2.18.0 sdist (.tar.gz) or its unpacked folder holding {wanted} "
        f"and {DICOM_DIR}/, got {str(source)!r}."
    )


def organ_ids(class_map_py: str, names: Sequence[str] = ORGANS) -> dict[str, int]:
    """Label value of each organ name in ``class_map["total"]`` of TotalSegmentator's ``map_to_binary.py`` source.

    Raises:
        ValueError: if the file has no literal ``class_map`` with a ``"total"`` entry, or a name is absent.
    """
    for node in ast.parse(class_map_py).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "class_map" for t in node.targets):
            total = ast.literal_eval(node.value)["total"]
            break
    else:
        raise ValueError("map_to_binary.py: no literal `class_map = {...}` found.")
    by_name = {v: int(k) for k, v in total.items()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"map_to_binary.py: class_map['total'] has no {missing}.")
    return {n: by_name[n] for n in names}


def _readnifti_image(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    img = nib.Nifti1Image.from_stream(io.BytesIO(gzip.decompress(data)))
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def _read_dicom(files: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The DICOM series as HU ``(X, Y, Z)`` float64 and its RAS affine (MONAI ``ITKReader``)."""
    from monai.transforms import LoadImage

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        img, meta = LoadImage(reader="ITKReader", image_only=False)(tmp)
    return np.asarray(img, dtype=np.float64), np.asarray(meta["affine"], dtype=np.float64)


def load_source(source: str | Path) -> dict:
    """Read the two real CTs (HU) with their model-made label maps and affines, the organ ids and file hashes.

    Returns:
        dict with ``ct``, ``ct_seg``, ``ct_affine`` (3 mm scan), ``dcm``, ``dcm_seg``, ``dcm_affine``,
        ``dcm_seg_affine`` (DICOM series), ``ids`` (organ -> label value), ``sha256`` and ``where``.

    Raises:
        ValueError: shapes of an image and its label map differ, or a chosen organ is absent from a scan.
    """
    files, dcm_files, where = _source_bytes(source)
    ct, ct_affine = _readnifti_image(files["ct"])
    seg, seg_affine = _readnifti_image(files["seg"])
    dseg, dseg_affine = _readnifti_image(files["dicom_seg"])
    dcm, dcm_affine = _read_dicom(dcm_files)
    if ct.shape != seg.shape or not np.allclose(ct_affine, seg_affine, atol=1e-3):
        raise ValueError(f"{SOURCE_FILES['seg']}: grid {seg.shape} differs from {SOURCE_FILES['ct']} {ct.shape}.")
    if dcm.shape != dseg.shape:
        raise ValueError(f"{SOURCE_FILES['dicom_seg']}: shape {dseg.shape} differs from the DICOM series {dcm.shape}.")
    ids = organ_ids(files["class_map"].decode())
    for name, lab in (("example_ct", seg), ("example_ct_dicom", dseg)):
        absent = [o for o, v in ids.items() if not np.any(lab == v)]
        if absent:
            raise ValueError(f"{name}: organs {absent} are absent from its label map; they cannot be in the label set.")
    sha = {SOURCE_FILES[k]: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    sha[DICOM_DIR] = hashlib.sha256(b"".join(dcm_files[k] for k in sorted(dcm_files))).hexdigest()
    return {
        "ct": ct.astype(np.float64),
        "ct_seg": seg,
        "ct_affine": ct_affine,
        "dcm": dcm,
        "dcm_seg": dseg,
        "dcm_affine": dcm_affine,
        "dcm_seg_affine": dseg_affine,
        "ids": ids,
        "sha256": sha,
        "where": where,
    }


# ------------------------------------------------------------------------------------------------------------- grid
def _organ_world_bbox(seg: np.ndarray, affine: np.ndarray, ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(np.isin(seg, list(ids.values()))).astype(np.float64)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return world.min(0), world.max(0)


def _grid_affine(origin: np.ndarray, spacing: float) -> np.ndarray:
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.round(origin, 3)
    return affine


def main_grid(seg: np.ndarray, affine: np.ndarray, ids: dict[str, int], shape: Sequence[int], spacing: float):
    """RAS affine of the main grid: centred on the organs in x and y; its top slice is the top of the organs or scan.

    Raises:
        ValueError: if the organs do not fit in ``shape`` voxels of ``spacing`` mm.
    """
    lo, hi = _organ_world_bbox(seg, affine, ids)
    extent = spacing * (np.asarray(shape, dtype=np.float64) - 1)
    if np.any(hi - lo > extent + 1e-6):
        raise ValueError(f"the organs ({np.round(hi - lo, 1).tolist()} mm) do not fit in {list(shape)} x {spacing} mm.")
    origin = (lo + hi) / 2 - extent / 2
    origin[2] = hi[2] - extent[2]  # organs reach the top of the scan: keep the whole upper abdomen
    return _grid_affine(origin, spacing)


def _one_hot_probs(seg: np.ndarray, ids: dict[str, int]) -> np.ndarray:
    """``(1 + L, *S)`` float64: background (everything else) then one channel per organ."""
    organs = np.stack([seg == v for v in ids.values()]).astype(np.float64)
    return np.concatenate([1.0 - organs.sum(0, keepdims=True), organs])


def _prefilter(volume: np.ndarray, src_affine: np.ndarray, spacing: float) -> np.ndarray:
    """Gaussian anti-aliasing, sigma = (factor - 1) / 2 source voxels per axis (factor = target / source spacing)."""
    sigma = np.maximum((spacing / np.linalg.norm(src_affine[:3, :3], axis=0) - 1.0) / 2.0, 0.0)
    return ndimage.gaussian_filter(volume, sigma=sigma, mode="nearest")


def _sample(volumes: dict[str, np.ndarray], tgt_affine, src_affine, shape, ddf: np.ndarray | None = None) -> dict:
    """Sample (pre-filtered) source volumes at ``x + ddf(x)`` of every target voxel ``x`` (linear, edge replicate).

    ``volumes`` values are ``(*S_src)`` or ``(C, *S_src)``; returns the same channel layout on ``shape``.
    """
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    if ddf is not None:
        grid = grid + ddf
    m = np.linalg.inv(src_affine) @ tgt_affine
    coords = m[:3, :3] @ grid.reshape(3, -1) + m[:3, 3:4]
    out = {}
    for k, v in volumes.items():
        chans = v if v.ndim == 4 else v[None]
        res = np.stack([ndimage.map_coordinates(c, coords, order=1, mode="nearest").reshape(shape) for c in chans])
        out[k] = res if v.ndim == 4 else res[0]
    return out


def _labels_from_probs(probs: np.ndarray) -> np.ndarray:
    """Argmax of (background, organs...): uint8 one-hot ``(*S, L)`` without background, disjoint channels."""
    arg = probs.argmax(0)
    return np.stack([arg == k for k in range(1, probs.shape[0])], axis=-1).astype(np.uint8)


def _to_uint8(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    lo, hi = float(window[0]), float(window[1])
    return np.round(np.clip((hu - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------- deformation
def subject_ddf(shape: Sequence[int], max_displacement: float, smoothness: float, seed: int) -> torch.Tensor:
    """Diffeomorphic DDF ``(1, 3, *shape)`` float64 in voxels: ``dvf_to_ddf(s * v)``, max norm ``max_displacement``
    (:func:`monai_reg_ext.demo.deformation.scaled_velocity_ddf`)."""
    return scaled_velocity_ddf(shape, max_displacement, smoothness, seed)[0]


def _smooth_field(rng: np.random.Generator, shape) -> np.ndarray:
    """Smooth field with max |b| = 1: trilinear upsampling of a 4x4x4 normal grid, zero mean."""
    b = coarse_random_field(rng, shape)
    return b / max(np.abs(b).max(), 1e-12)


def _make_subject(seed: int | None, src: dict, tgt_affine: np.ndarray, p: dict) -> dict:
    """One subject on the main grid: the real scan under a random warp and intensity change (seed None: unchanged)."""
    shape = tuple(p["shape"])
    ddf = None if seed is None else subject_deformation_np(shape, p, seed)
    sampled = _sample({"hu": src["ct_pre"], "probs": src["probs_pre"]}, tgt_affine, src["ct_affine"], shape, ddf)
    hu = sampled["hu"]
    info = {"seed": seed}
    if seed is not None:
        rng = np.random.default_rng([seed, 7])
        scale = float(rng.uniform(*p["hu_scale_range"]))
        offset = float(rng.uniform(-p["hu_offset_max"], p["hu_offset_max"]))
        bias = float(rng.uniform(0.0, p["bias_max"]))
        noise = float(rng.uniform(0.0, p["noise_max"]))
        hu = scale * hu + offset + bias * _smooth_field(rng, shape) + noise * rng.standard_normal(shape)
        jac = jacobian_determinant(torch.from_numpy(ddf)[None])
        info.update(
            hu_scale=round(scale, 4),
            hu_offset=round(offset, 2),
            bias_hu=round(bias, 2),
            noise_hu=round(noise, 2),
            max_disp_mm=round(float(np.linalg.norm(ddf, axis=0).max() * p["spacing"]), 2),
            jacobian_min=round(float(jac.min()), 4),
        )
    label = _labels_from_probs(sampled["probs"])
    info["organ_voxels"] = {o: int(label[..., k].sum()) for k, o in enumerate(ORGANS)}
    return {"image": _to_uint8(hu, p["window"]), "label": label, "info": info}


def subject_deformation_np(shape, p: dict, seed: int) -> np.ndarray:
    """:func:`subject_ddf` as a ``(3, *shape)`` numpy array (voxels of the main grid)."""
    return subject_ddf(shape, p["max_displacement"], p["smoothness"], seed)[0].numpy()


# ------------------------------------------------------------------------------------------------------------- slab
def _slab_pair(src: dict, p: dict) -> tuple[dict, dict, dict]:
    """Restricted-field-of-view pair (``shape[:2] + [slab_slices]``, 4 mm): 3 mm CT patient -> DICOM patient.

    Both slabs are centred in x/y on their organs (within the slab); the fixed slab is centred in z on the DICOM
    series; the moving slab's z is the one (searched in 1 mm steps) with the best mean organ Dice against the fixed:
    a translation-only pre-alignment that stands in for the affine pre-registration of Learn2Reg's data.
    """
    spacing = float(p["spacing"])
    shape = (p["shape"][0], p["shape"][1], int(p["slab_slices"]))
    extent = spacing * (np.asarray(shape, dtype=np.float64) - 1)
    ids = src["ids"]
    # fixed: DICOM patient
    d_lo, d_hi = _organ_world_bbox(src["dcm_seg"], src["dcm_seg_affine"], ids)
    nz = src["dcm"].shape[2]
    z0, z1 = sorted(float((src["dcm_affine"] @ np.array([0.0, 0.0, k, 1.0]))[2]) for k in (0, nz - 1))
    origin = (d_lo + d_hi) / 2 - extent / 2
    origin[2] = (z0 + z1) / 2 - extent[2] / 2
    fix_aff = _grid_affine(origin, spacing)
    fixed = _sample({"hu": src["dcm_pre"], "probs": src["dcm_probs_pre"]}, fix_aff, src["dcm_affine"], shape)
    fixed = {"hu": fixed["hu"], "label": _labels_from_probs(fixed["probs"])}
    # moving: 3 mm CT patient, x/y centred on its organs, z searched
    c_lo, c_hi = _organ_world_bbox(src["ct_seg"], src["ct_affine"], ids)
    best = None
    for z in np.arange(c_lo[2], c_hi[2] - extent[2] + 1e-6, 1.0):
        o = (c_lo + c_hi) / 2 - extent / 2
        o[2] = z
        aff = _grid_affine(o, spacing)
        probs = _sample({"probs": src["probs_pre"]}, aff, src["ct_affine"], shape)["probs"]
        lab = _labels_from_probs(probs)
        dices = [
            mf.binary_dice(lab[..., k] > 0, fixed["label"][..., k] > 0, empty=float("nan")) for k in range(len(ids))
        ]
        d = float(np.nanmean(dices))
        if best is None or d > best[0] + 1e-9:
            best = (d, aff)
    mov_aff = best[1]
    moving = _sample({"hu": src["ct_pre"], "probs": src["probs_pre"]}, mov_aff, src["ct_affine"], shape)
    moving = {"hu": moving["hu"], "label": _labels_from_probs(moving["probs"])}
    info = {
        "shape": list(shape),
        "fixed_affine": fix_aff.tolist(),
        "moving_affine": mov_aff.tolist(),
        "prealignment_mean_dice": round(best[0], 4),
        "organ_voxels_fixed": {o: int(fixed["label"][..., k].sum()) for k, o in enumerate(ORGANS)},
        "organ_voxels_moving": {o: int(moving["label"][..., k].sum()) for k, o in enumerate(ORGANS)},
    }
    moving["affine"], fixed["affine"] = mov_aff, fix_aff
    return moving, fixed, info


# ------------------------------------------------------------------------------------------------------------ output
def generate(source: str | Path, output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the demo data set into ``output`` (its generated parts are cleared first); return the manifest dict.

    Args:
        source: the TotalSegmentator 2.18.0 sdist tarball or its unpacked folder.
        output: destination folder (``train``, ``val``, ``test``, ``slab``, ``example``, ``manifest.json`` replaced).
        params: overrides of :data:`DEFAULTS`.
        verbose: print progress.
    """
    p, say = mf.start_split_maker(DEFAULTS, params, {"train": 2, "val": 2, "test": 2}, verbose)

    src = load_source(source)
    say(f"source: {src['where']}; organ ids {src['ids']}")
    spacing = float(p["spacing"])
    src["ct_pre"] = _prefilter(src["ct"], src["ct_affine"], spacing)
    src["probs_pre"] = np.stack(
        [_prefilter(c, src["ct_affine"], spacing) for c in _one_hot_probs(src["ct_seg"], src["ids"])]
    )
    src["dcm_pre"] = _prefilter(src["dcm"], src["dcm_affine"], spacing)
    # the label map's array is the DICOM array flipped along y (its own affine says so): resample it onto the
    # DICOM image's index grid first, so that image and labels share one affine
    dprobs = _one_hot_probs(src["dcm_seg"], src["ids"])
    m = np.linalg.inv(src["dcm_seg_affine"]) @ src["dcm_affine"]
    if not np.allclose(np.abs(m[:3, :3]), np.eye(3), atol=1e-3):
        raise ValueError(f"{SOURCE_FILES['dicom_seg']}: its grid is not a flip of the DICOM series grid.")
    dprobs = _sample({"p": dprobs}, src["dcm_affine"], src["dcm_seg_affine"], src["dcm"].shape)["p"]
    src["dcm_probs_pre"] = np.stack([_prefilter(c, src["dcm_affine"], spacing) for c in dprobs])

    tgt_affine = main_grid(src["ct_seg"], src["ct_affine"], src["ids"], p["shape"], spacing)
    say(f"main grid {p['shape']} at {spacing} mm, origin {tgt_affine[:3, 3].tolist()} mm")

    out = Path(output)
    mf.clear_outputs(out, (*OUTPUTS, "manifest.json"))

    subjects_info = {}
    for split in ("train", "val", "test"):
        subjects_info[split] = []
        for k in range(int(p[f"n_{split}"])):
            seed = None if (split == "test" and k == 0) else int(p[f"seed_{split}"]) + k
            subj = _make_subject(seed, src, tgt_affine, p)
            name = f"subject_{k:03d}.nii.gz"
            what = "real CT (TotalSegmentator example_ct)" if seed is None else "synthetic: real CT, random warp"
            mf.save_nifti_gz(
                mf.nifti_image(subj["image"], tgt_affine, f"{what}; HU window -200..300"), out / split / "images" / name
            )
            mf.save_nifti_gz(
                mf.nifti_image(subj["label"], tgt_affine, "one-hot liver,spleen,stomach,pancreas (model-made)"),
                out / split / "labels" / name,
            )
            subjects_info[split].append({"file": name, **subj["info"]})
            say(f"{split}/{name}: {subj['info']}")

    n = int(p["n_test"])
    pairs = [
        {
            "moving": f"images/subject_{i:03d}.nii.gz",
            "fixed": f"images/subject_{j:03d}.nii.gz",
            "moving_label": f"labels/subject_{i:03d}.nii.gz",
            "fixed_label": f"labels/subject_{j:03d}.nii.gz",
        }
        for i in range(n)
        for j in range(n)
        if i != j
    ]
    mf.write_json(out / "test" / "pairs.json", pairs)

    moving, fixed, slab_info = _slab_pair(src, p)
    for role, s in (("moving", moving), ("fixed", fixed)):
        who = "CT patient A (example_ct)" if role == "moving" else "CT patient B (example_ct_dicom)"
        mf.save_nifti_gz(
            mf.nifti_image(_to_uint8(s["hu"], p["window"]), s["affine"], f"real {who}; HU -200..300"),
            out / "slab" / f"{role}.nii.gz",
        )
        mf.save_nifti_gz(
            mf.nifti_image(s["label"], s["affine"], "one-hot liver,spleen,stomach,pancreas (model-made)"),
            out / "slab" / f"{role}_label.nii.gz",
        )
    slab_pairs = [{k: f"{k}.nii.gz" for k in ("moving", "fixed", "moving_label", "fixed_label")}]
    mf.write_json(out / "slab" / "pairs.json", slab_pairs)
    say(f"slab pair: {slab_info['organ_voxels_fixed']}, pre-alignment mean Dice {slab_info['prealignment_mean_dice']}")

    mf.copy_example(out / "test", pairs[0], ("moving", "fixed", "moving_label", "fixed_label"), out / "example")
    manifest = {
        "generator": "bundles/unpaired_ct_abdomen/scripts/make_demo_data.py",
        "source": {
            "description": "TotalSegmentator 2.18.0 sdist: example_ct (3 mm) + DICOM series; labels are model output",
            "sha256": src["sha256"],
            "organ_ids": src["ids"],
        },
        "parameters": p,
        "labels": list(ORGANS),
        "grid": {"shape": p["shape"], "affine": tgt_affine.tolist()},
        "subjects": subjects_info,
        "slab": slab_info,
    }
    return mf.finish_maker(out, manifest, OUTPUTS, ("numpy", "scipy", "torch", "nibabel"), say)


def check(source: str | Path, output: str | Path, verbose: bool = True) -> bool:
    """``--check``: regenerate from ``source`` with the recorded parameters; True when every file is the same."""
    return mf.check_source_regeneration(generate, source, output, verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    options = {**dict.fromkeys(DEFAULTS), "shape": "grid size in voxels", "window": "HU window mapped to 0..255"}
    source_help = "TotalSegmentator 2.18.0 sdist (.tar.gz) or its unpacked folder"
    default_out = Path(__file__).resolve().parents[1] / "data"
    return mf.source_maker_main(__doc__, default_out, source_help, generate, check, DEFAULTS, options, True, argv)


if __name__ == "__main__":
    sys.exit(main())
