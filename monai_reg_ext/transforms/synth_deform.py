"""Random deformation families and synthetic registration pairs, as MONAI ``Randomizable`` transforms.

Families: a function returning ``(B, D, *S)`` and an array transform returning ``(D, *S)`` each. DDFs follow
``docs/conventions.md``: voxels of the grid, channel ``k`` along array axis ``k``, pull
``warped(x) = img(x + ddf(x))``. Bound on ``max |ddf|`` (voxels) and folding:

- affine incl. large rotations (:func:`random_affine_ddf`, :class:`RandAffineDeformation`): bound
  :func:`affine_displacement_bound`; never folds (``det A > 0``);
- multi-scale smooth (:func:`random_multiscale_ddf`, :class:`RandSmoothDeformation`): bound ``sum`` of the
  per-scale maxima; no folding when diffeomorphic with each maximum ``<=`` its smoothness;
- local bumps (:func:`random_bump_ddf`, :class:`RandBumpDeformation`): bound ``max_displacement``; never folds
  (``||grad u|| <= lipschitz < 1``);
- sliding (:func:`random_sliding_ddf`, :class:`RandSlidingDeformation`): bound ``max_displacement``; no promise at
  the interface (discontinuous tangential motion).

:class:`RandComposeDeformation` composes several (``compose_ddf``); :class:`RandDeformd` warps dictionary keys with
one drawn field; :class:`RandSynthPaird` builds a registration pair (moving/fixed label and image, and the true DDF)
from one label map, SynthMorph-style (Hoffmann et al., IEEE TMI 2022).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import MAX_SEED

from ..spatial import affine_to_ddf, compose_ddf, identity_grid, random_smooth_ddf, warp_image
from .synthesis import _like, _plain, _range

__all__ = [
    "random_affine_ddf",
    "affine_displacement_bound",
    "random_multiscale_ddf",
    "random_bump_ddf",
    "random_sliding_ddf",
    "RandAffineDeformation",
    "RandSmoothDeformation",
    "RandBumpDeformation",
    "RandSlidingDeformation",
    "RandComposeDeformation",
    "RandDeform",
    "RandDeformd",
    "RandSynthPaird",
]


def _size(spatial_size: Sequence[int]) -> tuple[int, ...]:
    """Checked ``(H, W[, Z])`` as ints."""
    size = tuple(int(s) for s in spatial_size)
    if len(size) not in (2, 3) or min(size) < 2:
        raise ValueError(f"spatial_size: expected 2 or 3 entries, each >= 2, got {tuple(spatial_size)}.")
    return size


def _per_axis(value: float | Sequence[float], n: int, name: str) -> list[float]:
    """A non-negative number per axis from a number or a sequence of ``n`` numbers."""
    values = [float(value)] * n if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != n or min(values) < 0:
        raise ValueError(f"{name}: expected a number >= 0 or {n} of them, got {value}.")
    return values


def _uniform(
    lo: float | torch.Tensor, hi: float | torch.Tensor, shape: Sequence[int], g: torch.Generator | None
) -> torch.Tensor:
    """``U(lo, hi)`` samples of ``shape`` (float64) from ``g``."""
    return lo + (hi - lo) * torch.rand(tuple(shape), generator=g, dtype=torch.float64)


def _rotation(angles: torch.Tensor, dims: int) -> torch.Tensor:
    """Rotation matrices ``(B, D, D)`` from angles ``(B, 1)`` (2D) or ``(B, 3)`` (3D, about axes 0, 1, 2 in turn)."""
    b = angles.shape[0]
    if dims == 2:
        c, s = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    rot = torch.eye(3, dtype=angles.dtype).expand(b, 3, 3)
    for axis in range(3):
        i, j = [k for k in range(3) if k != axis]
        c, s = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
        r = torch.eye(3, dtype=angles.dtype).repeat(b, 1, 1)
        r[:, i, i], r[:, i, j], r[:, j, i], r[:, j, j] = c, -s, s, c
        rot = r @ rot
    return rot


def random_affine_ddf(
    spatial_size: Sequence[int],
    rotate_range: float | Sequence[float] = math.pi / 12,
    scale_range: float | Sequence[float] = 0.1,
    shear_range: float | Sequence[float] = 0.0,
    translate_range: float | Sequence[float] = 0.0,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random affine DDFs about the grid centre: ``p -> R S H (p - c) + c + t``.

    Rotation angles ``~ U(-r_k, r_k)`` about each axis (3D: axes 0, 1, 2 in turn; 2D: one angle, ``rotate_range``'s
    first value), up to ``pi`` (large rotations); scales ``1 + U(-s_k, s_k)`` (``s_k < 1``, so ``det > 0``: no
    folding); shears: the off-diagonal entries of the upper-triangular ``H`` ``~ U(-h, h)``; translations
    ``~ U(-t_k, t_k)`` voxels.

    Args:
        spatial_size: ``(H, W[, Z])``.
        rotate_range: radians, one number or one per rotation (3 in 3D, 1 in 2D).
        scale_range: one number or one per axis, each in ``[0, 1)``.
        shear_range: one number or one per off-diagonal entry (3 in 3D, 1 in 2D).
        translate_range: voxels, one number or one per axis.
        batch_size: number of fields ``B``.
        generator: CPU ``torch.Generator`` (torch's global RNG when ``None``).

    Returns:
        DDF ``(B, D, *spatial_size)`` ``float32``, voxels; bounded by :func:`affine_displacement_bound`.
    """
    size = _size(spatial_size)
    dims = len(size)
    n_rot = 1 if dims == 2 else 3
    rot = torch.tensor(_per_axis(rotate_range, n_rot, "rotate_range"), dtype=torch.float64)
    scale = torch.tensor(_per_axis(scale_range, dims, "scale_range"), dtype=torch.float64)
    shear = torch.tensor(_per_axis(shear_range, n_rot, "shear_range"), dtype=torch.float64)
    trans = torch.tensor(_per_axis(translate_range, dims, "translate_range"), dtype=torch.float64)
    if float(scale.max()) >= 1:
        raise ValueError(f"scale_range: expected values in [0, 1), got {scale_range}.")
    rotation = _rotation(_uniform(-rot, rot, (batch_size, n_rot), generator), dims)
    s = torch.diag_embed(1 + _uniform(-scale, scale, (batch_size, dims), generator))
    h = torch.eye(dims, dtype=torch.float64).repeat(batch_size, 1, 1)
    rows, cols = torch.triu_indices(dims, dims, offset=1)
    h[:, rows, cols] = _uniform(-shear, shear, (batch_size, n_rot), generator)
    a = rotation @ s @ h
    centre = torch.tensor([(n - 1) / 2 for n in size], dtype=torch.float64)
    t = centre - a @ centre + _uniform(-trans, trans, (batch_size, dims), generator)
    theta = torch.cat([a, t[..., None]], dim=-1).float()
    return affine_to_ddf(theta, size)


