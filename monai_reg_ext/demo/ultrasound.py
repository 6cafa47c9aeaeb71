"""Deterministic ultrasound-like image simulation from a tissue echogenicity map (2D sector or 3D cone).

Used to build synthetic demo data where no real ultrasound is available. It is a *rendering* model, not an acoustic
wave simulation: brightness = diffuse scattering (echogenicity x speckle) + specular reflections at tissue
boundaries, multiplied by depth attenuation and by the acoustic shadow cast along each ray by the boundaries
crossed before. Everything is computed on straight rays from a point probe.

Coordinates: ``probe_origin`` and ``probe_direction`` are in **array-axis order** (see ``docs/conventions.md``);
the origin is in voxels (it may lie outside the array, e.g. a transrectal probe below the volume), distances are in
mm through ``spacing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["simulate_ultrasound", "probe_geometry"]


def _check_vector(name: str, value: Sequence[float], ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != ndim:
        raise ValueError(
            f"{name} must have {ndim} values (one per array axis of echogenicity), got {arr.size}: {value!r}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def _perpendicular_basis(axis: np.ndarray) -> list[np.ndarray]:
    """Unit vectors orthogonal to the unit vector ``axis`` (1 in 2D, 2 in 3D)."""
    ndim = axis.size
    basis = []
    for k in np.argsort(np.abs(axis)):  # Gram-Schmidt starting from the least aligned array axes
        v = np.zeros(ndim)
        v[k] = 1.0
        v -= axis * float(axis @ v)
        for b in basis:
            v -= b * float(b @ v)
        n = np.linalg.norm(v)
        if n > 1e-6:
            basis.append(v / n)
        if len(basis) == ndim - 1:
            break
    return basis


def probe_geometry(
    shape: Sequence[int],
    spacing: Sequence[float],
    probe_origin: Sequence[float],
    probe_direction: Sequence[float],
    fan_angle_deg: float = 70.0,
    depth_mm: float | None = None,
) -> dict[str, np.ndarray | float]:
    """Per-voxel probe geometry of a sector (2D) or cone (3D) transducer.

    Returns a dict with ``"depth"`` (distance to the probe origin, mm, array of ``shape``), ``"angles"``
    (``(ndim - 1, *shape)`` lateral beam angles in radians, ``atan2`` of the offsets along the perpendicular basis
    over the offset along the axis), ``"fov"`` (bool ``shape``: inside the fan/cone and within ``depth_mm``),
    ``"unit"`` (``(ndim, *shape)`` unit ray direction in mm-space, array-axis order) and ``"depth_mm"`` (the depth
    used: the farthest array corner when ``depth_mm`` is None).
    """
    ndim = len(shape)
    sp = _check_vector("spacing", spacing, ndim)
    origin = _check_vector("probe_origin", probe_origin, ndim)
    direction = _check_vector("probe_direction", probe_direction, ndim) * sp  # voxel direction -> mm-space direction
    if np.any(sp <= 0):
        raise ValueError(f"spacing must be positive (mm per voxel), got {spacing!r}")
    if np.linalg.norm(direction) < 1e-12:
        raise ValueError(f"probe_direction must be a non-zero vector, got {probe_direction!r}")
    if not 0.0 < float(fan_angle_deg) < 180.0:
        raise ValueError(f"fan_angle_deg must be in (0, 180) degrees, got {fan_angle_deg!r}")
    axis = direction / np.linalg.norm(direction)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    offset = np.stack([(g - o) * s for g, o, s in zip(grids, origin, sp)])  # (ndim, *shape) mm
    depth = np.sqrt((offset**2).sum(0))
    if depth_mm is None:
        corners = np.array(np.meshgrid(*[[0.0, n - 1.0] for n in shape], indexing="ij")).reshape(ndim, -1).T
        depth_mm = float(np.max(np.linalg.norm((corners - origin) * sp, axis=1)))
    elif not (math.isfinite(float(depth_mm)) and float(depth_mm) > 0):
        raise ValueError(f"depth_mm must be a positive number of mm or None, got {depth_mm!r}")
    along = np.tensordot(axis, offset, axes=1)
    basis = _perpendicular_basis(axis)
    angles = np.stack([np.arctan2(np.tensordot(b, offset, axes=1), along) for b in basis])
    cos_to_axis = along / np.maximum(depth, 1e-9)
    fov = (cos_to_axis >= math.cos(math.radians(fan_angle_deg) / 2.0) - 1e-9) & (depth <= float(depth_mm))
    fov |= depth < 1e-9  # the probe origin itself
    unit = offset / np.maximum(depth, 1e-9)
    return {"depth": depth, "angles": angles, "fov": fov, "unit": unit, "depth_mm": float(depth_mm), "axis": axis}


def _speckle(shape: Sequence[int], sigma_vox: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rayleigh-distributed multiplicative speckle with mean 1: |smoothed complex Gaussian|."""
    re = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    im = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    amp = np.sqrt(re**2 + im**2)
    return amp / max(float(amp.mean()), 1e-12)


