"""Random augmentation of registration samples, usable inside any MONAI ``Compose``.

The moving group (``moving_image`` + ``moving_label``) and the fixed group (``fixed_image`` + ``fixed_label``) each
draw their OWN random transform; an image and its label always share one. Labels are resampled bilinearly, so they
stay in ``[0, 1]`` (keys whose name ends in ``label`` are clamped to ``[0, 1]`` against rounding);
conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandAffined, Randomizable
from monai.utils import MAX_SEED

from ..spatial.random import random_smooth_ddf

__all__ = [
    "MOVING_KEYS",
    "FIXED_KEYS",
    "RandRegistrationAffined",
    "RandSmoothDeformd",
    "RandRegistrationIntensityd",
]

MOVING_KEYS: tuple[str, str] = ("moving_image", "moving_label")
FIXED_KEYS: tuple[str, str] = ("fixed_image", "fixed_label")


class _GroupRandomizable(Randomizable, MapTransform):
    """Base: one independent random stream per key group; ``set_random_state`` seeds each group differently."""

    def __init__(self, groups: Sequence[Sequence[str]], prob: float):
        keys = [k for g in groups for k in g]
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}.")
        self.groups = [tuple(g) for g in groups]
        self.prob = prob

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self._seed_children()
        return self

    def _seed_children(self) -> None:  # overridden when sub-transforms hold their own state
        pass

    def randomize(self, data=None) -> None:
        pass


class RandRegistrationAffined(_GroupRandomizable):
    """Independent random affine per key group, with MONAI's ``RandAffined`` (bilinear for images and labels).

    Args:
        moving_keys: keys sharing the moving transform.
        fixed_keys: keys sharing the fixed transform.
        prob: probability of transforming each group.
        rotate_range: rotation range in radians (MONAI ``RandAffine`` semantics: ``U(-r, r)`` per axis).
        scale_range: scale range (``1 + U(-s, s)`` per axis).
        translate_range: translation range in voxels.
        shear_range: shear range.
        padding_mode: ``"border"`` (default, as the warps), ``"zeros"`` or ``"reflection"``.

    Example:
        >>> aug = RandRegistrationAffined(rotate_range=0.1, scale_range=0.1).set_random_state(0)
        >>> out = aug(sample)  # doctest: +SKIP
    """

    def __init__(
        self,
        moving_keys: Sequence[str] = MOVING_KEYS,
        fixed_keys: Sequence[str] = FIXED_KEYS,
        prob: float = 1.0,
        rotate_range: float | Sequence[float] = 0.1,
        scale_range: float | Sequence[float] = 0.1,
        translate_range: float | Sequence[float] = 0.0,
        shear_range: float | Sequence[float] | None = None,
        padding_mode: str = "border",
    ):
        super().__init__([moving_keys, fixed_keys], prob)
        self.affines = [
            RandAffined(
                keys=list(g),
                prob=prob,
                rotate_range=rotate_range,
                scale_range=scale_range,
                translate_range=translate_range,
                shear_range=shear_range,
                mode="bilinear",
                padding_mode=padding_mode,
                allow_missing_keys=True,
            )
            for g in self.groups
        ]
        self._seed_children()

    def _seed_children(self) -> None:
        for t in self.affines:
            t.set_random_state(seed=int(self.R.randint(MAX_SEED)))

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for t in self.affines:
            d = dict(t(d))
        return _clip_labels(d, self.keys)


def _clip_labels(d: dict, keys: Sequence[str]) -> dict:
    """Clamp label keys (names ending in ``label``) to [0, 1]: interpolation weights can sum to 1 + 1e-7."""
    for k in keys:
        if str(k).endswith("label") and k in d:
            d[k] = d[k].clamp(0.0, 1.0)
    return d


def _warp(x: torch.Tensor, ddf: torch.Tensor, padding_mode: str) -> torch.Tensor:
    from ..spatial import warp_image

    plain = x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)
    out = warp_image(plain[None].float(), ddf.to(plain.device), mode="bilinear", padding_mode=padding_mode)[0]
    if isinstance(x, MetaTensor):
        return MetaTensor(out, meta=x.meta, applied_operations=list(x.applied_operations))
    return out


class RandSmoothDeformd(_GroupRandomizable):
    """Independent random smooth deformation per key group (:func:`~monai_reg_ext.spatial.random_smooth_ddf`).

    Each group draws one DDF on its own grid (the image's array shape) and warps the image and its label with it
    (bilinear, ``warp_image``). The maximum displacement of each draw is ``max_displacement`` voxels, or uniform
    in ``[lo, hi]`` when a pair is given.

    Args:
        moving_keys: keys sharing the moving deformation (the first one sets the grid).
        fixed_keys: keys sharing the fixed deformation.
        prob: probability of deforming each group.
        max_displacement: maximum displacement norm in voxels, or a ``(lo, hi)`` range.
        smoothness: Gaussian sigma of the noise field in voxels.
        diffeomorphic: integrate by scaling and squaring (positive Jacobian for moderate displacements).
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.

    Example:
        >>> aug = RandSmoothDeformd(max_displacement=(0.0, 4.0), smoothness=8.0).set_random_state(0)
        >>> out = aug(sample)  # doctest: +SKIP
    """

    def __init__(
        self,
        moving_keys: Sequence[str] = MOVING_KEYS,
        fixed_keys: Sequence[str] = FIXED_KEYS,
        prob: float = 1.0,
        max_displacement: float | tuple[float, float] = 4.0,
        smoothness: float = 8.0,
        diffeomorphic: bool = True,
        padding_mode: str = "border",
    ):
        super().__init__([moving_keys, fixed_keys], prob)
        lo, hi = (0.0, 0.0)
        if isinstance(max_displacement, (int, float)):
            lo = hi = float(max_displacement)
        else:
            lo, hi = (float(v) for v in max_displacement)
        if not 0 <= lo <= hi:
            raise ValueError(f"max_displacement must be >= 0 or a range 0 <= lo <= hi, got {max_displacement}.")
        if not smoothness > 0:
            raise ValueError(f"smoothness must be > 0 voxels, got {smoothness}.")
        self.displacement_range = (lo, hi)
        self.smoothness = float(smoothness)
        self.diffeomorphic = diffeomorphic
        self.padding_mode = padding_mode

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for group in self.groups:
            present = [k for k in group if k in d]
            # draw for every group, present or not, so the random stream does not depend on the keys
            apply = self.R.rand() < self.prob
            magnitude = self.R.uniform(*self.displacement_range)
            seed = int(self.R.randint(MAX_SEED))
            if not present or not apply or magnitude == 0:
                continue
            spatial = tuple(d[present[0]].shape[1:])
            ddf = random_smooth_ddf(spatial, magnitude, self.smoothness, seed=seed, diffeomorphic=self.diffeomorphic)
            for k in present:
                if tuple(d[k].shape[1:]) != spatial:
                    raise ValueError(
                        f"'{k}' has spatial shape {tuple(d[k].shape[1:])}, expected {spatial} as '{present[0]}'."
                    )
                d[k] = _warp(d[k], ddf, self.padding_mode)
        return _clip_labels(d, self.keys)


class RandRegistrationIntensityd(Randomizable, MapTransform):
    """Independent random intensity changes per image: bias field, gamma, Gaussian noise, then clip to ``[0, 1]``.

    Each image key draws its own parameters (moving and fixed are augmented independently); labels are untouched.

    Args:
        keys: image keys.
        prob: probability of augmenting each image.
        gamma_range: ``log(gamma)`` is drawn uniformly in ``log`` of this range; ``x -> x ** gamma``.
        noise_std: standard deviation of the additive Gaussian noise is ``U(0, noise_std)``.
        bias_field_coeff: the multiplicative bias field is ``exp(c * p(x))`` with ``p`` a random linear+quadratic
            polynomial of the normalised coordinates and ``c = bias_field_coeff``; ``0`` disables it.
    """

    def __init__(
        self,
        keys: Sequence[str] = ("moving_image", "fixed_image"),
        prob: float = 1.0,
        gamma_range: tuple[float, float] = (0.7, 1.5),
        noise_std: float = 0.02,
        bias_field_coeff: float = 0.2,
        allow_missing_keys: bool = True,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}.")
        if not 0 < gamma_range[0] <= gamma_range[1]:
            raise ValueError(f"gamma_range must satisfy 0 < lo <= hi, got {gamma_range}.")
        self.prob, self.gamma_range, self.noise_std, self.bias = prob, gamma_range, noise_std, bias_field_coeff

    def randomize(self, data=None) -> None:
        pass

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.keys:  # draw for every key so the random stream does not depend on which keys exist
            apply = self.R.rand() < self.prob
            log_gamma = self.R.uniform(np.log(self.gamma_range[0]), np.log(self.gamma_range[1]))
            std = self.R.uniform(0, self.noise_std)
            seed = int(self.R.randint(MAX_SEED))
            if key not in d or not apply:
                if key not in d and not self.allow_missing_keys:
                    raise KeyError(f"key '{key}' not found in the sample.")
                continue
            img = d[key]
            x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
            g = torch.Generator().manual_seed(seed)
            dims = x.ndim - 1
            if self.bias:
                coords = torch.meshgrid(*[torch.linspace(-1, 1, s) for s in x.shape[1:]], indexing="ij")
                c = torch.rand(2 * dims, generator=g) * 2 - 1
                poly = sum(c[i] * coords[i] + c[dims + i] * coords[i] ** 2 for i in range(dims))
                x = x * torch.exp(self.bias * poly).to(x)
            x = x.clamp(0, 1) ** float(np.exp(log_gamma))
            if std > 0:
                x = x + std * torch.randn(x.shape, generator=g).to(x)
            x = x.clamp(0, 1)
            d[key] = (
                MetaTensor(x, meta=img.meta, applied_operations=list(img.applied_operations))
                if isinstance(img, MetaTensor)
                else x
            )
        return d
