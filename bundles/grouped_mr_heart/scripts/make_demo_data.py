"""Deterministic demo data for the ``grouped_mr_heart`` bundle: a SYNTHETIC 3D multi-sequence cardiac phantom and the
REAL 2D cardiac MR cine shipped in the npm package ami.js 0.33.0.

(a) ``data/phantom3d``: SYNTHETIC. Every "patient" is a procedurally drawn torso (body, subcutaneous fat, lungs, liver,
    LV blood pool, LV myocardium with an optional scar, RV blood pool) on a 64x64x16 grid of 2.5x2.5x6 mm, rendered
    with three MR contrast tables (bSSFP-like ``C0``, LGE-like ``DE``, T2-like ``T2``, MyoPS 2020's names). Each
    sequence is misaligned from the others as by a different breath-hold: a small rigid shift plus a smooth random
    deformation (``monai_reg_ext.data.random_smooth_ddf`` + ``monai_reg_ext.warp_image``). Labels (LV, myocardium,
    RV; one-hot) are warped alike and serve for evaluation only. No real patient is involved.
(b) ``data/cine2d``: REAL. ``MR-MONO2-8-16x-heart.dcm`` (one slice, 16 frames over the cardiac cycle, 256x256, 8 bit;
    Philips, 1995, anonymised) from ``npm pack ami.js@0.33.0`` (``package/data/dicom/``). The file has no
    PixelSpacing; its FieldOfViewDimensions is 350 mm, so the spacing is taken as 350 / 256 = 1.367 mm. Frames form
    groups: training = sliding windows of 4 consecutive frames over frames 0-9, validation = frames 10-11, test
    (held-out time range) = frames 12-15. No labels.

Usage (from the repository root; pydicom is an optional dependency of this script only)::

    (cd /tmp && npm pack ami.js@0.33.0 && tar xzf ami.js-0.33.0.tgz package/data/dicom/MR-MONO2-8-16x-heart.dcm)
    pip install --target downloads/pyd pydicom
    PYTHONPATH=downloads/pyd python bundles/grouped_mr_heart/scripts/make_demo_data.py \\
        --cine downloads/package/data/dicom/MR-MONO2-8-16x-heart.dcm
    PYTHONPATH=downloads/pyd python bundles/grouped_mr_heart/scripts/make_demo_data.py \\
        --cine downloads/package/data/dicom/MR-MONO2-8-16x-heart.dcm --check   # regenerate, compare sha256

``--cine`` is the DICOM file or the ami.js tarball; without it only the phantom is (re)generated and ``--check``
compares the phantom files only.

Output layout (DeepReg "grouped" layout)::

    data/phantom3d/{train,val,test}/images/patient_XXX/{C0,DE,T2}.nii.gz   uint8 (64, 64, 16)
    data/phantom3d/{train,val,test}/labels/patient_XXX/{C0,DE,T2}.nii.gz   uint8 one-hot (64, 64, 16, 3) [LV, myo, RV]
    data/phantom3d/test/pairs.json                                         forward intra-patient test pairs
    data/cine2d/{train,val,test}/images/<group>/frame_XX.nii.gz             uint8 (256, 256), 1.367 mm
    data/cine2d/test/pairs.json                                            forward test pairs of frames 12-15
    data/manifest.json                                                     sha256 of every file + parameters
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext import warp_image
from monai_reg_ext.demo.manifest import (
    compare_file_hashes,
    file_hashes,
    nifti_image,
    package_versions,
    save_nifti_gz,
    write_json,
)
from monai_reg_ext.spatial import random_smooth_ddf

__all__ = ["DEFAULTS", "CONTRASTS", "SEQUENCES", "draw_anatomy", "render_patient", "load_cine", "generate", "check"]

SEQUENCES = ("C0", "DE", "T2")  # MyoPS 2020 names: bSSFP cine, LGE (delayed enhancement), T2-weighted
#: Tissue classes of the phantom (probability channels, in this order).
TISSUES = ("air", "body", "fat", "lung", "liver", "lv", "myo", "rv", "scar")
#: Intensity tables in [0, 1] (bSSFP: bright blood and fat, dark myocardium; LGE: nulled myocardium, bright scar,
#: grey blood; T2: dark (black-blood) pools, bright fat, brighter oedema/scar).
CONTRASTS = {
    "C0": {
        "air": 0.0,
        "body": 0.35,
        "fat": 0.8,
        "lung": 0.04,
        "liver": 0.3,
        "lv": 0.9,
        "myo": 0.22,
        "rv": 0.85,
        "scar": 0.24,
    },
    "DE": {
        "air": 0.0,
        "body": 0.3,
        "fat": 0.55,
        "lung": 0.03,
        "liver": 0.4,
        "lv": 0.5,
        "myo": 0.06,
        "rv": 0.45,
        "scar": 0.95,
    },
    "T2": {
        "air": 0.0,
        "body": 0.3,
        "fat": 0.75,
        "lung": 0.05,
        "liver": 0.2,
        "lv": 0.12,
        "myo": 0.4,
        "rv": 0.1,
        "scar": 0.65,
    },
}
LABELS = ("lv", "myo", "rv")  # label channels; scar counts as myocardium

DEFAULTS = {
    "shape": [64, 64, 16],
    "spacing": [2.5, 2.5, 6.0],  # mm
    "n_train": 12,
    "n_val": 2,
    "n_test": 4,
    "seed_train": 100,  # patient k of a split uses seed = seed_<split> + k
    "seed_val": 200,
    "seed_test": 300,
    "shift_inplane": 2.0,  # voxels, max |rigid shift| along axes 0, 1 per sequence
    "shift_slice": 0.4,  # voxels (slices), max |rigid shift| along axis 2
    "max_displacement": 2.0,  # voxels, max norm of the smooth deformation per sequence
    "smoothness": 6.0,  # voxels
    "noise_std": 0.02,
    "bias_max": 0.15,
    "cine_train_window": 4,
    "cine_train_frames": [0, 9],
    "cine_val_frames": [10, 11],
    "cine_test_frames": [12, 15],
    "cine_spacing": 350.0 / 256.0,  # mm: FieldOfViewDimensions 350 mm over 256 pixels (no PixelSpacing in the file)
}
CINE_NAME = "MR-MONO2-8-16x-heart.dcm"


# -------------------------------------------------------------------------------------------------------- phantom
def _soft(d: np.ndarray, width: float = 1.5) -> np.ndarray:
    """Soft inside-indicator of a signed distance ``d`` (mm, negative inside): partial volume over ~``width`` mm."""
    return 1.0 / (1.0 + np.exp(np.clip(d / width, -50, 50)))


def _ellipse_d(x, y, cx, cy, ax, ay) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse."""
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return (r - 1.0) * np.minimum(ax, ay)