def _cumulative_along_rays(
    density: np.ndarray, sp: np.ndarray, origin: np.ndarray, geom: dict[str, Any], fan_angle_deg: float
) -> np.ndarray:
    """``int_0^r density ds`` along the ray from the probe to each voxel (``density`` per mm; result unit-free).

    The integral is taken on a polar (range x lateral angles) grid and sampled back at each voxel, which is far
    cheaper than marching one ray per voxel. The voxel's own sample is excluded (the shadow starts behind it).
    """
    ndim = density.ndim
    depth_mm = float(geom["depth_mm"])
    axis = np.asarray(geom["axis"])
    basis = _perpendicular_basis(axis)
    step = float(sp.min())
    n_r = int(math.ceil(depth_mm / step)) + 2
    half = math.radians(fan_angle_deg) / 2.0
    n_a = int(np.clip(math.ceil(2 * half * depth_mm / step), 16, 160 if ndim == 2 else 96))
    r = np.arange(n_r) * step
    a = np.linspace(-half, half, n_a)
    if ndim == 2:
        rr, a1 = np.meshgrid(r, a, indexing="ij")
        dirs = axis[:, None, None] + np.tan(a1)[None] * basis[0][:, None, None]
    else:
        rr, a1, a2 = np.meshgrid(r, a, a, indexing="ij")
        dirs = axis[:, None, None, None] + np.tan(a1)[None] * basis[0][(...,) + (None,) * 3]
        dirs = dirs + np.tan(a2)[None] * basis[1][(...,) + (None,) * 3]
    dirs = dirs / np.sqrt((dirs**2).sum(0, keepdims=True))
    pts = origin.reshape((ndim,) + (1,) * ndim) + rr[None] * dirs / sp.reshape((ndim,) + (1,) * ndim)
    polar = ndimage.map_coordinates(density, pts, order=1, mode="constant", cval=0.0)
    cum = np.cumsum(polar, axis=0) * step - polar * step  # exclusive: what lies strictly in front
    r_idx = np.asarray(geom["depth"]) / step
    a_idx = [(ang + half) / (2 * half) * (n_a - 1) for ang in np.asarray(geom["angles"])]
    coords = np.stack([r_idx] + a_idx)
    return ndimage.map_coordinates(cum, coords, order=1, mode="nearest")


