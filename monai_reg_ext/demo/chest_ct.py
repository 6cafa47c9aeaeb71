"""Real chest CTs for the lung demo bundles: reading, resampling, lung masks, vessel keypoints, breathing motion.

Used by ``bundles/paired_ct_lung/scripts/make_demo_data.py`` (inspiration/expiration pairs made from one real CT and
a known breathing motion) and ``bundles/unpaired_ct_lung/scripts/make_demo_data.py`` (real inter-subject pairs).

Conventions (``docs/conventions.md``): arrays are ``(X, Y, Z)`` on an axis-aligned **RAS** grid (array axis 0
towards the patient's right, axis 1 anterior, axis 2 superior = cranial); affines map voxel indices to world RAS mm.
DDFs are ``(3, X, Y, Z)`` in voxels of the grid, pull semantics ``warped(x) = moving(x + ddf(x))``. CT values are
Hounsfield units (HU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ..spatial import jacobian_determinant, random_smooth_ddf, warp_image

__all__ = [
    "AIR_HU",
    "load_ct",
    "grid_affine",
    "resample",
    "body_mask",
    "lung_mask",
    "lung_centre",
    "vessel_keypoints",
    "BreathingParams",
    "sample_breathing_params",
    "breathing_motion",
    "invert_ddf",
    "sample_field",
    "smooth_random_field",
    "expiration_image",
    "CHEST_CT_SOURCES",
    "locate_chest_cts",
]

AIR_HU = -1024.0
"""Value used outside a CT's field of view (air)."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