def affine_displacement_bound(
    spatial_size: Sequence[int],
    rotate_range: float | Sequence[float],
    scale_range: float | Sequence[float],
    shear_range: float | Sequence[float],
    translate_range: float | Sequence[float],
) -> float:
    """Upper bound (voxels) on ``max |ddf|`` of :func:`random_affine_ddf` with these ranges.

    ``|u(p)| = |(A - I)(p - c) + t'| <= ||A - I|| r + |t'|`` with ``r`` the half diagonal of the grid,
    ``||A - I|| <= ||R - I|| + ||S H - I||``, ``||R - I|| = 2 sin(angle / 2)`` (angle ``<= sum`` of the axis angles,
    capped at ``pi``) and ``||S H - I|| <= max s + (1 + max s) h sqrt(#shears)``.
    """
    size = _size(spatial_size)
    dims = len(size)
    n_rot = 1 if dims == 2 else 3
    angle = min(sum(_per_axis(rotate_range, n_rot, "rotate_range")), math.pi)
    s = max(_per_axis(scale_range, dims, "scale_range"))
    h = max(_per_axis(shear_range, n_rot, "shear_range"))
    t = math.sqrt(sum(v * v for v in _per_axis(translate_range, dims, "translate_range")))
    r = 0.5 * math.sqrt(sum((n - 1) ** 2 for n in size))
    return (2 * math.sin(angle / 2) + s + (1 + s) * h * math.sqrt(n_rot)) * r + t