def simulate_ultrasound(
    echogenicity: Any,
    spacing: Sequence[float],
    probe_origin: Sequence[float],
    probe_direction: Sequence[float],
    fan_angle_deg: float = 70.0,
    depth_mm: float | None = None,
    attenuation_db_per_mm: float = 0.05,
    speckle_size_mm: float = 1.0,
    boundary_strength: float = 1.0,
    seed: int = 0,
    shadow_strength: float = 1.0,
) -> tuple[Any, Any]:
    """Render an ultrasound-like image of a tissue echogenicity map seen from a point probe.

    Args:
        echogenicity: ``(H, W)`` or ``(H, W, Z)`` non-negative scattering strength (unit-free, typically in
            ``[0, 1]``), numpy array or torch tensor (computed on CPU; the outputs are then torch tensors).
        spacing: voxel size in mm per array axis.
        probe_origin: probe position in voxel coordinates, array-axis order (may lie outside the array).
        probe_direction: beam axis, a vector in voxel array-axis order (scaled by ``spacing`` to mm-space).
        fan_angle_deg: full opening angle of the sector (2D) or cone (3D), in ``(0, 180)`` degrees.
        depth_mm: imaging depth in mm; None reaches the farthest corner of the array.
        attenuation_db_per_mm: round-trip attenuation of the echo amplitude, dB per mm of depth
            (amplitude factor ``10 ** (-attenuation_db_per_mm * depth / 20)``).
        speckle_size_mm: speckle grain size in mm (Gaussian smoothing sigma of the complex field is half of it).
        boundary_strength: gain of the specular reflections, ``boundary_strength * |d echogenicity / d r| * 1 mm``
            with ``r`` the distance along the ray, so interfaces facing the probe are brightest.
        seed: speckle seed; the output is a deterministic function of the inputs and the seed.
        shadow_strength: acoustic shadowing, transmission ``exp(-shadow_strength * TV)`` where ``TV`` is the total
            echogenicity change crossed along the ray before the voxel (strong reflectors cast dark shadows).

    Returns:
        ``(image, fov)``: ``image`` float32 in ``[0, 1]`` (scaled by the 99.5th percentile inside the field of
        view, zero outside), ``fov`` bool mask of the sector/cone within ``depth_mm``; both of the input's shape.
    """
    is_torch = type(echogenicity).__module__.startswith("torch")
    if is_torch:
        import torch

        echo = echogenicity.detach().cpu().double().numpy()
    else:
        echo = np.asarray(echogenicity, dtype=np.float64)
    if echo.ndim not in (2, 3):
        raise ValueError(f"echogenicity must be a 2D (H, W) or 3D (H, W, Z) array, got shape {tuple(echo.shape)}")
    if min(echo.shape) < 2:
        raise ValueError(f"echogenicity must have at least 2 voxels per axis, got shape {tuple(echo.shape)}")
    if not np.all(np.isfinite(echo)) or echo.min() < 0:
        raise ValueError("echogenicity must be finite and non-negative")
    for name, value in (
        ("attenuation_db_per_mm", attenuation_db_per_mm),
        ("boundary_strength", boundary_strength),
        ("shadow_strength", shadow_strength),
    ):
        if not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (math.isfinite(float(speckle_size_mm)) and float(speckle_size_mm) > 0):
        raise ValueError(f"speckle_size_mm must be a positive number of mm, got {speckle_size_mm!r}")
    geom = probe_geometry(echo.shape, spacing, probe_origin, probe_direction, fan_angle_deg, depth_mm)
    sp = np.asarray(spacing, dtype=np.float64)
    origin = np.asarray(probe_origin, dtype=np.float64)
    rng = np.random.default_rng(int(seed))

    speckle = _speckle(echo.shape, 0.5 * float(speckle_size_mm) / sp, rng)
    smooth = ndimage.gaussian_filter(echo, np.maximum(0.5 / sp, 0.5), mode="nearest")
    grad = np.stack(np.gradient(smooth, *sp))  # (ndim, *S) per mm
    radial = np.abs((grad * np.asarray(geom["unit"])).sum(0))  # |d e / d r| per mm
    cumulative = _cumulative_along_rays(radial, sp, origin, geom, fan_angle_deg)
    transmission = np.exp(-float(shadow_strength) * cumulative)
    attenuation = 10.0 ** (-float(attenuation_db_per_mm) * np.asarray(geom["depth"]) / 20.0)
    specular = float(boundary_strength) * radial * 1.0  # 1 mm reference length -> unit-free
    signal = (echo * speckle + specular * (0.5 + 0.5 * speckle)) * attenuation * transmission
    fov = np.asarray(geom["fov"], dtype=bool)
    signal = np.where(fov, signal, 0.0)
    ref = float(np.percentile(signal[fov], 99.5)) if fov.any() else 0.0
    image = np.clip(signal / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(signal)
    image = image.astype(np.float32)
    if is_torch:
        return torch.from_numpy(image), torch.from_numpy(fov)
    return image, fov
