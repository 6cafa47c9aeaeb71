"""Synthetic label maps and images (SynthMorph-style), as MONAI ``Randomizable`` array and dictionary transforms.

SynthMorph (Hoffmann et al., "SynthMorph: learning contrast-invariant registration without acquired images", IEEE
TMI 2022) trains a registration network on pairs made only from random label maps: each label map gets an image with
a random intensity per label (a Gaussian mixture), a smooth bias field, noise, blur and resolution changes, so the
network cannot rely on any one contrast. This module makes

- label maps from random shapes (:class:`RandShapeLabelMap`: smoothed noise per label, then ``argmax``) and from a
  given real label map (:class:`RandRelabel`: drop, merge and shuffle its labels);
- an image per label map (:class:`RandLabelToImage`); each call draws an independent contrast, so the moving and the
  fixed image of a pair can be "multi-modal" (:class:`RandLabelToImaged` can also share one contrast, mono-modal).

Label maps are integer tensors ``(1, *S)`` (``int64``, ``0`` = background for real maps); images ``(1, *S)``
``float32`` in ``[0, 1]``. Deformations and pairs are in :mod:`monai_reg_ext.transforms.synth_deform`. All the
randomness comes from the transform's ``R`` (``set_random_state`` makes every output reproducible).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable
from monai.utils import MAX_SEED

from ..spatial.smooth import gaussian_smooth

__all__ = [
    "random_shape_label_map",
    "RandShapeLabelMap",
    "RandShapeLabelMapd",
    "RandRelabel",
    "RandRelabeld",
    "RandLabelToImage",
    "RandLabelToImaged",
]


def _range(value: float | Sequence[float], name: str, low: float = 0.0) -> tuple[float, float]:
    """``v -> (v, v)`` or ``(lo, hi)``, checked ``low <= lo <= hi``."""
    lo, hi = (float(value), float(value)) if isinstance(value, (int, float)) else (float(v) for v in value)
    if not low <= lo <= hi:
        raise ValueError(f"{name}: expected a number >= {low} or a range {low} <= lo <= hi, got {value}.")
    return lo, hi


def _plain(x: Any) -> torch.Tensor:
    """A plain ``torch.Tensor`` view of an array, tensor or ``MetaTensor``."""
    if isinstance(x, MetaTensor):
        return x.as_tensor()
    return torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x


def _like(out: torch.Tensor, ref: Any) -> torch.Tensor:
    """``out`` as a ``MetaTensor`` carrying ``ref``'s metadata when ``ref`` is one (else ``out``)."""
    if isinstance(ref, MetaTensor):
        return MetaTensor(out, meta=dict(ref.meta), applied_operations=list(ref.applied_operations))
    return out