def random_multiscale_ddf(
    spatial_size: Sequence[int],
    max_displacement: float | Sequence[float] = (2.0, 4.0),
    smoothness: float | Sequence[float] = (4.0, 12.0),
    diffeomorphic: bool = True,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Multi-scale smooth random DDFs: one :func:`~monai_reg_ext.spatial.random_smooth_ddf` per scale, composed.

    Scale ``k`` has Gaussian smoothness ``smoothness[k]`` voxels and a maximum displacement ``~ U(0,
    max_displacement[k])``; the fields are composed finest first (:func:`~monai_reg_ext.spatial.compose_ddf`).
    Bound: ``max |ddf| <= sum(max_displacement)`` (linear interpolation does not increase the maximum norm). With
    ``diffeomorphic`` and each ``max_displacement[k] <= smoothness[k]`` the Jacobian determinant stays positive
    (each field is diffeomorphic, and so is their composition).

    Args:
        spatial_size: ``(H, W[, Z])``.
        max_displacement: the largest maximum displacement of each scale, voxels (one number per scale).
        smoothness: Gaussian sigma of each scale, voxels (same length).
        diffeomorphic: integrate each scale as a stationary velocity field.
        batch_size: number of fields ``B``.
        generator: CPU ``torch.Generator``.

    Returns:
        DDF ``(B, D, *spatial_size)`` ``float32``, voxels.
    """
    size = _size(spatial_size)
    maxima = [float(max_displacement)] if isinstance(max_displacement, (int, float)) else list(max_displacement)
    sigmas = [float(smoothness)] if isinstance(smoothness, (int, float)) else list(smoothness)
    if len(maxima) != len(sigmas) or not maxima or min(maxima) < 0 or min(sigmas) <= 0:
        raise ValueError(
            "max_displacement, smoothness: expected one maximum >= 0 and one smoothness > 0 per scale, "
            f"got {max_displacement} and {smoothness}."
        )
    out = []
    for _ in range(int(batch_size)):
        ddf = None
        for m, sigma in zip(maxima, sigmas):
            magnitude = float(m * torch.rand((), generator=generator, dtype=torch.float64))
            field = random_smooth_ddf(size, magnitude, sigma, diffeomorphic=diffeomorphic, generator=generator)
            ddf = field if ddf is None else compose_ddf(ddf, field)
        out.append(ddf)
    return torch.cat(out, dim=0)


def random_bump_ddf(
    spatial_size: Sequence[int],
    num_bumps: int | Sequence[int] = (1, 4),
    radius: float | Sequence[float] = (4.0, 12.0),
    max_displacement: float = 4.0,
    lipschitz: float = 0.5,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Local Gaussian bumps: ``u(x) = sum_i a_i v_i exp(-|x - c_i|^2 / (2 r_i^2))``.

    ``n ~ U{num_bumps}`` bumps per field, centres ``c_i`` uniform on the grid, radii ``r_i ~ U(radius)`` voxels,
    directions ``v_i`` uniform on the sphere, amplitudes ``a_i ~ U(0, max_displacement)``. The field is then scaled
    down (never up) so that ``max |u| <= max_displacement`` and ``sum_i a_i e^{-1/2} / r_i <= lipschitz``; that
    sum bounds ``||grad u||``, so with ``lipschitz < 1`` the map ``x + u(x)`` never folds (``det(I + grad u) > 0``).

    Args:
        spatial_size: ``(H, W[, Z])``.
        num_bumps: number of bumps, or an inclusive range ``(lo, hi)``.
        radius: Gaussian radius in voxels, or a range.
        max_displacement: bound on ``max |u|``, voxels.
        lipschitz: bound on the spectral norm of ``grad u`` (``< 1`` for no folding).
        batch_size: number of fields ``B``.
        generator: CPU ``torch.Generator``.

    Returns:
        DDF ``(B, D, *spatial_size)`` ``float32``, voxels.
    """
    size = _size(spatial_size)
    dims = len(size)
    lo, hi = (int(num_bumps), int(num_bumps)) if isinstance(num_bumps, int) else (int(v) for v in num_bumps)
    r_lo, r_hi = _range(radius, "radius", low=1e-6)
    if not 0 <= lo <= hi or max_displacement < 0 or lipschitz <= 0:
        raise ValueError(
            f"expected 0 <= num_bumps, max_displacement >= 0, lipschitz > 0; got {num_bumps}, {max_displacement}, "
            f"{lipschitz}."
        )
    axes = [torch.arange(n, dtype=torch.float32) for n in size]
    out = torch.zeros((batch_size, dims, *size))
    for b in range(batch_size):
        n = int(torch.randint(lo, hi + 1, (), generator=generator))
        total_grad = 0.0
        for _ in range(n):
            centre = [float(torch.rand((), generator=generator)) * (s - 1) for s in size]
            r = float(_uniform(r_lo, r_hi, (), generator))
            v = torch.randn(dims, generator=generator)
            a = float(torch.rand((), generator=generator)) * max_displacement
            profile = [torch.exp(-((x - c) ** 2) / (2 * r * r)) for x, c in zip(axes, centre)]
            bump = profile[0][:, None] * profile[1][None, :]
            if dims == 3:
                bump = bump[..., None] * profile[2][None, None, :]
            out[b] += (a * v / v.norm().clamp_min(1e-12)).reshape(dims, *([1] * dims)) * bump
            total_grad += a * math.exp(-0.5) / r
        peak = float(out[b].pow(2).sum(0).sqrt().max())
        factor = min(1.0, lipschitz / max(total_grad, 1e-12), max_displacement / max(peak, 1e-12))
        out[b] *= factor
    return out


def random_sliding_ddf(
    spatial_size: Sequence[int],
    max_displacement: float = 4.0,
    interface_amplitude: float = 4.0,
    interface_smoothness: float = 12.0,
    transition: float = 1.0,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sliding motion: the two sides of a smooth interface move tangentially in opposite directions.

    The interface is ``phi(x) = n . (x - c) + h(x) = 0``: a random unit normal ``n``, a centre ``c`` in the middle
    half of the grid and a smooth height ``h`` (:func:`~monai_reg_ext.spatial.random_smooth_ddf`'s first channel, max
    ``interface_amplitude`` voxels, smoothness ``interface_smoothness``). With ``w`` a random direction projected on
    the local tangent plane (unit ``t(x)``, ``t . grad phi = 0``), ``a ~ U(0, max_displacement)`` and ``beta ~ U(0,
    1)``: ``u(x) = a (sigmoid(phi(x) / transition) - beta) t(x)``, so the sides move by ``(1 - beta) a`` and
    ``-beta a`` along ``t``: relative sliding ``a``, ``max |u| <= max_displacement``. ``transition = 0`` gives a
    sharp (discontinuous) interface. Away from the interface the Jacobian determinant is close to 1; at it the field
    shears (exactly 1 in the continuum for a flat interface); no fold-free promise is made.

    Args:
        spatial_size: ``(H, W[, Z])``.
        max_displacement: bound on ``max |u|`` (and on the relative sliding), voxels.
        interface_amplitude: maximum height of the interface's deviation from a plane, voxels (0: flat).
        interface_smoothness: Gaussian smoothness of that deviation, voxels.
        transition: width of the interface in voxels (0: a step).
        batch_size: number of fields ``B``.
        generator: CPU ``torch.Generator``.

    Returns:
        DDF ``(B, D, *spatial_size)`` ``float32``, voxels.
    """
    size = _size(spatial_size)
    dims = len(size)
    if max_displacement < 0 or interface_amplitude < 0 or interface_smoothness <= 0 or transition < 0:
        raise ValueError(
            "expected max_displacement >= 0, interface_amplitude >= 0, interface_smoothness > 0, transition >= 0; "
            f"got {max_displacement}, {interface_amplitude}, {interface_smoothness}, {transition}."
        )
    grid = identity_grid(size)  # (D, *S)
    out = []
    for _ in range(batch_size):
        normal = torch.randn(dims, generator=generator)
        normal = normal / normal.norm().clamp_min(1e-12)
        centre = torch.tensor([(0.25 + 0.5 * float(torch.rand((), generator=generator))) * (s - 1) for s in size])
        height = random_smooth_ddf(size, interface_amplitude, interface_smoothness, diffeomorphic=False,
                                   generator=generator)[0, 0]  # fmt: skip
        phi = torch.einsum("d,d...->...", normal, grid - centre.reshape(dims, *([1] * dims))) + height
        grad = torch.stack(torch.gradient(phi), dim=0)
        m = grad / grad.norm(dim=0, keepdim=True).clamp_min(1e-6)
        w = torch.randn(dims, generator=generator).reshape(dims, *([1] * dims))
        tangent = w - (w * m).sum(0, keepdim=True) * m
        tangent = tangent / tangent.norm(dim=0, keepdim=True).clamp_min(1e-6)
        a = float(torch.rand((), generator=generator)) * max_displacement
        beta = float(torch.rand((), generator=generator))
        side = torch.sigmoid(phi / transition) if transition > 0 else (phi > 0).float()
        out.append((a * (side - beta) * tangent)[None])
    return torch.cat(out, dim=0).float()


class _RandDeformation(Randomizable):
    """Base of the deformation transforms: ``__call__(spatial_size) -> (D, *S)`` drawn from one seed per call.

    Subclasses implement :meth:`sample` (batched, from a ``torch.Generator``) and :meth:`max_displacement`, and set
    :attr:`fold_free` (``True`` when the Jacobian determinant is promised to stay positive).
    """

    fold_free: bool = False

    def __init__(self, spatial_size: Sequence[int] | None = None) -> None:
        self.spatial_size = None if spatial_size is None else _size(spatial_size)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        """Draw the seed of the next field."""
        self._seed = int(self.R.randint(MAX_SEED))

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *spatial_size)`` fields (voxels) from ``generator``."""
        raise NotImplementedError

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """The stated bound on ``max |ddf|`` (voxels) on a grid ``spatial_size``."""
        raise NotImplementedError

    def __call__(self, spatial_size: Sequence[int] | None = None, randomize: bool = True) -> torch.Tensor:
        """A DDF ``(D, *S)`` ``float32`` in voxels (``S`` = ``spatial_size`` or the default grid)."""
        if randomize:
            self.randomize()
        size = spatial_size if spatial_size is not None else self.spatial_size
        if size is None:
            raise ValueError(f"{type(self).__name__}: expected a spatial_size (none given here or at construction).")
        return self.sample(_size(size), torch.Generator().manual_seed(self._seed))[0]


class RandAffineDeformation(_RandDeformation):
    """Random affine DDF about the grid centre (:func:`random_affine_ddf`); never folds (``det A > 0``).

    Args:
        rotate_range, scale_range, shear_range, translate_range: as :func:`random_affine_ddf` (radians, fractions,
            voxels); ``rotate_range`` up to ``pi`` for large rotations.
        spatial_size: default grid.
    """

    fold_free = True

    def __init__(
        self,
        rotate_range: float | Sequence[float] = math.pi / 12,
        scale_range: float | Sequence[float] = 0.1,
        shear_range: float | Sequence[float] = 0.0,
        translate_range: float | Sequence[float] = 0.0,
        spatial_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spatial_size)
        self.ranges = (rotate_range, scale_range, shear_range, translate_range)

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *S)`` affine fields."""
        return random_affine_ddf(spatial_size, *self.ranges, batch_size=batch_size, generator=generator)

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """:func:`affine_displacement_bound` of the ranges."""
        return affine_displacement_bound(spatial_size, *self.ranges)


class RandSmoothDeformation(_RandDeformation):
    """Multi-scale smooth random DDF (:func:`random_multiscale_ddf`).

    Fold-free (:attr:`fold_free`) when ``diffeomorphic`` and each scale's maximum is ``<= `` its smoothness.

    Args:
        max_displacement, smoothness, diffeomorphic: as :func:`random_multiscale_ddf`.
        spatial_size: default grid.
    """

    def __init__(
        self,
        max_displacement: float | Sequence[float] = (2.0, 4.0),
        smoothness: float | Sequence[float] = (4.0, 12.0),
        diffeomorphic: bool = True,
        spatial_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spatial_size)
        self.maxima = (
            [float(max_displacement)] if isinstance(max_displacement, (int, float)) else list(max_displacement)
        )
        self.sigmas = [float(smoothness)] if isinstance(smoothness, (int, float)) else list(smoothness)
        if len(self.maxima) != len(self.sigmas):
            raise ValueError(f"expected one smoothness per max_displacement, got {max_displacement}, {smoothness}.")
        self.diffeomorphic = bool(diffeomorphic)
        self.fold_free = self.diffeomorphic and all(m <= s for m, s in zip(self.maxima, self.sigmas))

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *S)`` multi-scale fields."""
        return random_multiscale_ddf(spatial_size, self.maxima, self.sigmas, self.diffeomorphic, batch_size, generator)

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """``sum(max_displacement)``."""
        return float(sum(self.maxima))


class RandBumpDeformation(_RandDeformation):
    """Local Gaussian bumps (:func:`random_bump_ddf`); fold-free when ``lipschitz < 1``.

    Args:
        num_bumps, radius, max_displacement, lipschitz: as :func:`random_bump_ddf`.
        spatial_size: default grid.
    """

    def __init__(
        self,
        num_bumps: int | Sequence[int] = (1, 4),
        radius: float | Sequence[float] = (4.0, 12.0),
        max_displacement: float = 4.0,
        lipschitz: float = 0.5,
        spatial_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spatial_size)
        self.kwargs = {"num_bumps": num_bumps, "radius": radius, "max_displacement": float(max_displacement),
                       "lipschitz": float(lipschitz)}  # fmt: skip
        self.fold_free = float(lipschitz) < 1.0

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *S)`` bump fields."""
        return random_bump_ddf(spatial_size, **self.kwargs, batch_size=batch_size, generator=generator)

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """``max_displacement``."""
        return self.kwargs["max_displacement"]


class RandSlidingDeformation(_RandDeformation):
    """Sliding motion along a smooth interface (:func:`random_sliding_ddf`); no fold-free promise.

    Args:
        max_displacement, interface_amplitude, interface_smoothness, transition: as :func:`random_sliding_ddf`.
        spatial_size: default grid.
    """

    def __init__(
        self,
        max_displacement: float = 4.0,
        interface_amplitude: float = 4.0,
        interface_smoothness: float = 12.0,
        transition: float = 1.0,
        spatial_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spatial_size)
        self.kwargs = {"max_displacement": float(max_displacement), "interface_amplitude": interface_amplitude,
                       "interface_smoothness": interface_smoothness, "transition": transition}  # fmt: skip

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *S)`` sliding fields."""
        return random_sliding_ddf(spatial_size, **self.kwargs, batch_size=batch_size, generator=generator)

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """``max_displacement``."""
        return self.kwargs["max_displacement"]


