"""Deterministic SYNTHETIC demo data for the ``paired_mrus_prostate`` bundle: prostate MR (moving) and TRUS (fixed).

Nothing here is a real patient or a real scan. Each "case" is a random analytic pelvis (prostate gland with a
peripheral and a transition zone, urethra, capsule, periprostatic fat, bladder, rectum with the probe, small
calcifications) rendered twice:

- **moving**: a T2-weighted-MR-like image (tissue contrast, partial volume, bias field, Rician noise) on DeepReg's
  moving grid 69x69x64 (0.8 mm voxels);
- **fixed**: a transrectal-ultrasound-like image of the same anatomy *deformed by the probe pressure* (anterior push
  decaying away from the rectum, a random smooth field and a small rigid misalignment), rendered by
  :func:`monai_reg_ext.demo.ultrasound.simulate_ultrasound` (speckle, depth attenuation, specular capsule and
  shadows behind calcifications, fan-shaped field of view) on DeepReg's fixed grid 47x63x44 covering the same
  54.4 x 54.4 x 50.4 mm field of view.

Labels (both images, uint8 one-hot ``(X, Y, Z, 2)``): channel 0 whole gland, channel 1 transition zone. Point
landmarks (physical RAS mm, JSON as :func:`monai_reg_ext.io.read_landmarks` reads them): apex and base of the
urethra, gland centre, transition-zone centre, two peripheral-zone points and the calcification centres; the fixed
points are the moving ones mapped through the inverse of the known deformation.

Usage (from the repository root)::

    python bundles/paired_mrus_prostate/scripts/make_demo_data.py            # writes bundles/.../data
    python bundles/paired_mrus_prostate/scripts/make_demo_data.py --check    # regenerate in a temp dir, compare sha256

Output layout (DeepReg's paired layout after its ``demo_data.py`` split into 11 parts: parts 0-7 train, 8 val,
9-10 test)::

    data/partNN/{moving_images,fixed_images,moving_labels,fixed_labels}/case_XXX.nii.gz
    data/partNN/{moving_landmarks,fixed_landmarks}/case_XXX.json
    data/test_pairs.json         the pairs of parts 9 and 10 (for inference and scripts/evaluate.py)
    data/manifest.json           sha256 of every file + generator parameters
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from monai_reg_ext.demo.manifest import nifti_image, save_nifti_gz, synthetic_entry_points, write_synthetic_manifest
from monai_reg_ext.demo.prostate import ProstateRegion, logistic, render_trus

__all__ = ["DEFAULTS", "Case", "random_case", "render_case", "generate", "check", "main"]

#: Generator parameters (recorded in manifest.json; ``--check`` regenerates with the recorded ones).
DEFAULTS: dict = {
    "seed": 6,
    "n_parts": 11,
    "cases_per_part": 9,
    "moving_shape": [69, 69, 64],
    "fixed_shape": [47, 63, 44],
    "moving_spacing_mm": 0.8,
    "probe_push_mm": [5.0, 10.0],
    "smooth_disp_mm": 2.0,
    "rigid_shift_mm": 2.0,
    "rigid_rot_deg": 3.0,
    "mr_noise": 0.012,
    "mr_grey_levels": 64,
    "us_grey_levels": 128,
}


def _extent(params: dict) -> np.ndarray:
    """Field of view in mm between the first and last voxel centres (shared by moving and fixed)."""
    return (np.asarray(params["moving_shape"]) - 1) * float(params["moving_spacing_mm"])


def grid_affine(shape: Sequence[int], extent: np.ndarray) -> np.ndarray:
    """Voxel-to-world (RAS mm) affine of a grid whose first/last voxel centres span ``extent``, centred at 0."""
    sp = extent / (np.asarray(shape) - 1)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = -extent / 2.0
    return aff


def _world_points(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    return np.stack([affine[k, k] * idx[k] + affine[k, 3] for k in range(3)])  # (3, *shape)


class Case(ProstateRegion):
    """A random analytic pelvis and its probe deformation; every method takes world points ``(3, ...)`` in mm."""

    def __init__(self, rng: np.random.Generator, params: dict):
        u = rng.uniform
        self.c = np.array([u(-2, 2), u(0, 4), u(-3, 3)])
        self.r = np.array([u(15, 19), u(11, 14), u(13, 17)])  # lateral, antero-posterior, cranio-caudal
        self.draw_gland(u, 10, 0.08, ((0.5, 0.65), (0.5, 0.6), (0.5, 0.65)))
        self.rectum_xy = np.array([self.c[0], self.c[1] - self.r[1] - u(9, 11)])
        self.rectum_r = u(8, 10)
        self.draw_calcifications(rng, (1, 4), (1.0, 1.6))  # at the TZ/PZ border
        # deformation: probe push (anterior, decaying from the rectum), random RBF field, rigid misalignment
        self.push = u(*params["probe_push_mm"])
        self.push_sigma = u(12, 16)
        self.probe = np.array([self.rectum_xy[0], self.rectum_xy[1], self.c[2] - u(2, 6)])
        self.rbf_c = self.c + rng.uniform(-20, 20, size=(6, 3))
        self.rbf_v = rng.normal(size=(6, 3)) * float(params["smooth_disp_mm"]) / 1.5
        self.rbf_s = u(12, 18, size=6)
        ang = np.radians(rng.uniform(-1, 1, size=3) * float(params["rigid_rot_deg"]))
        self.rigid_r = _rotation(ang)
        self.rigid_t = rng.uniform(-1, 1, size=3) * float(params["rigid_shift_mm"])
        self.texture_seed = int(rng.integers(2**31))

    def tissues(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Soft tissue memberships in ``[0, 1]`` at world points ``p`` ``(3, ...)``."""
        d_ure = np.sqrt((p[0] - self.ure_xy[0]) ** 2 + (p[1] - self.ure_xy[1]) ** 2)
        d_rec = np.sqrt((p[0] - self.rectum_xy[0]) ** 2 + (p[1] - self.rectum_xy[1]) ** 2)
        m = self.memberships(p, 0.5, 0.9, d_ure, d_rec)
        ure = m["urethra"] * logistic((self.r[2] * 1.1 - np.abs(p[2] - self.c[2])) / 0.5)
        return {
            "gland": m["gland"],
            "tz": m["tz"],
            "pz": m["gland"] - m["tz"],
            "capsule": m["capsule"],
            "urethra": ure * m["gland"],
            "bladder": m["bladder"],
            "lumen": m["lumen"],
            "rect_wall": m["wall"],
            "fat": m["fat"],
            "calc": m["calc"],
        }

    def displacement(self, y: np.ndarray) -> np.ndarray:
        """``u(y)`` in mm: the fixed (ultrasound) point ``y`` shows the anatomy at ``y + u(y)`` (pull)."""
        bc = (1,) * (y.ndim - 1)
        d2 = ((y - self.probe.reshape(3, *bc)) ** 2).sum(0)
        # the probe pushes tissue anteriorly (+axis 1): the anatomy seen at y came from further posterior
        u = np.zeros_like(y)
        u[1] = -self.push * np.exp(-d2 / (2 * self.push_sigma**2))
        for c, v, s in zip(self.rbf_c, self.rbf_v, self.rbf_s):
            g = np.exp(-((y - c.reshape(3, *bc)) ** 2).sum(0) / (2 * s**2))
            u += v.reshape(3, *bc) * g
        moved = np.tensordot(self.rigid_r, y + u, axes=1) + self.rigid_t.reshape(3, *bc)
        return moved - y

    def inverse_points(self, x: np.ndarray, iterations: int = 200) -> np.ndarray:
        """Fixed points ``y`` with ``y + u(y) = x`` for moving points ``x`` ``(N, 3)`` (fixed-point iteration)."""
        y = x.T.copy()
        for _ in range(iterations):
            y = y - (y + self.displacement(y) - x.T) * 0.7
        residual = np.abs(y + self.displacement(y) - x.T).max()
        if residual > 1e-4:
            raise RuntimeError(f"landmark inversion did not converge (residual {residual:.2e} mm)")
        return y.T

    def landmarks(self) -> np.ndarray:
        """Moving landmarks ``(N, 3)`` in world mm.

        Urethra at apex and base, gland and transition-zone centres, 2 peripheral-zone points, calcifications.
        """
        pts = [
            [self.ure_xy[0], self.ure_xy[1], self.c[2] - 0.75 * self.r[2]],
            [self.ure_xy[0], self.ure_xy[1], self.c[2] + 0.75 * self.r[2]],
            self.c,
            self.tz_c,
            self.c + np.array([0.6 * self.r[0], -0.55 * self.r[1], 0]),
            self.c + np.array([-0.6 * self.r[0], -0.55 * self.r[1], 0]),
            *self.calc,
        ]
        return np.asarray(pts, dtype=np.float64)


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_case(seed: int, params: dict) -> Case:
    """The case of ``seed`` (a numpy ``default_rng`` seed)."""
    return Case(np.random.default_rng(seed), params)