def _smooth_noise(
    channels: int, size: tuple[int, ...], sigma: float, generator: torch.Generator | None
) -> torch.Tensor:
    """White noise smoothed with a Gaussian of ``sigma`` voxels, ``(1, channels, *size)`` float32, zero mean.

    As :func:`~monai_reg_ext.spatial.random_smooth_ddf`, the noise is drawn on a grid ``k = floor(sigma / 2)``
    times coarser, smoothed there and upsampled linearly (``align_corners=True``): same statistics, far cheaper.
    """
    k = max(1, int(sigma // 2))
    coarse = tuple(max(2, math.ceil((s - 1) / k) + 1) for s in size)
    factor = [(s - 1) / (c - 1) for s, c in zip(size, coarse)]
    noise = torch.randn((1, channels, *coarse), generator=generator)
    field = gaussian_smooth(noise, [sigma / f for f in factor])
    if coarse != size:
        field = F.interpolate(field, size=size, mode="bilinear" if len(size) == 2 else "trilinear", align_corners=True)
    return field - field.flatten(2).mean(dim=2).reshape(1, channels, *([1] * len(size)))


def random_shape_label_map(
    spatial_size: Sequence[int],
    num_labels: int = 16,
    smoothness: float = 6.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random label map of blob-like shapes: one smoothed noise field per label, then ``argmax`` over labels.

    SynthMorph's label-map synthesis without its extra warp (compose with a deformation from
    :mod:`~monai_reg_ext.transforms.synth_deform` for that). Larger ``smoothness`` gives larger, rounder shapes
    (about ``2-3 * smoothness`` voxels across).

    Args:
        spatial_size: ``(H, W)`` or ``(H, W, Z)``, each at least 2.
        num_labels: number of labels ``J >= 2``; values are ``0 .. J - 1`` (a label may be absent on small grids).
        smoothness: Gaussian sigma of the noise smoothing, in voxels (``> 0``).
        generator: CPU ``torch.Generator`` to draw from (torch's global RNG when ``None``).

    Returns:
        Label map ``(1, *spatial_size)``, ``int64``.
    """
    size = tuple(int(s) for s in spatial_size)
    if len(size) not in (2, 3) or min(size) < 2:
        raise ValueError(f"spatial_size: expected 2 or 3 entries, each >= 2, got {tuple(spatial_size)}.")
    if int(num_labels) < 2:
        raise ValueError(f"num_labels: expected >= 2, got {num_labels}.")
    if not smoothness > 0:
        raise ValueError(f"smoothness: expected > 0 voxels, got {smoothness}.")
    return _smooth_noise(int(num_labels), size, float(smoothness), generator).argmax(dim=1)


class RandShapeLabelMap(Randomizable):
    """Draw a random-shape label map (:func:`random_shape_label_map`) with a random smoothness.

    Args:
        spatial_size: default grid ``(H, W[, Z])`` of the maps.
        num_labels: number of labels ``J`` (values ``0 .. J - 1``).
        smoothness: Gaussian sigma of the shapes' noise in voxels, or a ``(lo, hi)`` range drawn uniformly per map.

    Example:
        >>> labels = RandShapeLabelMap((64, 64, 64), num_labels=16, smoothness=(4.0, 8.0)).set_random_state(0)()
        >>> labels.shape, labels.dtype
        (torch.Size([1, 64, 64, 64]), torch.int64)
    """

    def __init__(
        self,
        spatial_size: Sequence[int],
        num_labels: int = 16,
        smoothness: float | Sequence[float] = (4.0, 8.0),
    ) -> None:
        self.spatial_size = tuple(int(s) for s in spatial_size)
        if int(num_labels) < 2:
            raise ValueError(f"num_labels: expected >= 2, got {num_labels}.")
        self.num_labels = int(num_labels)
        self.smoothness = _range(smoothness, "smoothness", low=1e-6)
        self._sigma, self._seed = self.smoothness[0], 0

    def randomize(self, data: Any = None) -> None:
        """Draw the smoothness and the noise seed of the next map."""
        self._sigma = float(self.R.uniform(*self.smoothness))
        self._seed = int(self.R.randint(MAX_SEED))

    def __call__(self, spatial_size: Sequence[int] | None = None, randomize: bool = True) -> torch.Tensor:
        """A label map ``(1, *spatial_size)`` ``int64`` (default grid when ``spatial_size`` is ``None``)."""
        if randomize:
            self.randomize()
        size = self.spatial_size if spatial_size is None else spatial_size
        return random_shape_label_map(size, self.num_labels, self._sigma, torch.Generator().manual_seed(self._seed))


class RandShapeLabelMapd(Randomizable, MapTransform):
    """Dictionary version of :class:`RandShapeLabelMap`: writes an independent random label map into each key.

    The keys are outputs (created, or replaced when present); the input dictionary is not modified.

    Args:
        keys: keys to write, each ``(1, *spatial_size)`` ``int64``.
        spatial_size, num_labels, smoothness: as :class:`RandShapeLabelMap`.
        allow_missing_keys: accepted for a uniform signature; without effect, the keys are outputs (never missing).
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int],
        num_labels: int = 16,
        smoothness: float | Sequence[float] = (4.0, 8.0),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.maker = RandShapeLabelMap(spatial_size, num_labels, smoothness)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any:
        """Seed this transform and the array transform it drives."""
        super().set_random_state(seed, state)
        self.maker.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: each key draws in :class:`RandShapeLabelMap`."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` with a new label map under each key."""
        d = dict(data)
        for key in self.keys:
            d[key] = self.maker()
        return d


def _as_label_map(label: torch.Tensor) -> torch.Tensor:
    """``(1, *S)`` integer map from an integer map or one-hot ``(L, *S)`` (``L > 1``; background where all are 0)."""
    if label.shape[0] > 1:
        fg = label.float().amax(dim=0, keepdim=True) > 0.5
        return torch.where(fg, label.float().argmax(dim=0, keepdim=True) + 1, 0).long()
    if label.is_floating_point() and not torch.equal(label, label.round()):
        raise ValueError("label: expected an integer label map (1, *S) or one-hot channels, got non-integer values.")
    return label.long()


class RandRelabel(Randomizable):
    """New label sets from a real label map: drop labels (to background), merge labels, shuffle their order.

    Each foreground label (``> 0``) is dropped to ``0`` with probability ``drop_prob``; each remaining one is merged
    into another remaining label with probability ``merge_prob``; the surviving groups are renumbered
    ``1 .. K`` in a random order (``shuffle``) or in increasing order. With ``max_labels``, groups beyond
    ``max_labels - 1`` foreground labels are merged into random kept ones so the values stay below ``max_labels``.

    Args:
        drop_prob: probability of dropping each label.
        merge_prob: probability of merging each label into another.
        shuffle: renumber the groups in a random order.
        max_labels: exclusive upper bound of the output values (background included), or ``None``.

    Input/output: integer map ``(1, *S)`` (or one-hot ``(L, *S)``, channel ``l`` = label ``l + 1``) -> ``(1, *S)``
    ``int64`` with values in ``0 .. K``.
    """

    def __init__(
        self,
        drop_prob: float = 0.1,
        merge_prob: float = 0.2,
        shuffle: bool = True,
        max_labels: int | None = None,
    ) -> None:
        for name, p in (("drop_prob", drop_prob), ("merge_prob", merge_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p}.")
        if max_labels is not None and int(max_labels) < 2:
            raise ValueError(f"max_labels: expected >= 2 or None, got {max_labels}.")
        self.drop_prob, self.merge_prob, self.shuffle = float(drop_prob), float(merge_prob), bool(shuffle)
        self.max_labels = None if max_labels is None else int(max_labels)

    def randomize(self, data: Any = None) -> None:
        """No state: the lookup table is drawn in :meth:`lookup_table` from ``R``."""

    def lookup_table(self, labels: Sequence[int]) -> dict[int, int]:
        """Draw the mapping ``old foreground label -> new label`` (``0`` = dropped) for the present ``labels``."""
        labels = [int(v) for v in labels if int(v) > 0]
        drop = self.R.rand(len(labels)) < self.drop_prob
        kept = [v for v, dropped in zip(labels, drop) if not dropped]
        groups = {v: v for v in kept}
        merge = self.R.rand(len(kept)) < self.merge_prob
        for v, m in zip(kept, merge):
            others = [u for u in kept if groups[u] == u and u != v]
            if m and others and groups[v] == v:
                groups[v] = int(others[self.R.randint(len(others))])
        for v in kept:  # resolve chains a -> b -> c
            while groups[groups[v]] != groups[v]:
                groups[v] = groups[groups[v]]
        roots = sorted(set(groups.values()))
        order = list(self.R.permutation(len(roots))) if self.shuffle else list(range(len(roots)))
        if self.max_labels is not None and len(roots) > self.max_labels - 1:
            n = self.max_labels - 1
            order = [o if o < n else int(self.R.randint(n)) for o in order]
        new = {r: int(o) + 1 for r, o in zip(roots, order)}
        table = {v: 0 for v in labels}
        table.update({v: new[groups[v]] for v in kept})
        return table

    def __call__(self, label: Any) -> torch.Tensor:
        """Relabel ``label`` (see the class docstring); returns ``(1, *S)`` ``int64`` (``MetaTensor`` in, out)."""
        lab = _as_label_map(_plain(label))
        present = torch.unique(lab).tolist()
        table = self.lookup_table(present)
        lut = torch.zeros(int(max(present)) + 1, dtype=torch.long)
        for old, new in table.items():
            lut[old] = new
        return _like(lut[lab], label)


class RandRelabeld(Randomizable, MapTransform):
    """Dictionary version of :class:`RandRelabel`: each key draws its own relabelling.

    Args:
        keys: label-map keys.
        drop_prob, merge_prob, shuffle, max_labels: as :class:`RandRelabel`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        drop_prob: float = 0.1,
        merge_prob: float = 0.2,
        shuffle: bool = True,
        max_labels: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.relabel = RandRelabel(drop_prob, merge_prob, shuffle, max_labels)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any:
        """Seed this transform and the array transform it drives."""
        super().set_random_state(seed, state)
        self.relabel.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: each key draws in :class:`RandRelabel`."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` with each key relabelled."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.relabel(d[key])
        return d


class RandLabelToImage(Randomizable):
    """An image from a label map: random intensity per label, then blur, resolution change, bias field, noise, gamma.

    Steps, each with parameters drawn anew per call (``R``):

    1. Gaussian mixture: voxel ``x`` of label ``l`` gets ``N(mu_l, sigma_l^2)``, ``mu_l ~ U(mean_range)``,
       ``sigma_l ~ U(std_range)``; :meth:`draw_contrast` draws this table (pass it to share one contrast);
    2. blur: Gaussian, sigma ``~ U(blur_sigma)`` voxels per axis (partial volume);
    3. resolution change (probability ``resolution_prob``): each axis, chosen with probability 1/2, is down-sampled
       by a factor ``~ U(1, max_resolution_factor)`` then up-sampled back (linear, ``align_corners=True``): thick
       slices or a coarse acquisition along random axes;
    4. bias field: multiplication by ``exp(b * f)``, ``f`` smooth unit-variance noise (Gaussian sigma
       ``bias_smoothness`` voxels), ``b ~ U(bias_strength)``;
    5. additive Gaussian noise, std ``~ U(noise_std)`` (intensity units of ``mean_range``);
    6. min-max scaling to ``[0, 1]``, then gamma ``x -> x ** exp(g)``, ``g ~ N(0, gamma_std^2)``.

    With ``std_range=0``, ``blur_sigma=0``, ``resolution_prob=0``, ``bias_strength=0``, ``noise_std=0`` and
    ``gamma_std=0`` the image is constant on each label (an affine map of ``mu``).

    Args:
        mean_range: range of the per-label mean intensities.
        std_range: range of the per-label standard deviations.
        blur_sigma: range of the blur sigma in voxels (0: no blur).
        resolution_prob: probability of a resolution change.
        max_resolution_factor: largest down-sampling factor (``>= 1``).
        bias_strength: range of the log-amplitude ``b`` of the bias field (0: none).
        bias_smoothness: Gaussian sigma of the bias field in voxels.
        noise_std: range of the noise standard deviation.
        gamma_std: standard deviation of ``log(gamma)``.

    Input/output: label map ``(1, *S)`` integer (or one-hot ``(L, *S)``) -> image ``(1, *S)`` ``float32`` in
    ``[0, 1]`` (a ``MetaTensor`` with the label's metadata when the label is one).
    """

    def __init__(
        self,
        mean_range: Sequence[float] = (0.0, 1.0),
        std_range: float | Sequence[float] = (0.0, 0.1),
        blur_sigma: float | Sequence[float] = (0.0, 1.0),
        resolution_prob: float = 0.3,
        max_resolution_factor: float = 4.0,
        bias_strength: float | Sequence[float] = (0.0, 0.3),
        bias_smoothness: float = 16.0,
        noise_std: float | Sequence[float] = (0.0, 0.05),
        gamma_std: float = 0.25,
    ) -> None:
        self.mean_range = _range(mean_range, "mean_range", low=-math.inf)
        self.std_range = _range(std_range, "std_range")
        self.blur_sigma = _range(blur_sigma, "blur_sigma")
        self.bias_strength = _range(bias_strength, "bias_strength")
        self.noise_std = _range(noise_std, "noise_std")
        if not 0.0 <= resolution_prob <= 1.0:
            raise ValueError(f"resolution_prob: expected a probability in [0, 1], got {resolution_prob}.")
        if not max_resolution_factor >= 1.0:
            raise ValueError(f"max_resolution_factor: expected >= 1, got {max_resolution_factor}.")
        if not bias_smoothness > 0 or not gamma_std >= 0:
            raise ValueError(f"expected bias_smoothness > 0 and gamma_std >= 0, got {bias_smoothness}, {gamma_std}.")
        self.resolution_prob, self.max_resolution_factor = float(resolution_prob), float(max_resolution_factor)
        self.bias_smoothness, self.gamma_std = float(bias_smoothness), float(gamma_std)
        self._params: dict[str, Any] = {}

    def draw_contrast(self, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw the Gaussian mixture: means and standard deviations ``(num_labels,)`` (index = label value)."""
        means = self.R.uniform(*self.mean_range, size=int(num_labels))
        stds = self.R.uniform(*self.std_range, size=int(num_labels))
        return means, stds

    def randomize(self, data: Any = None) -> None:
        """Draw the corruption parameters of the next image (blur, resolution, bias, noise, gamma, noise seed)."""
        r = self.R
        self._params = {
            "blur": r.uniform(*self.blur_sigma, size=3),
            "resolution": r.rand() < self.resolution_prob,
            "axes": r.rand(3) < 0.5,
            "factors": r.uniform(1.0, self.max_resolution_factor, size=3),
            "bias": r.uniform(*self.bias_strength),
            "noise": r.uniform(*self.noise_std),
            "log_gamma": r.normal(0.0, self.gamma_std) if self.gamma_std > 0 else 0.0,
            "seed": int(r.randint(MAX_SEED)),
        }

    def __call__(
        self, label: Any, contrast: tuple[np.ndarray, np.ndarray] | None = None, randomize: bool = True
    ) -> torch.Tensor:
        """Synthesise an image of ``label`` ``(1, *S)``; ``contrast`` = ``(means, stds)`` from :meth:`draw_contrast`
        (drawn anew when ``None``). Returns ``(1, *S)`` ``float32`` in ``[0, 1]``."""
        lab = _as_label_map(_plain(label))[0]
        n = int(lab.max()) + 1
        means, stds = self.draw_contrast(n) if contrast is None else contrast
        if len(means) < n or len(stds) < n:
            raise ValueError(f"contrast: expected at least {n} means and stds (labels 0..{n - 1}), got {len(means)}.")
        if randomize or not self._params:
            self.randomize()
        p, g = self._params, torch.Generator().manual_seed(self._params["seed"])
        mu = torch.as_tensor(np.asarray(means), dtype=torch.float32)[lab]
        sd = torch.as_tensor(np.asarray(stds), dtype=torch.float32)[lab]
        img = (mu + sd * torch.randn(lab.shape, generator=g))[None, None]  # (1, 1, *S)
        img = _corrupt(img, p, self.bias_smoothness, g)
        lo, hi = img.min(), img.max()
        img = ((img - lo) / (hi - lo).clamp_min(1e-8)).clamp(0.0, 1.0) ** float(np.exp(p["log_gamma"]))
        return _like(img[0].to(torch.float32), label)


def _corrupt(img: torch.Tensor, p: Mapping[str, Any], bias_smoothness: float, g: torch.Generator) -> torch.Tensor:
    """Blur, resolution change, bias field and noise of ``img`` ``(1, 1, *S)`` with the drawn parameters ``p``."""
    size = tuple(img.shape[2:])
    dims = len(size)
    sigma = [float(s) for s in p["blur"][:dims]]
    if max(sigma) > 0:
        img = gaussian_smooth(img, sigma)
    if p["resolution"] and p["axes"][:dims].any():
        mode = "bilinear" if dims == 2 else "trilinear"
        low = [
            max(2, round((s - 1) / f) + 1) if a else s for s, f, a in zip(size, p["factors"][:dims], p["axes"][:dims])
        ]
        img = F.interpolate(F.interpolate(img, size=low, mode=mode, align_corners=True), size=size, mode=mode,
                            align_corners=True)  # fmt: skip
    if p["bias"] > 0:
        field = _smooth_noise(1, size, bias_smoothness, g)
        img = img * torch.exp(p["bias"] * field / field.std().clamp_min(1e-8))
    if p["noise"] > 0:
        img = img + p["noise"] * torch.randn(img.shape, generator=g)
    return img


class RandLabelToImaged(Randomizable, MapTransform):
    """Dictionary version of :class:`RandLabelToImage`: one image per label key, each with its own contrast.

    The image of ``keys[i]`` is written to ``image_keys[i]``. The first key draws a contrast (Gaussian mixture); each
    other key draws an independent one (multi-modal pairs), or, with probability ``shared_contrast_prob`` (drawn once
    per call), reuses the first key's (mono-modal pairs: same tissue intensities, independent bias, noise, blur,
    resolution and gamma). The contrast table covers every label value present in any key.

    Args:
        keys: label-map keys, e.g. ``("moving_label", "fixed_label")``.
        image_keys: output image keys, one per label key, e.g. ``("moving_image", "fixed_image")``.
        shared_contrast_prob: probability that all keys share the first key's contrast.
        allow_missing_keys: skip absent label keys instead of raising ``KeyError``.
        kwargs: arguments of :class:`RandLabelToImage`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_keys: KeysCollection,
        shared_contrast_prob: float = 0.0,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.image_keys = (image_keys,) if isinstance(image_keys, (str, int)) else tuple(image_keys)
        if len(self.image_keys) != len(self.keys):
            raise ValueError(f"image_keys: expected one per key {self.keys}, got {self.image_keys}.")
        if not 0.0 <= shared_contrast_prob <= 1.0:
            raise ValueError(f"shared_contrast_prob: expected a probability in [0, 1], got {shared_contrast_prob}.")
        self.shared_contrast_prob = float(shared_contrast_prob)
        self.synth = RandLabelToImage(**kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any:
        """Seed this transform and the array transform it drives."""
        super().set_random_state(seed, state)
        self.synth.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: contrasts and corruptions are drawn in :class:`RandLabelToImage`."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` with ``image_keys`` added."""
        d = dict(data)
        shared = self.R.rand() < self.shared_contrast_prob
        present = list(self.key_iterator(d))
        if not present:
            return d
        n = 1 + max(int(_as_label_map(_plain(d[k])).max()) for k in present)
        first = self.synth.draw_contrast(n)
        for i, (key, out_key) in enumerate(zip(self.keys, self.image_keys)):
            if key not in d:
                continue
            contrast = first if i == 0 or shared else self.synth.draw_contrast(n)
            d[out_key] = self.synth(d[key], contrast=contrast)
        return d