class RandComposeDeformation(_RandDeformation):
    """Compose deformations of several families: family ``k`` is drawn with probability ``probs[k]``.

    The drawn fields are composed in list order with :func:`~monai_reg_ext.spatial.compose_ddf` (``warp(warp(img,
    first), second)``), except that affine families are always composed last (outermost: the fixed voxel ``x`` is
    first moved affinely, then by the other fields). ``compose_ddf`` resamples the earlier fields with border
    padding; an affine field resampled that way would be flattened outside the grid and fold there, while a local
    field is nearly constant near the border anyway. ``max |ddf| <=`` the sum of the families' bounds; fold-free
    when every family is. When no family is drawn the field is zero (the identity).

    Args:
        deformations: deformation transforms (their :meth:`sample` is used; their own random states are not).
        probs: probability of each family, one number for all or one per family.
        spatial_size: default grid.
    """

    def __init__(
        self,
        deformations: Sequence[_RandDeformation],
        probs: float | Sequence[float] = 1.0,
        spatial_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spatial_size)
        self.deformations = list(deformations)
        self.probs = [float(probs)] * len(self.deformations) if isinstance(probs, (int, float)) else list(probs)
        if len(self.probs) != len(self.deformations) or not all(0.0 <= p <= 1.0 for p in self.probs):
            raise ValueError(f"probs: expected one probability in [0, 1] per deformation, got {probs}.")
        is_affine = [isinstance(d, RandAffineDeformation) for d in self.deformations]
        self._order = [i for i, a in enumerate(is_affine) if not a] + [i for i, a in enumerate(is_affine) if a]
        self.fold_free = all(d.fold_free for d in self.deformations)

    def sample(self, spatial_size: Sequence[int], generator: torch.Generator, batch_size: int = 1) -> torch.Tensor:
        """Draw ``(B, D, *S)`` composed fields."""
        size = _size(spatial_size)
        out = []
        for _ in range(batch_size):
            ddf = torch.zeros((1, len(size), *size))
            drawn = [float(torch.rand((), generator=generator)) < p for p in self.probs]
            for i in self._order:
                if drawn[i]:
                    ddf = compose_ddf(ddf, self.deformations[i].sample(size, generator).to(ddf.dtype))
            out.append(ddf)
        return torch.cat(out, dim=0)

    def max_displacement(self, spatial_size: Sequence[int]) -> float:
        """Sum of the families' bounds."""
        return float(sum(d.max_displacement(spatial_size) for d in self.deformations))