def _texture(case: Case, p: np.ndarray, sigma_mm: float, stream: int) -> np.ndarray:
    """Smooth zero-mean unit-std random texture, a function of anatomical position (same in MR and US)."""
    rng = np.random.default_rng([case.texture_seed, stream])
    n, step = 40, 2.0  # 80 mm box at 2 mm
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), sigma_mm / step, mode="wrap")
    field /= field.std() + 1e-12
    coords = (p + n * step / 2) / step
    return ndimage.map_coordinates(field, coords, order=1, mode="wrap")


def render_case(case: Case, params: dict, seed: int) -> dict[str, np.ndarray]:
    """Images, labels and landmarks of one case (see the module docstring)."""
    ext = _extent(params)
    m_aff = grid_affine(params["moving_shape"], ext)
    f_aff = grid_affine(params["fixed_shape"], ext)
    rng = np.random.default_rng([seed, 1])
    # ---------------- moving: T2-weighted MR
    pm = _world_points(params["moving_shape"], m_aff)
    t = case.tissues(pm)
    nod = _texture(case, pm, 2.5, 0)
    soft = _texture(case, pm, 6.0, 1)
    bg = 0.28 + 0.04 * soft
    mr = bg * (1 - t["gland"] - t["fat"] - t["bladder"] - t["lumen"] - t["rect_wall"]).clip(0, 1)
    mr += t["fat"] * (0.68 + 0.03 * soft) + t["bladder"] * 0.95 + t["lumen"] * 0.05 + t["rect_wall"] * 0.22
    mr += t["pz"] * (0.78 + 0.04 * nod) + t["tz"] * (0.42 + 0.09 * nod)
    mr = mr * (1 - 0.55 * t["capsule"] * (1 - t["gland"] * 0.5)) + 0.2 * t["urethra"]
    mr = mr * (1 - t["calc"]) + 0.05 * t["calc"]
    mr = ndimage.gaussian_filter(mr, 0.6)
    bias = np.exp(0.12 * _texture(case, pm, 25.0, 2))
    sigma = float(params["mr_noise"])
    mr = np.sqrt(
        (mr * bias + sigma * rng.standard_normal(mr.shape)) ** 2 + (sigma * rng.standard_normal(mr.shape)) ** 2
    )
    m_label = np.stack([t["gland"] >= 0.5, t["tz"] >= 0.5], axis=-1)
    # ---------------- fixed: TRUS of the probe-deformed anatomy
    py = _world_points(params["fixed_shape"], f_aff)
    px = py + case.displacement(py)
    t = case.tissues(px)
    nod = _texture(case, px, 2.5, 0)
    soft = _texture(case, px, 6.0, 1)
    other = (1 - t["gland"] - t["fat"] - t["bladder"] - t["lumen"] - t["rect_wall"]).clip(0, 1)
    echo = other * (0.55 + 0.08 * soft) + t["fat"] * (0.8 + 0.05 * soft) + t["bladder"] * 0.02
    echo += t["lumen"] * 0.1 + t["rect_wall"] * 0.8 + t["pz"] * (0.45 + 0.05 * nod) + t["tz"] * (0.25 + 0.07 * nod)
    echo = echo * (1 - 0.3 * t["urethra"]) + 0.4 * t["capsule"] * (1 - t["bladder"])
    echo = np.clip(echo * (1 - t["calc"]) + 3.0 * t["calc"], 0, None)
    sp_f = ext / (np.asarray(params["fixed_shape"]) - 1)
    probe_vox = (case.probe - f_aff[:3, 3]) / sp_f  # the probe sits in the (fixed-space) rectum
    direction = np.array([0.0, 1.0, 0.15]) / sp_f
    us, _ = render_trus(echo, sp_f, probe_vox, direction, 130.0, seed)
    f_label = np.stack([t["gland"] >= 0.5, t["tz"] >= 0.5], axis=-1)
    lm_m = case.landmarks()
    lm_f = case.inverse_points(lm_m)
    return {
        "moving": mr,
        "fixed": us,
        "moving_label": m_label.astype(np.uint8),
        "fixed_label": f_label.astype(np.uint8),
        "moving_landmarks": lm_m,
        "fixed_landmarks": lm_f,
        "moving_affine": m_aff,
        "fixed_affine": f_aff,
    }