def draw_anatomy(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Tissue probabilities ``(len(TISSUES), *shape)`` (sum 1 per voxel) of one random synthetic torso.

    Axes 0 and 1 are the short-axis plane (mm from the grid centre), axis 2 runs from base (0) to apex.
    """
    coords = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*coords, indexing="ij")
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    zlen = (shape[2] - 1) * spacing[2]
    z0 = z - z.min()  # 0 at the base slice
    # body and fat
    bx, by = u(70, 80), u(58, 66)
    body = _soft(_ellipse_d(x, y, 0, u(-4, 4), bx, by))
    inner = _soft(_ellipse_d(x, y, 0, 0, bx - u(5, 8), by - u(5, 8)))
    # lungs (posterior-lateral, both sides), liver (inferior slices, one side)
    lung = (
        np.maximum(
            _soft(_ellipse_d(x, y, u(-45, -38), u(10, 20), u(20, 26), u(28, 34))),
            _soft(_ellipse_d(x, y, u(38, 45), u(10, 20), u(20, 26), u(28, 34))),
        )
        * inner
    )
    liver = _soft(_ellipse_d(x, y, u(25, 35), u(-25, -15), u(30, 38), u(25, 30))) * _soft(u(0.6, 0.75) * zlen - z0, 4)
    # heart: LV (tapered towards the apex), myocardium shell, RV crescent on the septal side
    cx, cy = u(-6, 6), u(-6, 6)
    taper = np.sqrt(np.clip(1.0 - (z0 / (zlen * u(1.02, 1.12))) ** 2, 0.05, 1.0))
    rx, ry, wall = u(15, 20) * taper, u(14, 18) * taper, u(7, 10)
    lv = _soft(_ellipse_d(x, y, cx, cy, rx, ry))
    epi = _soft(_ellipse_d(x, y, cx, cy, rx + wall, ry + wall))
    rv_d = _ellipse_d(x, y, cx - u(22, 28) * taper, cy + u(4, 10), u(20, 26) * taper, u(14, 18) * taper)
    rv = _soft(rv_d) * (1.0 - _soft(_ellipse_d(x, y, cx, cy, rx + wall + 3, ry + wall + 3)))
    rv = rv * _soft(z0 - zlen * u(0.8, 0.9), 4)  # the RV ends before the LV apex
    myo = np.clip(epi - lv, 0, 1)
    # optional scar: a transmural-ish sector of the myocardium (LGE-bright, T2-bright)
    scar = np.zeros_like(myo)
    if rng.random() < 0.7:
        angle = np.arctan2(y - cy, x - cx)
        a0, width = u(-np.pi, np.pi), u(0.5, 1.2)
        sector = np.cos(angle - a0) > np.cos(width / 2)
        zmask = (z0 > u(0.2, 0.4) * zlen) & (z0 < u(0.6, 0.9) * zlen)
        scar = myo * (sector & zmask)
        myo = myo - scar
    # painter's composition: each structure takes its share of what is left
    order = [("lv", lv), ("myo", myo), ("scar", scar), ("rv", rv), ("lung", lung), ("liver", liver), ("body", inner)]
    probs = {k: np.zeros(shape) for k in TISSUES}
    left = np.ones(shape)
    for name, m in order:
        take = np.clip(m, 0, 1) * left
        probs[name] += take
        left = left - take
    probs["fat"] = left * body  # the shell between body outline and inner body
    probs["air"] = left * (1 - body)
    return np.stack([probs[k] for k in TISSUES]).astype(np.float32)


def _sequence_ddf(seed: int, shape: Sequence[int], p: dict) -> torch.Tensor:
    """Breath-hold misalignment of one sequence: rigid shift + smooth deformation, ``(1, 3, *shape)`` voxels."""
    rng = np.random.default_rng([seed, 11])
    shift = [rng.uniform(-p["shift_inplane"], p["shift_inplane"]) for _ in range(2)]
    shift.append(rng.uniform(-p["shift_slice"], p["shift_slice"]))
    ddf = random_smooth_ddf(shape, p["max_displacement"], p["smoothness"], seed=seed, diffeomorphic=True)
    ddf[:, 2] *= 0.25  # little through-plane deformation (slices are 6 mm)
    return ddf + torch.tensor(shift, dtype=ddf.dtype).view(1, 3, 1, 1, 1)


def _bias(rng: np.random.Generator, shape, amplitude: float) -> np.ndarray:
    coarse = torch.from_numpy(rng.standard_normal((1, 1, 3, 3, 3)))
    b = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0].numpy()
    b = b - b.mean()
    return np.exp(amplitude * b / max(np.abs(b).max(), 1e-12))


def render_patient(seed: int, p: dict) -> dict:
    """Images (uint8) and one-hot labels of the three sequences of one synthetic patient."""
    shape = tuple(p["shape"])
    rng = np.random.default_rng(seed)
    probs = torch.from_numpy(draw_anatomy(rng, shape, p["spacing"]))[None].double()
    out = {}
    for s_idx, seq in enumerate(SEQUENCES):
        ddf = _sequence_ddf(seed * 10 + s_idx, shape, p).double()
        warped = warp_image(probs, ddf, mode="bilinear", padding_mode="border")[0].numpy()
        table = np.array([CONTRASTS[seq][k] for k in TISSUES])
        srng = np.random.default_rng([seed, s_idx, 5])
        scale = np.exp(srng.normal(0, 0.05, size=len(TISSUES)))  # patient/scanner variation of the contrast
        img = np.tensordot(table * scale, warped, axes=1)
        img = img * _bias(srng, shape, float(srng.uniform(0, p["bias_max"])))
        sigma = p["noise_std"]
        img = np.sqrt((img + sigma * srng.standard_normal(shape)) ** 2 + (sigma * srng.standard_normal(shape)) ** 2)
        img = np.round(np.clip(img / max(float(img.max()), 1e-6), 0, 1) * 255).astype(np.uint8)
        arg = warped.argmax(0)
        lab_idx = [TISSUES.index(k) for k in LABELS]
        onehot = np.stack([arg == lab_idx[0], (arg == lab_idx[1]) | (arg == TISSUES.index("scar")), arg == lab_idx[2]])
        out[seq] = {"image": img, "label": np.moveaxis(onehot, 0, -1).astype(np.uint8)}
    return out


# -------------------------------------------------------------------------------------------------------------- io
def _nifti(data: np.ndarray, spacing: Sequence[float], descrip: str) -> nib.Nifti1Image:
    affine = np.eye(4)
    for i, s in enumerate(spacing):
        affine[i, i] = s
    return nifti_image(data, affine, descrip)


def load_cine(source: str | Path) -> tuple[np.ndarray, str]:
    """Frames ``(16, 256, 256)`` uint8 of the ami.js cine (DICOM file or the ami.js tarball) and its sha256."""
    try:
        import pydicom  # optional dependency of this script only
    except ImportError as err:
        raise ValueError(
            "--cine needs pydicom: pip install --target downloads/pyd pydicom; PYTHONPATH=downloads/pyd"
        ) from err
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--cine: {path} not found (npm pack ami.js@0.33.0; package/data/dicom/{CINE_NAME}).")
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            raw = tf.extractfile(f"package/data/dicom/{CINE_NAME}").read()
    else:
        raw = path.read_bytes()
    import io

    ds = pydicom.dcmread(io.BytesIO(raw))
    frames = np.asarray(ds.pixel_array)
    if frames.shape != (16, 256, 256):
        raise ValueError(f"--cine: expected 16 frames of 256x256, got {frames.shape}.")
    return frames.astype(np.uint8), hashlib.sha256(raw).hexdigest()


def _cine_groups(p: dict) -> dict[str, dict[str, list[int]]]:
    w = int(p["cine_train_window"])
    a, b = p["cine_train_frames"]
    train = {f"frames_{s:02d}_{s + w - 1:02d}": list(range(s, s + w)) for s in range(a, b - w + 2)}
    va, vb = p["cine_val_frames"]
    ta, tb = p["cine_test_frames"]
    return {
        "train": train,
        "val": {f"frames_{va:02d}_{vb:02d}": list(range(va, vb + 1))},
        "test": {f"frames_{ta:02d}_{tb:02d}": list(range(ta, tb + 1))},
    }


def generate(output: str | Path, cine: str | None, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the phantom (and the cine when ``cine`` is given) into ``output``; return the manifest dict."""
    p = {**DEFAULTS, **(params or {})}
    say = print if verbose else (lambda *a, **k: None)
    torch.use_deterministic_algorithms(True)
    out = Path(output)
    parts = ["phantom3d"] + (["cine2d"] if cine else [])
    for part in parts:
        if (out / part).exists():
            shutil.rmtree(out / part)
    # (a) synthetic phantom
    for split in ("train", "val", "test"):
        pairs = []
        for k in range(int(p[f"n_{split}"])):
            patient = f"patient_{k:03d}"
            seqs = render_patient(int(p[f"seed_{split}"]) + k, p)
            for seq, d in seqs.items():
                base = out / "phantom3d" / split
                save_nifti_gz(
                    _nifti(d["image"], p["spacing"], f"SYNTHETIC cardiac phantom, {seq}"),
                    base / "images" / patient / f"{seq}.nii.gz",
                )
                save_nifti_gz(
                    _nifti(d["label"], p["spacing"], "one-hot [LV, myo, RV] (last axis)"),
                    base / "labels" / patient / f"{seq}.nii.gz",
                )
            for i in range(len(SEQUENCES)):
                for j in range(i + 1, len(SEQUENCES)):
                    m, f = SEQUENCES[i], SEQUENCES[j]
                    pairs.append({
                        "moving": f"images/{patient}/{m}.nii.gz", "fixed": f"images/{patient}/{f}.nii.gz",
                        "moving_label": f"labels/{patient}/{m}.nii.gz", "fixed_label": f"labels/{patient}/{f}.nii.gz",
                    })  # fmt: skip
            say(f"phantom {split}/{patient}")
        if split == "test":
            write_json(out / "phantom3d" / "test" / "pairs.json", pairs)
    # (b) real cine
    source = {}
    if cine:
        frames, sha = load_cine(cine)
        source = {CINE_NAME: sha}
        sp = [p["cine_spacing"]] * 2
        for split, groups in _cine_groups(p).items():
            for group, idx in groups.items():
                for t in idx:
                    save_nifti_gz(
                        _nifti(frames[t], sp, f"ami.js {CINE_NAME} frame {t}"),
                        out / "cine2d" / split / "images" / group / f"frame_{t:02d}.nii.gz",
                    )
            say(f"cine {split}: {groups}")
        ta, tb = p["cine_test_frames"]
        group = f"frames_{ta:02d}_{tb:02d}"
        pairs = [
            {"moving": f"images/{group}/frame_{i:02d}.nii.gz", "fixed": f"images/{group}/frame_{j:02d}.nii.gz"}
            for i in range(ta, tb + 1)
            for j in range(i + 1, tb + 1)
        ]
        write_json(out / "cine2d" / "test" / "pairs.json", pairs)
    files = file_hashes(out, lambda rel: rel.parts[0] in parts)
    manifest = {
        "generator": "bundles/grouped_mr_heart/scripts/make_demo_data.py",
        "phantom3d": "SYNTHETIC multi-sequence cardiac phantom (no real patient)",
        "cine2d": f"REAL cardiac MR cine {CINE_NAME} from npm ami.js 0.33.0 (package/data/dicom/)",
        "source_sha256": source,
        "parameters": p,
        "cine_groups": _cine_groups(p),
        "versions": package_versions("numpy", "torch", "nibabel"),
        "files": files,
    }
    if (out / "manifest.json").is_file() and not cine:  # keep the cine entries of an earlier full run
        old = json.loads((out / "manifest.json").read_text())
        manifest["files"] = {**{k: v for k, v in old["files"].items() if k.startswith("cine2d/")}, **files}
        manifest["source_sha256"] = old.get("source_sha256", {})
    write_json(out / "manifest.json", manifest)
    say(f"wrote {len(files)} files to {out}")
    return manifest


def check(output: str | Path, cine: str | None, verbose: bool = True) -> bool:
    """Regenerate in a temporary folder with the manifest's parameters and compare sha256s (cine only with ``cine``)."""
    manifest = json.loads((Path(output) / "manifest.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(tmp, cine, manifest["parameters"], verbose=False)["files"]
    expected = {k: v for k, v in manifest["files"].items() if cine or k.startswith("phantom3d/")}
    return compare_file_hashes(expected, fresh, output, verbose)


def main(argv: Sequence[str] | None = None) -> int:
    default_out = Path(__file__).resolve().parents[1] / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=str(default_out))
    ap.add_argument("--cine", default=None, help=f"{CINE_NAME} or the ami.js-0.33.0.tgz tarball")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check(args.output, args.cine, verbose=not args.quiet) else 1
    generate(args.output, args.cine, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