# ------------------------------------------------------------------------------------------------------------ reading
def load_ct(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D CT (NIfTI, NRRD, MHA or anything ITK reads) in HU.

    Args:
        path: the image file.

    Returns:
        ``(hu, affine)``: float32 ``(X, Y, Z)`` array (ITK's ``(i, j, k)`` index order) and its ``(4, 4)``
        voxel-to-world RAS affine in mm.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the image is not a 3-D scalar volume.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CT file {str(path)!r} does not exist.")
    import itk  # optional: only the demo-data scripts read raw CTs

    img = itk.imread(str(path))
    arr = np.asarray(itk.array_from_image(img))
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D scalar CT volume, got an array of shape {arr.shape}.")
    hu = np.ascontiguousarray(arr.transpose(2, 1, 0)).astype(np.float32)  # ITK (z, y, x) -> (i, j, k)
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return hu, affine


def grid_affine(centre_mm: Sequence[float], shape: Sequence[int], spacing: float) -> np.ndarray:
    """RAS axis-aligned affine of a grid of ``shape`` voxels of ``spacing`` mm whose centre is at ``centre_mm``."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.round(np.asarray(centre_mm, dtype=np.float64) - spacing * (np.asarray(shape) - 1) / 2.0, 3)
    return affine


def resample(
    volume: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    shape: Sequence[int],
    ddf: np.ndarray | None = None,
    order: int = 1,
    cval: float = AIR_HU,
    antialias: bool = True,
) -> np.ndarray:
    """Sample ``volume`` at ``x + ddf(x)`` for every voxel ``x`` of the destination grid (one interpolation).

    Args:
        volume: source array ``(X, Y, Z)``.
        src_affine, dst_affine: voxel-to-world affines of the source and destination grids.
        shape: destination array shape.
        ddf: optional ``(3, *shape)`` displacement in destination voxels (pull).
        order: spline order (1 = trilinear, 0 = nearest).
        cval: value outside the source field of view (HU of air by default).
        antialias: Gaussian pre-filter with sigma ``(factor - 1) / 2`` source voxels along each axis that is
            down-sampled by ``factor = destination spacing / source spacing``.

    Returns:
        float32 array of ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    vol = np.asarray(volume, dtype=np.float32)
    if antialias:
        src_sp = np.linalg.norm(src_affine[:3, :3], axis=0)
        dst_sp = np.linalg.norm(dst_affine[:3, :3], axis=0).mean()
        sigma = np.maximum((dst_sp / src_sp - 1.0) / 2.0, 0.0)
        if np.any(sigma > 0):
            vol = ndimage.gaussian_filter(vol, sigma=sigma, mode="nearest")
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")).reshape(3, -1)
    if ddf is not None:
        if tuple(ddf.shape) != (3, *shape):
            raise ValueError(f"resample: ddf must have shape {(3, *shape)}, got {tuple(ddf.shape)}.")
        grid = grid + np.asarray(ddf, dtype=np.float64).reshape(3, -1)
    m = np.linalg.inv(src_affine) @ dst_affine
    coords = m[:3, :3] @ grid + m[:3, 3:4]
    out = ndimage.map_coordinates(vol, coords, order=order, mode="constant", cval=cval)
    return out.reshape(shape).astype(np.float32)


# -------------------------------------------------------------------------------------------------------------- masks
def body_mask(hu: np.ndarray, threshold: float = -400.0) -> np.ndarray:
    """The patient's body: largest connected component of ``hu > threshold``, holes filled slice by slice (axis 2)."""
    comp, n = ndimage.label(hu > threshold)
    if n == 0:
        raise ValueError(f"body_mask: no voxel above {threshold} HU.")
    sizes = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1))
    body = comp == 1 + int(np.argmax(sizes))
    for k in range(body.shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    return body


def lung_mask(hu: np.ndarray, threshold: float = -400.0, min_fraction: float = 0.1) -> np.ndarray:
    """Lungs by thresholding: air (``hu < threshold``) inside the body, largest components, vessels filled in.

    Air connected to the in-plane faces of the volume (outside the patient) is discarded; of the remaining air
    components, the largest and every one at least ``min_fraction`` of its size are kept (two lungs, or one when
    the airways join them); holes (vessels, nodules) are then filled.

    Args:
        hu: CT in HU ``(X, Y, Z)`` (axis 2 = cranio-caudal).
        threshold: HU below which a voxel is air or lung.
        min_fraction: smallest component kept, relative to the largest.

    Returns:
        bool array ``(X, Y, Z)``.

    Raises:
        ValueError: when no air component is found inside the body.
    """
    body = body_mask(hu, threshold)
    air = (hu < threshold) & body
    comp, n = ndimage.label(air)
    if n == 0:
        raise ValueError(f"lung_mask: no air (< {threshold} HU) inside the body.")
    sizes = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1))
    keep = 1 + np.flatnonzero(sizes >= min_fraction * sizes.max())
    lungs = np.isin(comp, keep)
    lungs = ndimage.binary_closing(lungs, structure=np.ones((3, 3, 3)), iterations=1, border_value=0) | lungs
    for k in range(lungs.shape[2]):
        lungs[:, :, k] = ndimage.binary_fill_holes(lungs[:, :, k])
    return lungs