# ------------------------------------------------------------------------------------------------------------ output
def _to_uint8(x: np.ndarray, levels: int = 256) -> np.ndarray:
    """Min / 99.9th percentile scaling to 0-255 with ``levels`` grey levels (fewer levels: smaller files)."""
    lo, hi = float(x.min()), float(np.percentile(x, 99.9))
    step = 256 // int(levels)
    q = np.floor(np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1) * (levels - 1) + 0.5)
    return (q * step).astype(np.uint8)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / s if s > 0 else 1.0


def generate(output: str | Path, params: dict | None = None, verbose: bool = True) -> dict:
    """Write the demo data set into ``output`` (its ``part*`` folders are replaced) and return the manifest dict."""
    import shutil

    params = {**DEFAULTS, **(params or {})}
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part*"):
        shutil.rmtree(old)
    n_parts, per_part = int(params["n_parts"]), int(params["cases_per_part"])
    test_pairs = []
    for idx in range(n_parts * per_part):
        part = f"part{idx % n_parts:02d}"  # DeepReg's demo_data.py: file index modulo the number of parts
        name = f"case_{idx:03d}"
        seed = int(params["seed"]) * 1000 + idx
        r = render_case(random_case(seed, params), params, seed)
        d = out / part
        save_nifti_gz(
            nifti_image(
                _to_uint8(r["moving"], params["mr_grey_levels"]), r["moving_affine"], "synthetic T2 MR (monai-reg demo)"
            ),
            d / "moving_images" / f"{name}.nii.gz",
        )
        save_nifti_gz(
            nifti_image(
                _to_uint8(r["fixed"], params["us_grey_levels"]), r["fixed_affine"], "synthetic TRUS (monai-reg demo)"
            ),
            d / "fixed_images" / f"{name}.nii.gz",
        )
        save_nifti_gz(
            nifti_image(r["moving_label"], r["moving_affine"], "gland, transition zone"),
            d / "moving_labels" / f"{name}.nii.gz",
        )
        save_nifti_gz(
            nifti_image(r["fixed_label"], r["fixed_affine"], "gland, transition zone"),
            d / "fixed_labels" / f"{name}.nii.gz",
        )
        for kind in ("moving_landmarks", "fixed_landmarks"):
            pts = [[round(float(v), 4) for v in p] for p in r[kind]]
            (d / kind).mkdir(parents=True, exist_ok=True)
            (d / kind / f"{name}.json").write_text(json.dumps({"space": "physical", "points": pts}) + "\n")
        if idx % n_parts >= 9:
            test_pairs.append(
                {
                    "name": name,
                    "moving": f"{part}/moving_images/{name}.nii.gz",
                    "fixed": f"{part}/fixed_images/{name}.nii.gz",
                    "moving_label": f"{part}/moving_labels/{name}.nii.gz",
                    "fixed_label": f"{part}/fixed_labels/{name}.nii.gz",
                    "moving_landmarks": f"{part}/moving_landmarks/{name}.json",
                    "fixed_landmarks": f"{part}/fixed_landmarks/{name}.json",
                }
            )
        if verbose:
            tre0 = np.linalg.norm(r["moving_landmarks"] - r["fixed_landmarks"], axis=1).mean()
            print(f"{part}/{name}: no-registration TRE {tre0:.2f} mm, {len(r['moving_landmarks'])} landmarks")
    (out / "test_pairs.json").write_text(json.dumps(test_pairs, indent=2) + "\n")
    return write_synthetic_manifest(
        out,
        "bundles/paired_mrus_prostate/scripts/make_demo_data.py",
        params,
        ("numpy", "nibabel"),
        lambda rel: rel.name == "test_pairs.json" or rel.parts[0].startswith("part"),
    )


check, main = synthetic_entry_points(
    __doc__, Path(__file__).resolve().parents[1] / "data", generate, DEFAULTS, ("seed", "cases_per_part")
)


if __name__ == "__main__":
    sys.exit(main())