def _modes(mode: str | Sequence[str], keys: Sequence[Hashable]) -> list[str]:
    """One interpolation mode per key."""
    modes = [mode] * len(keys) if isinstance(mode, str) else list(mode)
    if len(modes) != len(keys):
        raise ValueError(f"mode: expected one mode or one per key {tuple(keys)}, got {mode}.")
    return modes


def _warp_one(x: Any, ddf: torch.Tensor, mode: str, padding_mode: str) -> torch.Tensor:
    """Warp ``x`` ``(C, *S)`` with ``ddf`` ``(D, *S)``; integer labels stay integers with ``mode="nearest"``."""
    plain = _plain(x)
    out = warp_image(plain[None], ddf[None].to(plain.device), mode=mode, padding_mode=padding_mode)[0]
    return _like(out, x)


class RandDeform(Randomizable):
    """Warp one tensor with a random DDF drawn by ``deformation`` on its grid (array version of :class:`RandDeformd`).

    ``randomize()`` draws the next field; ``__call__(label, randomize=False)`` after ``__call__(image)`` warps the
    label with the image's field, and :meth:`ddf` returns that field. With the same seed (``set_random_state``),
    ``RandDeform`` and ``RandDeformd`` draw the same fields.

    Args:
        deformation: a deformation transform (e.g. :class:`RandComposeDeformation`); it shares this random state.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (integer label maps).
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.
    """

    def __init__(self, deformation: _RandDeformation, mode: str = "bilinear", padding_mode: str = "border") -> None:
        self.deformation, self.mode, self.padding_mode = deformation, mode, padding_mode
        self._cache: tuple[tuple[int, ...], torch.Tensor] | None = None

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any:
        """Seed this transform and its deformation (one shared stream)."""
        super().set_random_state(seed, state)
        self.deformation.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the seed of the next field."""
        self.deformation.randomize()
        self._cache = None

    def ddf(self, spatial_size: Sequence[int]) -> torch.Tensor:
        """The drawn field ``(D, *spatial_size)`` (voxels, pull)."""
        size = tuple(int(s) for s in spatial_size)
        if self._cache is None or self._cache[0] != size:
            self._cache = (size, self.deformation(size, randomize=False))
        return self._cache[1]

    def __call__(self, img: Any, randomize: bool = True, mode: str | None = None) -> torch.Tensor:
        """Warp ``img`` ``(C, *S)`` with the (new when ``randomize``) field; ``mode`` overrides the default."""
        if randomize:
            self.randomize()
        return _warp_one(img, self.ddf(tuple(img.shape[1:])), mode or self.mode, self.padding_mode)


class RandDeformd(Randomizable, MapTransform):
    """Warp dictionary keys with one random DDF drawn by ``deformation`` on the first key's grid (array version:
    :class:`RandDeform`).

    Args:
        keys: keys to warp, ``(C, *S)`` each on one grid.
        deformation: a deformation transform (e.g. :class:`RandComposeDeformation`).
        mode: ``"bilinear"`` (images) or ``"nearest"`` (integer label maps), one or one per key.
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.
        ddf_key: where to store the drawn DDF ``(D, *S)`` (voxels, pull), or ``None``.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        deformation: _RandDeformation,
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str = "border",
        ddf_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.deformation, self.modes = deformation, _modes(mode, self.keys)
        self.padding_mode, self.ddf_key = padding_mode, ddf_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any:
        """Seed this transform and its deformation."""
        super().set_random_state(seed, state)
        self.deformation.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the seed of the next field."""
        self.deformation.randomize()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` with the keys warped (and the DDF under ``ddf_key``)."""
        d = dict(data)
        self.randomize()
        present = [k for k in self.key_iterator(d)]
        if not present:
            return d
        ddf = self.deformation(tuple(d[present[0]].shape[1:]), randomize=False)
        for key, mode in zip(self.keys, self.modes):
            if key in d:
                d[key] = _warp_one(d[key], ddf, mode, self.padding_mode)
        if self.ddf_key is not None:
            d[self.ddf_key] = ddf
        return d


