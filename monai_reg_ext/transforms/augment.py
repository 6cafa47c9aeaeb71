"""Random augmentation of registration samples, as MONAI array and dictionary transforms (any ``Compose``).

Array transforms (:class:`RandRegistrationAffine`, :class:`RandSmoothDeform`, :class:`RandRegistrationIntensity`)
transform one channel-first tensor ``(C, *S)``; ``randomize()`` draws the parameters and ``__call__(img,
randomize=False)`` re-applies the last draw (to an image and then its label). The dictionary versions wrap them in the
MONAI way (``keys``, ``allow_missing_keys``, ``prob``) and share one random state with them (``set_random_state``).

Key groups: by default the moving group (``moving_image`` + ``moving_label``) and the fixed group (``fixed_image`` +
``fixed_label``) each draw their OWN random transform; an image and its label always share one. ``keys=`` gives one
group instead (every key shares one draw, as MONAI's ``RandAffined``). Labels are resampled bilinearly, so they stay
in ``[0, 1]`` (keys whose name ends in ``label`` are clamped to ``[0, 1]`` against rounding); conventions:
``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandAffine, Randomizable
from monai.utils import MAX_SEED

from ..spatial.random import random_smooth_ddf

__all__ = [
    "MOVING_KEYS",
    "FIXED_KEYS",
    "RandRegistrationAffine",
    "RandRegistrationAffined",
    "RandSmoothDeform",
    "RandSmoothDeformd",
    "RandRegistrationIntensity",
    "RandRegistrationIntensityd",
]

MOVING_KEYS: tuple[str, str] = ("moving_image", "moving_label")
FIXED_KEYS: tuple[str, str] = ("fixed_image", "fixed_label")


def _check_prob(prob: float) -> float:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob}.")
    return float(prob)


def _as_keys(keys: KeysCollection) -> tuple[Hashable, ...]:
    return (keys,) if isinstance(keys, (str, int)) else tuple(keys)


class _GroupRandomizable(Randomizable, MapTransform):
    """Base of the dictionary augmentations: key groups, one random stream shared with the array transform.

    ``keys`` (one group) or ``moving_keys`` and ``fixed_keys`` (two independent groups, the default).
    ``allow_missing_keys=None`` is ``False`` when ``keys`` is given (MONAI's default) and ``True`` for the default
    moving/fixed groups, whose label keys are optional (unlabelled samples).
    """

    array: Randomizable

    def __init__(
        self,
        keys: KeysCollection | None,
        moving_keys: KeysCollection,
        fixed_keys: KeysCollection,
        allow_missing_keys: bool | None,
    ):
        groups = [_as_keys(moving_keys), _as_keys(fixed_keys)] if keys is None else [_as_keys(keys)]
        allow = keys is None if allow_missing_keys is None else bool(allow_missing_keys)
        MapTransform.__init__(self, [k for g in groups for k in g], allow_missing_keys=allow)
        self.groups = groups

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and the array transform it drives (one shared stream)."""
        super().set_random_state(seed, state)
        self.array.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the next transform (of one group) in the array transform."""
        self.array.randomize(data)

    def _present(self, d: Mapping[Hashable, Any], group: Sequence[Hashable]) -> list[Hashable]:
        missing = [k for k in group if k not in d]
        if missing and not self.allow_missing_keys:
            raise KeyError(f"{type(self).__name__}: key {missing[0]!r} not found in the sample (allow_missing_keys).")
        return [k for k in group if k in d]


class RandRegistrationAffine(RandAffine):
    """MONAI's ``RandAffine`` with the registration defaults: bilinear, ``"border"`` padding, one random stream.

    Invertible (MONAI ``InvertibleTransform``). ``set_random_state`` seeds the transform and its affine grid with ONE
    ``RandomState`` (MONAI seeds two copies) and a call draws once, so :class:`RandRegistrationAffined`, sharing that
    state, draws the same transforms; ``__call__(label, randomize=False)`` re-applies the last draw.

    Args:
        prob: probability of transforming.
        rotate_range: rotation range in radians (``U(-r, r)`` per axis).
        scale_range: scale range (``1 + U(-s, s)`` per axis).
        translate_range: translation range in voxels.
        shear_range: shear range.
        padding_mode: ``"border"`` (default, as the warps), ``"zeros"`` or ``"reflection"``.
        mode: interpolation, ``"bilinear"`` (images, soft labels) or ``"nearest"``.
    """

    def __init__(
        self,
        prob: float = 1.0,
        rotate_range: float | Sequence[float] = 0.1,
        scale_range: float | Sequence[float] = 0.1,
        translate_range: float | Sequence[float] = 0.0,
        shear_range: float | Sequence[float] | None = None,
        padding_mode: str = "border",
        mode: str = "bilinear",
    ):
        super().__init__(
            prob=_check_prob(prob),
            rotate_range=rotate_range,
            scale_range=scale_range,
            translate_range=translate_range,
            shear_range=shear_range,
            mode=mode,
            padding_mode=padding_mode,
        )
        self.rand_affine_grid.set_random_state(state=self.R)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed the transform and its affine grid with one shared ``RandomState``."""
        Randomizable.set_random_state(self, seed, state)
        self.rand_affine_grid.set_random_state(state=self.R)
        return self

    def __call__(  # type: ignore[override]
        self,
        img: torch.Tensor,
        spatial_size: Sequence[int] | int | None = None,
        mode: str | None = None,
        padding_mode: str | None = None,
        randomize: bool = True,
        grid: torch.Tensor | None = None,
        lazy: bool | None = None,
    ) -> torch.Tensor:
        """As MONAI's ``RandAffine``, but one draw per call (MONAI draws the grid's parameters twice)."""
        if randomize:
            self.randomize()
        return super().__call__(img, spatial_size, mode, padding_mode, False, grid, lazy)


class RandRegistrationAffined(_GroupRandomizable):
    """Independent random affine per key group (:class:`RandRegistrationAffine`, bilinear for images and labels).

    Args:
        keys: keys sharing ONE transform; ``None`` (default): the two groups ``moving_keys`` and ``fixed_keys``.
        prob: probability of transforming each group.
        rotate_range, scale_range, translate_range, shear_range, padding_mode: as :class:`RandRegistrationAffine`.
        moving_keys: keys sharing the moving transform (when ``keys`` is ``None``).
        fixed_keys: keys sharing the fixed transform (when ``keys`` is ``None``).
        allow_missing_keys: skip absent keys; ``None``: ``False`` with ``keys``, ``True`` for the default groups.

    Example:
        >>> aug = RandRegistrationAffined(rotate_range=0.1, scale_range=0.1).set_random_state(0)
        >>> out = aug(sample)  # doctest: +SKIP
    """

    def __init__(
        self,
        keys: KeysCollection | None = None,
        prob: float = 1.0,
        rotate_range: float | Sequence[float] = 0.1,
        scale_range: float | Sequence[float] = 0.1,
        translate_range: float | Sequence[float] = 0.0,
        shear_range: float | Sequence[float] | None = None,
        padding_mode: str = "border",
        moving_keys: KeysCollection = MOVING_KEYS,
        fixed_keys: KeysCollection = FIXED_KEYS,
        allow_missing_keys: bool | None = None,
    ):
        super().__init__(keys, moving_keys, fixed_keys, allow_missing_keys)
        self.prob = _check_prob(prob)
        self.array = RandRegistrationAffine(prob, rotate_range, scale_range, translate_range, shear_range, padding_mode)
        self.array.set_random_state(state=self.R)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for group in self.groups:
            present = self._present(d, group)
            self.randomize()  # draw for every group, present or not: the stream does not depend on the keys
            for k in present:
                d[k] = self.array(d[k], randomize=False)
        return _clip_labels(d, self.keys)


def _clip_labels(d: dict, keys: Sequence[Hashable]) -> dict:
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


class RandSmoothDeform(Randomizable):
    """Random smooth deformation of one tensor (:func:`~monai_reg_ext.spatial.random_smooth_ddf` + bilinear warp).

    ``randomize()`` draws whether to deform (``prob``), the maximum displacement (``max_displacement`` voxels, or
    uniform in ``[lo, hi]``) and the field's seed; the field is drawn on the input's grid and cached, so
    ``__call__(label, randomize=False)`` after ``__call__(image)`` warps the label with the image's field.

    Args:
        prob: probability of deforming.
        max_displacement: maximum displacement norm in voxels, or a ``(lo, hi)`` range.
        smoothness: Gaussian sigma of the noise field in voxels.
        diffeomorphic: integrate by scaling and squaring (positive Jacobian for moderate displacements).
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"``.
    """

    def __init__(
        self,
        prob: float = 1.0,
        max_displacement: float | tuple[float, float] = 4.0,
        smoothness: float = 8.0,
        diffeomorphic: bool = True,
        padding_mode: str = "border",
    ):
        self.prob = _check_prob(prob)
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
        self._apply, self._magnitude, self._seed = False, 0.0, 0
        self._cache: tuple[tuple[int, ...], torch.Tensor] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw: deform or not, the maximum displacement, the field's seed."""
        self._apply = bool(self.R.rand() < self.prob)
        self._magnitude = float(self.R.uniform(*self.displacement_range))
        self._seed = int(self.R.randint(MAX_SEED))
        self._cache = None

    def ddf(self, spatial_size: Sequence[int]) -> torch.Tensor | None:
        """The drawn field ``(1, D, *spatial_size)`` (voxels), or ``None`` for the identity."""
        if not self._apply or self._magnitude == 0:
            return None
        size = tuple(int(s) for s in spatial_size)
        if self._cache is None or self._cache[0] != size:
            ddf = random_smooth_ddf(
                size, self._magnitude, self.smoothness, seed=self._seed, diffeomorphic=self.diffeomorphic
            )
            self._cache = (size, ddf)
        return self._cache[1]

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Warp ``img`` ``(C, *S)`` with the (new when ``randomize``) field; unchanged when not deformed."""
        if randomize:
            self.randomize()
        ddf = self.ddf(img.shape[1:])
        return img if ddf is None else _warp(img, ddf, self.padding_mode)


class RandSmoothDeformd(_GroupRandomizable):
    """Independent random smooth deformation per key group (:class:`RandSmoothDeform`).

    Each group draws one DDF on its own grid (the first present key's array shape) and warps the image and its label
    with it (bilinear, ``warp_image``).

    Args:
        keys: keys sharing ONE deformation; ``None`` (default): the two groups ``moving_keys`` and ``fixed_keys``.
        prob: probability of deforming each group.
        max_displacement, smoothness, diffeomorphic, padding_mode: as :class:`RandSmoothDeform`.
        moving_keys: keys sharing the moving deformation (when ``keys`` is ``None``).
        fixed_keys: keys sharing the fixed deformation.
        allow_missing_keys: skip absent keys; ``None``: ``False`` with ``keys``, ``True`` for the default groups.

    Example:
        >>> aug = RandSmoothDeformd(max_displacement=(0.0, 4.0), smoothness=8.0).set_random_state(0)
        >>> out = aug(sample)  # doctest: +SKIP
    """

    def __init__(
        self,
        keys: KeysCollection | None = None,
        prob: float = 1.0,
        max_displacement: float | tuple[float, float] = 4.0,
        smoothness: float = 8.0,
        diffeomorphic: bool = True,
        padding_mode: str = "border",
        moving_keys: KeysCollection = MOVING_KEYS,
        fixed_keys: KeysCollection = FIXED_KEYS,
        allow_missing_keys: bool | None = None,
    ):
        super().__init__(keys, moving_keys, fixed_keys, allow_missing_keys)
        self.array = RandSmoothDeform(prob, max_displacement, smoothness, diffeomorphic, padding_mode)
        self.array.set_random_state(state=self.R)
        self.prob, self.displacement_range = self.array.prob, self.array.displacement_range
        self.smoothness, self.diffeomorphic, self.padding_mode = smoothness, diffeomorphic, padding_mode

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for group in self.groups:
            present = self._present(d, group)
            self.randomize()  # draw for every group, present or not: the stream does not depend on the keys
            if not present:
                continue
            spatial = tuple(d[present[0]].shape[1:])
            for k in present:
                if tuple(d[k].shape[1:]) != spatial:
                    raise ValueError(
                        f"'{k}' has spatial shape {tuple(d[k].shape[1:])}, expected {spatial} as '{present[0]}'."
                    )
                d[k] = self.array(d[k], randomize=False)
        return _clip_labels(d, self.keys)


class RandRegistrationIntensity(Randomizable):
    """Random intensity change of one image: bias field, gamma, Gaussian noise, then clip to ``[0, 1]``.

    Args:
        prob: probability of augmenting.
        gamma_range: ``log(gamma)`` is drawn uniformly in ``log`` of this range; ``x -> x ** gamma``.
        noise_std: standard deviation of the additive Gaussian noise is ``U(0, noise_std)``.
        bias_field_coeff: the multiplicative bias field is ``exp(c * p(x))`` with ``p`` a random linear+quadratic
            polynomial of the normalised coordinates and ``c = bias_field_coeff``; ``0`` disables it.
    """

    def __init__(
        self,
        prob: float = 1.0,
        gamma_range: tuple[float, float] = (0.7, 1.5),
        noise_std: float = 0.02,
        bias_field_coeff: float = 0.2,
    ):
        if not 0 < gamma_range[0] <= gamma_range[1]:
            raise ValueError(f"gamma_range must satisfy 0 < lo <= hi, got {gamma_range}.")
        self.prob, self.gamma_range, self.noise_std, self.bias = (
            _check_prob(prob),
            gamma_range,
            noise_std,
            bias_field_coeff,
        )
        self._apply, self._log_gamma, self._std, self._seed = False, 0.0, 0.0, 0

    def randomize(self, data: Any = None) -> None:
        """Draw: augment or not, ``log(gamma)``, the noise std, the seed of the bias field and noise."""
        self._apply = bool(self.R.rand() < self.prob)
        self._log_gamma = float(self.R.uniform(np.log(self.gamma_range[0]), np.log(self.gamma_range[1])))
        self._std = float(self.R.uniform(0, self.noise_std))
        self._seed = int(self.R.randint(MAX_SEED))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Augment ``img`` ``(C, *S)`` (a ``MetaTensor`` keeps its metadata); unchanged when not drawn."""
        if randomize:
            self.randomize()
        if not self._apply:
            return img
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        g = torch.Generator().manual_seed(self._seed)
        dims = x.ndim - 1
        if self.bias:
            coords = torch.meshgrid(*[torch.linspace(-1, 1, s) for s in x.shape[1:]], indexing="ij")
            c = torch.rand(2 * dims, generator=g) * 2 - 1
            poly = sum(c[i] * coords[i] + c[dims + i] * coords[i] ** 2 for i in range(dims))
            x = x * torch.exp(self.bias * poly).to(x)
        x = x.clamp(0, 1) ** float(np.exp(self._log_gamma))
        if self._std > 0:
            x = x + self._std * torch.randn(x.shape, generator=g).to(x)
        x = x.clamp(0, 1)
        if isinstance(img, MetaTensor):
            return MetaTensor(x, meta=img.meta, applied_operations=list(img.applied_operations))
        return x


class RandRegistrationIntensityd(Randomizable, MapTransform):
    """Independent random intensity changes per image (:class:`RandRegistrationIntensity`); labels are untouched.

    Each image key draws its own parameters (moving and fixed are augmented independently).

    Args:
        keys: image keys; ``None`` (default): ``("moving_image", "fixed_image")``.
        prob, gamma_range, noise_std, bias_field_coeff: as :class:`RandRegistrationIntensity`.
        allow_missing_keys: skip absent keys; ``None``: ``False`` with ``keys``, ``True`` for the default keys.
    """

    def __init__(
        self,
        keys: KeysCollection | None = None,
        prob: float = 1.0,
        gamma_range: tuple[float, float] = (0.7, 1.5),
        noise_std: float = 0.02,
        bias_field_coeff: float = 0.2,
        allow_missing_keys: bool | None = None,
    ):
        allow = keys is None if allow_missing_keys is None else bool(allow_missing_keys)
        MapTransform.__init__(self, ("moving_image", "fixed_image") if keys is None else keys, allow)
        self.array = RandRegistrationIntensity(prob, gamma_range, noise_std, bias_field_coeff)
        self.array.set_random_state(state=self.R)
        self.prob, self.gamma_range, self.noise_std, self.bias = prob, gamma_range, noise_std, bias_field_coeff

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and the array transform it drives (one shared stream)."""
        super().set_random_state(seed, state)
        self.array.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the parameters of the next image in the array transform."""
        self.array.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.keys:  # draw for every key so the random stream does not depend on which keys exist
            self.randomize()
            if key not in d:
                if not self.allow_missing_keys:
                    raise KeyError(f"key '{key}' not found in the sample.")
                continue
            d[key] = self.array(d[key], randomize=False)
        return d