def lung_centre(hu: np.ndarray, affine: np.ndarray, spacing: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """World centre (mm) and extent (mm) of the lungs' bounding box, found on a ``spacing`` mm resampling.

    Returns:
        ``(centre, extent)``, each ``(3,)`` in RAS mm.
    """
    src_sp = np.linalg.norm(affine[:3, :3], axis=0)
    size_mm = src_sp * (np.asarray(hu.shape) - 1)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    world = (affine[:3, :3] @ (corners * (np.asarray(hu.shape) - 1)).T).T + affine[:3, 3]
    lo = world.min(0)
    shape = np.floor(size_mm / spacing).astype(int) + 1
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = lo
    coarse = resample(hu, affine, aff, shape)
    idx = np.argwhere(lung_mask(coarse))
    wlo = lo + spacing * idx.min(0)
    whi = lo + spacing * idx.max(0)
    return (wlo + whi) / 2.0, whi - wlo


# ---------------------------------------------------------------------------------------------------------- keypoints
def vessel_keypoints(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing: float,
    max_points: int = 300,
    min_distance_mm: float = 12.0,
    sigma_mm: float = 2.0,
    vessel_hu: float = -500.0,
    margin_mm: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinctive points in the lung vessels: maxima of the Foerstner corner measure (Learn2Reg's keypoints).

    The structure tensor ``T = G_rho * (grad I grad I^T)`` (gradients of the image smoothed by ``sigma_mm``,
    ``rho = 2 sigma``) is large in all directions only where vessels branch or cross; the Foerstner distinctiveness
    ``1 / trace(T^-1)`` is computed at every voxel, local maxima over a cube of ``min_distance_mm`` are kept when they
    lie on a vessel (``hu > vessel_hu``) at least ``margin_mm`` inside the lungs, and the ``max_points`` strongest are
    returned. Computed on an isotropic grid.

    Args:
        hu: CT in HU on an isotropic grid ``(X, Y, Z)``.
        lungs: bool lung mask of the same shape.
        spacing: voxel size in mm.
        max_points: most points returned.
        min_distance_mm: size of the non-maximum-suppression cube.
        sigma_mm: Gaussian derivative scale.
        vessel_hu: least HU at a keypoint.
        margin_mm: least distance from the lung boundary.

    Returns:
        ``(points, scores)``: ``(N, 3)`` float64 voxel indices of the grid, strongest first, and ``(N,)`` scores.
    """
    if hu.shape != lungs.shape:
        raise ValueError(f"vessel_keypoints: hu {hu.shape} and lungs {lungs.shape} differ in shape.")
    img = np.clip(hu, -1000.0, 200.0).astype(np.float64)
    s = sigma_mm / spacing
    grads = [ndimage.gaussian_filter(img, s, order=[int(a == k) for a in range(3)]) for k in range(3)]
    rho = 2.0 * s
    t = {(a, b): ndimage.gaussian_filter(grads[a] * grads[b], rho) for a in range(3) for b in range(a, 3)}
    txx, tyy, tzz, txy, txz, tyz = t[0, 0], t[1, 1], t[2, 2], t[0, 1], t[0, 2], t[1, 2]
    det = txx * (tyy * tzz - tyz**2) - txy * (txy * tzz - tyz * txz) + txz * (txy * tyz - tyy * txz)
    minors = (tyy * tzz - tyz**2) + (txx * tzz - txz**2) + (txx * tyy - txy**2)
    score = det / np.maximum(minors, 1e-12)
    inside = ndimage.distance_transform_edt(lungs) * spacing >= margin_mm
    size = max(3, int(round(min_distance_mm / spacing)) | 1)
    peaks = (score == ndimage.maximum_filter(score, size=size)) & inside & (img > vessel_hu) & (score > 0)
    idx = np.argwhere(peaks)
    vals = score[peaks]
    order = np.argsort(-vals, kind="stable")[:max_points]
    return idx[order].astype(np.float64), vals[order]


# ------------------------------------------------------------------------------------------------- breathing motion
@dataclass(frozen=True)
class BreathingParams:
    """Amplitudes of the inspiration-to-expiration motion, in mm.

    Attributes:
        diaphragm_right, diaphragm_left: cranial displacement of the lung bases and the organs below them.
        anteroposterior: posterior displacement of the anterior chest wall (the back stays still).
        lateral: medial displacement of the lateral chest walls.
        apex_power: exponent of the cranio-caudal decay ``w(z) = ((z_apex - z) / (z_apex - z_base)) ** p``.
        wall_fraction: fraction of the diaphragm motion that the chest wall and mediastinum follow (sliding).
        random_mm: amplitude of an extra smooth random field inside the lungs and abdomen (inter-breath variability).
    """

    diaphragm_right: float = 15.0
    diaphragm_left: float = 15.0
    anteroposterior: float = 4.0
    lateral: float = 2.5
    apex_power: float = 1.5
    wall_fraction: float = 0.1
    random_mm: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain dict (for manifests)."""
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def sample_breathing_params(rng: np.random.Generator, scale: float = 1.0) -> BreathingParams:
    """Random breathing amplitudes: diaphragm 8-22 mm (each side within +-25 %), AP 2-6 mm, lateral 1-4 mm."""
    d = rng.uniform(8.0, 22.0) * scale
    return BreathingParams(
        diaphragm_right=float(d * rng.uniform(0.75, 1.0)),
        diaphragm_left=float(d * rng.uniform(0.8, 1.05)),
        anteroposterior=float(rng.uniform(2.0, 6.0) * scale),
        lateral=float(rng.uniform(1.0, 4.0) * scale),
        apex_power=float(rng.uniform(1.2, 2.0)),
        wall_fraction=float(rng.uniform(0.0, 0.2)),
        random_mm=float(rng.uniform(0.5, 2.0) * scale),
    )


def smooth_random_field(shape: Sequence[int], max_norm: float, smoothness: float, seed: int) -> np.ndarray:
    """Smooth random DDF ``(3, *shape)`` (voxels) with maximum norm ``max_norm``, without border peaks.

    Drawn with :func:`monai_reg_ext.spatial.random_smooth_ddf` (not integrated) on a grid padded by ``3 * smoothness``
    voxels per side and cropped, so that the faces are not stronger than the interior.
    """
    pad = int(math.ceil(3.0 * smoothness))
    big = [int(n) + 2 * pad for n in shape]
    v = random_smooth_ddf(big, 1.0, smoothness, seed=seed, diffeomorphic=False, dtype=torch.float64)[0]
    v = v[:, pad : pad + shape[0], pad : pad + shape[1], pad : pad + shape[2]]
    v = v / v.norm(dim=0).max().clamp_min(1e-12)
    return (v * max_norm).numpy()


def breathing_motion(
    lungs: np.ndarray, body: np.ndarray, spacing: float, params: BreathingParams, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Inspiration-to-expiration motion field on the inspiration grid.

    A point ``x`` of the inspiration image is at ``x + m(x)`` in the expiration image (so ``m`` is the pull DDF that
    registers the expiration image, moving, to the inspiration image, fixed: ``exp(x + m(x)) = insp(x)``). Model
    (RAS grid, axis 2 cranial):

    - cranio-caudal: inside the lungs and the organs below them (the "inner" compartment) ``m_z = A w(z)``, with
      ``A`` the diaphragm amplitude of the side (right/left, smooth across the midline) and
      ``w(z) = clip((z_apex - z) / (z_apex - z_base), 0, 1) ** p``: full motion at the lung base and below, decaying
      to zero at the apex; in the chest wall and mediastinum only ``wall_fraction`` of it. The compartment weight is
      the inner mask smoothed by 1 voxel, so the cranio-caudal (tangential) motion changes over ~2 voxels at the
      pleura: **sliding**.
    - in-plane (continuous across the pleura, the chest wall moves with the lung surface): the anterior wall moves
      posteriorly by ``anteroposterior`` (linear from 0 at the back of the body), the lateral walls medially by
      ``lateral`` (linear from 0 at the body's centre), both scaled by ``0.5 + 0.5 w(z)`` (larger at the base).
    - an optional smooth random field of ``random_mm`` (sigma 6 voxels) in the inner compartment.

    Args:
        lungs: bool lung mask of the inspiration image ``(X, Y, Z)``.
        body: bool body mask of the same shape.
        spacing: isotropic voxel size in mm.
        params: amplitudes.
        seed: seed of the random field.

    Returns:
        ``(m, inner)``: the motion ``(3, X, Y, Z)`` float64 in voxels and the inner compartment weight
        ``(X, Y, Z)`` in ``[0, 1]``.

    Raises:
        ValueError: for an empty lung mask or mismatched shapes.
    """
    if lungs.shape != body.shape or lungs.ndim != 3:
        raise ValueError(f"breathing_motion: lungs {lungs.shape} and body {body.shape} must be equal 3-D shapes.")
    idx = np.argwhere(lungs)
    if idx.size == 0:
        raise ValueError("breathing_motion: the lung mask is empty.")
    shape = lungs.shape
    x, y, z = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    z_base, z_apex = float(idx[:, 2].min()), float(idx[:, 2].max())
    w = np.clip((z_apex - z) / max(z_apex - z_base, 1.0), 0.0, 1.0) ** params.apex_power
    # inner compartment: lungs and, in the columns that hold lung, the body below the lowest lung voxel
    has_lung = lungs.any(axis=2)
    lowest = np.where(has_lung, np.argmax(lungs, axis=2), -1)
    below = (z < lowest[..., None]) & has_lung[..., None] & body
    inner = ndimage.gaussian_filter((lungs | below).astype(np.float64), 1.0)
    # side: on a RAS grid, array axis 0 increases towards the patient's right; smooth split at the lungs' midline
    body_idx = np.argwhere(body)
    x_mid = float(idx[:, 0].mean())
    right = 1.0 / (1.0 + np.exp(-(x - x_mid) / (10.0 / spacing)))
    amp = (right * params.diaphragm_right + (1.0 - right) * params.diaphragm_left) / spacing
    m = np.zeros((3, *shape), dtype=np.float64)
    m[2] = amp * w * (inner + params.wall_fraction * (1.0 - inner))
    y_post, y_ant = float(body_idx[:, 1].min()), float(body_idx[:, 1].max())
    x_lo, x_hi = float(body_idx[:, 0].min()), float(body_idx[:, 0].max())
    profile = 0.5 + 0.5 * w
    m[1] = -(params.anteroposterior / spacing) * profile * (y - y_post) / max(y_ant - y_post, 1.0)
    m[0] = -(params.lateral / spacing) * profile * (x - 0.5 * (x_lo + x_hi)) / max(0.5 * (x_hi - x_lo), 1.0)
    if params.random_mm > 0:
        m += smooth_random_field(shape, params.random_mm / spacing, 6.0, seed) * inner[None]
    return m, inner


def sample_field(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trilinear value of ``field`` ``(C, X, Y, Z)`` at ``points`` ``(N, 3)`` voxel indices (edge-clamped): ``(N, C)``.

    Used to carry landmarks through a DDF: ``moving = fixed + sample_field(ddf, fixed)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    return np.stack([ndimage.map_coordinates(f, pts.T, order=1, mode="nearest") for f in field], axis=1)


def invert_ddf(ddf: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Inverse of a pull DDF by fixed-point iteration ``inv(y) = -ddf(y + inv(y))`` (``(3, *S)`` voxels)."""
    d = torch.as_tensor(ddf, dtype=torch.float64)[None]
    inv = -d.clone()
    for _ in range(iterations):
        inv = -warp_image(d, inv, mode="bilinear", padding_mode="border")
    return inv[0].numpy()


def expiration_image(
    ct: np.ndarray,
    ct_affine: np.ndarray,
    grid: np.ndarray,
    shape: Sequence[int],
    motion: np.ndarray,
    lungs: np.ndarray,
    anatomy: np.ndarray | None = None,
    iterations: int = 20,
) -> dict[str, np.ndarray]:
    """Expiration image and lung mask made from the real CT and the motion ``m`` of :func:`breathing_motion`.

    The inspiration image is ``insp(x) = CT(x + a(x))`` (``a`` = optional ``anatomy`` DDF, voxels of ``grid``). The
    expiration image is ``exp(y) = insp(y + inv(y))`` with ``inv`` the inverse of ``m``, sampled from the CT with one
    interpolation, and with the lung density raised by mass conservation: in the lungs
    ``HU_exp = (HU_insp + 1000) / J - 1000``, ``J = det(I + grad m) < 1`` the volume ratio expiration/inspiration.

    Returns:
        dict with ``image`` (HU, float32 ``shape``), ``lungs`` (bool, the inspiration mask carried by the motion),
        ``inverse`` (``(3, *shape)``), ``jacobian`` (``J`` on the inspiration grid) and ``inverse_residual``
        (99th percentile of ``|m(y + inv(y)) + inv(y)|`` in voxels inside the expiration lungs).
    """
    shape = tuple(int(s) for s in shape)
    inv = invert_ddf(motion, iterations)
    inv_t = torch.as_tensor(inv)[None]
    jac = jacobian_determinant(torch.as_tensor(motion)[None])[0].numpy()
    lung_w = ndimage.gaussian_filter(lungs.astype(np.float64), 0.5)
    fields = torch.as_tensor(np.stack([1.0 / np.clip(jac, 0.2, None), lung_w, lungs.astype(np.float64)]))[None]
    moved = warp_image(fields, inv_t, mode="bilinear", padding_mode="border")[0].numpy()
    total = inv
    if anatomy is not None:
        a_at = warp_image(torch.as_tensor(anatomy, dtype=torch.float64)[None], inv_t)[0].numpy()
        total = inv + a_at
    raw = resample(ct, ct_affine, grid, shape, ddf=total)
    image = moved[1] * ((raw + 1000.0) * moved[0] - 1000.0) + (1.0 - moved[1]) * raw
    resid = warp_image(torch.as_tensor(motion)[None], inv_t)[0].numpy() + inv
    in_lungs = moved[2] > 0.5
    res = float(np.percentile(np.linalg.norm(resid, axis=0)[in_lungs], 99)) if in_lungs.any() else 0.0
    return {
        "image": image.astype(np.float32),
        "lungs": moved[2] > 0.5,
        "inverse": inv,
        "jacobian": jac,
        "inverse_residual": res,
    }


# ------------------------------------------------------------------------------------------------------------ sources
#: The real chest CTs inside registry packages: name -> (package, path inside the package's source tree).
CHEST_CT_SOURCES = {
    "ts_chest": ("totalsegmentator", "tests/reference_files/aorta_report/example_ct.nii.gz"),
    "pyrad_lung1": ("pyradiomics", "data/lung1_image.nrrd"),
    "pyrad_lung2": ("pyradiomics", "data/lung2_image.nrrd"),
}


def locate_chest_cts(totalsegmentator: str | Path, pyradiomics: str | Path, workdir: str | Path) -> dict[str, Path]:
    """Find the three real chest CTs of :data:`CHEST_CT_SOURCES`.

    Args:
        totalsegmentator: the TotalSegmentator source tarball (``.tar.gz``), its unpacked folder, or the
            ``example_ct.nii.gz`` file itself.
        pyradiomics: the pyradiomics source folder (holding ``data/``), its ``data/`` folder, or a pyradiomics source
            tarball.
        workdir: a folder where members of tarballs are extracted.

    Returns:
        ``{name: path}`` for ``ts_chest``, ``pyrad_lung1``, ``pyrad_lung2``.

    Raises:
        FileNotFoundError: naming the argument and the file that was looked for.
    """
    import tarfile

    roots = {"totalsegmentator": Path(totalsegmentator), "pyradiomics": Path(pyradiomics)}
    found: dict[str, Path] = {}
    for name, (pkg, rel) in CHEST_CT_SOURCES.items():
        root = roots[pkg]
        fname = Path(rel).name
        if root.is_file() and root.name == fname:
            found[name] = root
        elif root.is_file() and tarfile.is_tarfile(root):
            with tarfile.open(root) as tf:
                members = [m for m in tf.getmembers() if m.name.endswith(rel) and m.isfile()]
                if not members:
                    raise FileNotFoundError(f"--{pkg}: tarball {root.name} holds no member ending in {rel!r}.")
                target = Path(workdir) / pkg / fname
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tf.extractfile(members[0]).read())
                found[name] = target
        elif root.is_dir():
            hits = [p for p in (root / rel, root / fname, root / Path(rel).parent.name / fname) if p.is_file()]
            hits = hits or sorted(root.rglob(fname))
            hits = [h for h in hits if h.as_posix().endswith(Path(rel).name)]
            if not hits:
                raise FileNotFoundError(f"--{pkg}: no {rel!r} (or {fname!r}) under the folder {root.name!r}.")
            found[name] = hits[0]
        else:
            raise FileNotFoundError(f"--{pkg}: {str(root)!r} is neither the file {fname}, a tarball nor a folder.")
    return found