class RandSynthPaird(RandDeformd):
    """A registration pair from one sample: moving = the source, fixed = the source warped by a random DDF.

    For each source key ``keys[i]``: ``moving_keys[i]`` is a copy of it, ``fixed_keys[i]`` is it warped with the
    drawn DDF (``mode[i]``: ``"nearest"`` for integer label maps, ``"bilinear"`` for images), and ``ddf_key`` holds
    that DDF ``(D, *S)``: the true moving -> fixed transformation in the convention of ``docs/conventions.md``
    (``fixed(x) = moving(x + ddf(x))``), which a registration network should predict. SynthMorph-style use: a label
    map -> pair of label maps -> :class:`~monai_reg_ext.transforms.synthesis.RandLabelToImaged` with independent
    contrasts -> one-hot labels for a Dice loss.

    There is no array version: it writes three outputs (moving, fixed, DDF) from one input; with arrays,
    ``moving = x``, ``fixed = RandDeform(deformation)(x)`` and ``ddf = that.ddf(x.shape[1:])`` give the same pair.

    Args:
        keys: source keys (e.g. ``"label"``).
        deformation: a deformation transform.
        moving_keys: output moving keys, one per source key.
        fixed_keys: output fixed keys, one per source key.
        mode: interpolation per source key.
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.
        ddf_key: output key of the DDF.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        deformation: _RandDeformation,
        moving_keys: KeysCollection = ("moving_label",),
        fixed_keys: KeysCollection = ("fixed_label",),
        mode: str | Sequence[str] = "nearest",
        padding_mode: str = "border",
        ddf_key: str = "ddf",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, deformation, mode, padding_mode, ddf_key, allow_missing_keys)
        self.moving_keys = (moving_keys,) if isinstance(moving_keys, str) else tuple(moving_keys)
        self.fixed_keys = (fixed_keys,) if isinstance(fixed_keys, str) else tuple(fixed_keys)
        if len(self.moving_keys) != len(self.keys) or len(self.fixed_keys) != len(self.keys):
            raise ValueError(
                f"moving_keys, fixed_keys: expected one per key {self.keys}, got {self.moving_keys}, {self.fixed_keys}."
            )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` with the moving and fixed keys and the DDF added (sources kept)."""
        d = dict(data)
        self.randomize()
        present = [k for k in self.key_iterator(d)]
        if not present:
            return d
        ddf = self.deformation(tuple(d[present[0]].shape[1:]), randomize=False)
        for key, moving, fixed, mode in zip(self.keys, self.moving_keys, self.fixed_keys, self.modes):
            if key in d:
                d[moving] = d[key]
                d[fixed] = _warp_one(d[key], ddf, mode, self.padding_mode)
        d[self.ddf_key] = ddf
        return d
