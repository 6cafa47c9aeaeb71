"""Deterministic preprocessing of registration samples: load, check labels, orient, resample, resize, normalise.

Dict keys follow the batch contract: ``moving_image``, ``fixed_image`` ``(1, *S)`` and ``moving_label``,
``fixed_label`` ``(L, *S)`` with values in ``[0, 1]`` (see ``docs/conventions.md`` and ``docs/data.md``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    InvertibleTransform,
    LoadImage,
    MapTransform,
    Orientationd,
    ResizeWithPadOrCropd,
    ScaleIntensityd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)
from monai.transforms import Resize as _Resize
from monai.utils import TraceKeys

from ..io.h5 import H5ImageReader, is_h5_ref, split_h5_ref
from ..spatial.smooth import anti_aliasing_sigma, gaussian_smooth

__all__ = [
    "IMAGE_KEYS",
    "LABEL_KEYS",
    "LoadRegistrationImage",
    "LoadRegistrationImaged",
    "CheckLabel",
    "CheckLabeld",
    "ResizeLinear",
    "ResizeLineard",
    "registration_preprocessing",
]

IMAGE_KEYS: tuple[str, str] = ("moving_image", "fixed_image")
LABEL_KEYS: tuple[str, str] = ("moving_label", "fixed_label")


def _source(value) -> str:
    if isinstance(value, MetaTensor):
        return str(value.meta.get("filename_or_obj", "<in-memory>"))
    return "<in-memory>"


def _default_keys(keys, default: Sequence[str], allow_missing_keys: bool | None) -> tuple[Sequence[str], bool]:
    """``keys`` or ``default``; ``allow_missing_keys=None``: ``False`` with ``keys`` (MONAI), ``True`` for the default
    registration keys, whose labels are optional (unlabelled samples)."""
    allow = keys is None if allow_missing_keys is None else bool(allow_missing_keys)
    return (default if keys is None else keys), allow


class LoadRegistrationImage:
    """Load an image/label reference (a path, a list of paths, or ``"file.h5::key"``) as a channel-first MetaTensor.

    Wraps MONAI's ``LoadImage`` (NIfTI and every ITK format) with :class:`~monai_reg_ext.io.h5.H5ImageReader`
    registered, ``ensure_channel_first=True`` and ``float32``. A list of references is stacked as channels (one
    label per file). Values that are already arrays/tensors are returned unchanged.

    Raises:
        ValueError: naming the file when it cannot be read (unreadable, truncated, unknown H5 key).
        FileNotFoundError: when a file does not exist.
    """

    def __init__(self, dtype=np.float32):
        self.loader = LoadImage(reader=H5ImageReader(), image_only=True, ensure_channel_first=True, dtype=dtype)
        # choose the reader by suffix (H5 references first, then MONAI's defaults) and let its error through,
        # instead of trying every reader and reporting that none fits
        self.loader.auto_select = True

    def __call__(self, value, name: str | None = None):
        """Load ``value``; ``name`` (e.g. the dictionary key) prefixes the error messages."""
        if isinstance(value, (torch.Tensor, np.ndarray)):
            return value
        prefix = f"'{name}': " if name is not None else ""
        refs = [value] if isinstance(value, str) else list(value)
        for ref in refs:
            path = split_h5_ref(str(ref))[0] if is_h5_ref(str(ref)) else str(ref)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{prefix}file '{path}' does not exist.")
        try:
            return self.loader(refs if len(refs) > 1 else refs[0])
        except (ValueError, FileNotFoundError) as e:
            if any(str(r) in str(e) for r in refs):
                raise
            raise ValueError(f"{prefix}cannot read {refs if len(refs) > 1 else refs[0]}: {e}") from e
        except Exception as e:  # noqa: BLE001 - any reader failure becomes a ValueError naming the file
            raise ValueError(
                f"{prefix}cannot read {refs if len(refs) > 1 else refs[0]} (unreadable or truncated file?): "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from e


class LoadRegistrationImaged(MapTransform):
    """Dictionary version of :class:`LoadRegistrationImage`: load the references of ``keys``.

    Args:
        keys: keys to load; ``None`` (default): ``moving_image``, ``fixed_image``, ``moving_label``, ``fixed_label``.
        allow_missing_keys: skip absent keys; ``None``: ``False`` with ``keys``, ``True`` for the default keys (labels
            are optional).
        dtype: loaded data type.

    Raises:
        ValueError: naming the key and file when a file cannot be read (unreadable, truncated, unknown H5 key).
        FileNotFoundError: when a file does not exist.
    """

    def __init__(self, keys=None, allow_missing_keys: bool | None = None, dtype=np.float32):
        keys, allow = _default_keys(keys, IMAGE_KEYS + LABEL_KEYS, allow_missing_keys)
        super().__init__(keys, allow)
        self.load = LoadRegistrationImage(dtype)
        self.loader = self.load.loader

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.load(d[key], name=str(key))
        return d


class CheckLabel:
    """Check a label ``(L, *S)``: values in ``[0, 1]`` and, when its image is given, the image's spatial shape.

    ``CheckLabel()(label, image)`` returns ``label`` unchanged or raises.

    Raises:
        ValueError: naming the label file, when values are outside ``[0, 1]`` (an integer label map must be
            converted to one-hot channels first) or its spatial shape differs from its image's.
    """

    def __call__(self, label: torch.Tensor, image: torch.Tensor | None = None, name: str = "label") -> torch.Tensor:
        """Check ``label`` (against ``image``); ``name`` (e.g. the dictionary key) starts the error messages."""
        lo, hi = float(label.min()), float(label.max())
        if lo < 0 or hi > 1 or not np.isfinite(lo + hi):
            hint = ""
            if lo >= 0 and hi > 1 and float(hi).is_integer():
                hint = (
                    f" It looks like an integer label map with {int(hi)} classes: convert it to one-hot "
                    "channels (last axis, or one file per label)."
                )
            raise ValueError(
                f"{name} file '{_source(label)}': label values must lie in [0, 1], got [{lo:g}, {hi:g}].{hint}"
            )
        if isinstance(image, torch.Tensor):
            s_img, s_lab = tuple(image.shape[1:]), tuple(label.shape[1:])
            if s_img != s_lab:
                raise ValueError(
                    f"{name} file '{_source(label)}' has spatial shape {s_lab}, but its image "
                    f"'{_source(image)}' has {s_img}; expected the same shape."
                )
        return label


class CheckLabeld(MapTransform):
    """Dictionary version of :class:`CheckLabel`: check each label against its image.

    Args:
        keys: label keys; ``None`` (default): ``moving_label``, ``fixed_label``.
        image_keys: the image key of each label key (same length as ``keys``).
        allow_missing_keys: skip absent labels; ``None``: ``False`` with ``keys``, ``True`` for the default keys
            (unlabelled data).

    Raises:
        ValueError: naming the label file, when values are outside ``[0, 1]`` (an integer label map must be
            converted to one-hot channels first) or its spatial shape differs from its image's.
    """

    def __init__(
        self,
        keys: Sequence[str] | None = None,
        image_keys: Sequence[str] = IMAGE_KEYS,
        allow_missing_keys: bool | None = None,
    ):
        keys, allow = _default_keys(keys, LABEL_KEYS, allow_missing_keys)
        super().__init__(keys, allow)
        image_keys = (image_keys,) if isinstance(image_keys, str) else tuple(image_keys)
        if len(self.keys) != len(image_keys):
            raise ValueError(f"expected one image key per label key, got {list(self.keys)} and {list(image_keys)}.")
        self.image_keys = dict(zip(self.keys, image_keys))
        self.check = CheckLabel()

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            self.check(d[key], d.get(self.image_keys[key]), name=f"'{key}'")
        return d


class ResizeLinear(_Resize):
    """Resize to ``spatial_size`` with (bi/tri)linear interpolation, chosen from the number of spatial dims; invertible.

    MONAI's ``Resize`` (whose inverse MONAI's ``Invertd`` applies) with the mode spelled per dimension, so one
    pipeline serves 2D and 3D. Interpolation uses ``align_corners=True`` (``docs/conventions.md``), as the networks,
    ``register`` and ``resize_ddf`` do, so a network sees the same grid in training and inference. Labels stay in
    ``[0, 1]`` (linear interpolation and the Gaussian pre-filter are convex combinations). The MetaTensor affine is
    updated by MONAI (corner-aligned scaling) and the operation is recorded in ``applied_operations``; the inverse
    resizes back to the recorded shape (the anti-aliasing low-pass is not undone).

    Args:
        spatial_size: target array shape ``(H, W[, D])``.
        anti_aliasing: Gaussian low-pass before downsampling (:func:`~monai_reg_ext.spatial.resize_image`: sigma
            ``(scale - 1) / 2`` input voxels along each axis reduced by ``scale``, replicated borders). Use it when
            the grid shrinks a speckled or noisy image several-fold (ultrasound), where plain linear resizing aliases
            the noise; ``register`` applies it when the bundle's inference config sets ``anti_aliasing``.
    """

    def __init__(self, spatial_size: Sequence[int], anti_aliasing: bool = False):
        size = tuple(int(s) for s in spatial_size)
        mode = {2: "bilinear", 3: "trilinear"}.get(len(size))
        if mode is None:
            raise ValueError(f"spatial_size must have 2 or 3 entries, got {size}.")
        super().__init__(size, mode=mode, align_corners=True)
        self.spatial_size: tuple[int, ...] = size
        self.anti_aliasing_low_pass = bool(anti_aliasing)

    def _low_pass(self, x: torch.Tensor) -> torch.Tensor:
        sigma = anti_aliasing_sigma(x.shape[1:], self.spatial_size)
        out = gaussian_smooth(torch.as_tensor(x, dtype=torch.float32)[None], sigma)[0]
        return (
            MetaTensor(out, meta=x.meta, applied_operations=list(x.applied_operations))
            if isinstance(x, MetaTensor)
            else out
        )

    def __call__(self, img: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # type: ignore[override]
        """Resize ``img`` ``(C, *S)``; extra arguments are MONAI ``Resize``'s."""
        dims = img.ndim - 1
        if dims != len(self.spatial_size):
            raise ValueError(
                f"file '{_source(img)}' has {dims} spatial dims, but spatial_size {self.spatial_size} has "
                f"{len(self.spatial_size)}."
            )
        if self.anti_aliasing_low_pass and tuple(img.shape[1:]) != self.spatial_size:
            img = self._low_pass(img)
        return super().__call__(img, *args, **kwargs)

    def inverse_transform(self, data: torch.Tensor, transform: Mapping) -> torch.Tensor:
        """Resize back to the recorded shape, corners aligned whatever the recorded ``align_corners`` says.

        MONAI's ``Invertd`` (``nearest_interp=True``, its default) records ``mode="nearest"`` and drops
        ``align_corners``, which MONAI's ``Resize`` would then invert on a half-voxel-shifted grid (wrong affine): the
        nearest case here picks the nearest corner-aligned voxel instead, so the native grid and affine come back.
        """
        orig_size = tuple(int(s) for s in transform[TraceKeys.ORIG_SIZE])
        mode = transform[TraceKeys.EXTRA_INFO]["mode"]
        if mode not in ("nearest", "nearest-exact"):
            resizer = _Resize(orig_size, mode=mode, align_corners=True, dtype=transform[TraceKeys.EXTRA_INFO]["dtype"])
            with resizer.trace_transform(False):
                return resizer(data)
        size = tuple(data.shape[1:])
        index = [torch.linspace(0, s - 1, o).round().long() for s, o in zip(size, orig_size)]
        grid = torch.meshgrid(*index, indexing="ij")
        plain = data.as_tensor() if isinstance(data, MetaTensor) else torch.as_tensor(data)
        out = plain[(slice(None), *[g.to(plain.device) for g in grid])]
        if not isinstance(data, MetaTensor):
            return out
        out = MetaTensor(out, meta=data.meta, applied_operations=list(data.applied_operations))
        scale = torch.eye(len(data.affine), dtype=torch.float64)  # corner-aligned scaling (MONAI's scale_affine)
        for k, (s, o) in enumerate(zip(size, orig_size)):
            scale[k, k] = (s - 1) / (o - 1) if o > 1 else 0.0
        out.affine = data.affine.to(torch.float64) @ scale
        return out


class ResizeLineard(MapTransform, InvertibleTransform):
    """Dictionary version of :class:`ResizeLinear`; invertible (MONAI ``Invertd`` restores the input grid).

    Args:
        keys: keys to resize.
        spatial_size: target array shape ``(H, W[, D])``.
        anti_aliasing: Gaussian low-pass before downsampling (see :class:`ResizeLinear`).
        allow_missing_keys: skip absent keys (``False``: raise ``KeyError``, as MONAI).
    """

    def __init__(
        self, keys, spatial_size: Sequence[int], anti_aliasing: bool = False, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        self.resizer = ResizeLinear(spatial_size, anti_aliasing)
        self.spatial_size, self.anti_aliasing = self.resizer.spatial_size, bool(anti_aliasing)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            dims = d[key].ndim - 1
            if dims != len(self.spatial_size):
                raise ValueError(
                    f"'{key}' file '{_source(d[key])}' has {dims} spatial dims, but spatial_size "
                    f"{self.spatial_size} has {len(self.spatial_size)}."
                )
            d[key] = self.resizer(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        """Resize each key back to its recorded input shape (MONAI ``Resize`` inverse)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer.inverse(d[key])
        return d


def registration_preprocessing(
    spatial_size: Sequence[int] | None = None,
    *,
    moving_spatial_size: Sequence[int] | None = None,
    fixed_spatial_size: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    orientation: str | None = None,
    resize_mode: Literal["resize", "pad_crop"] = "resize",
    intensity: Literal["minmax", "percentile"] | None = "minmax",
    percentiles: tuple[float, float] = (1.0, 99.0),
    image_keys: Sequence[str] = IMAGE_KEYS,
    label_keys: Sequence[str] = LABEL_KEYS,
    load: bool = True,
    check_labels: bool = True,
    anti_aliasing: bool = False,
) -> Compose:
    """Default preprocessing of a registration sample, built from MONAI transforms.

    Steps: load (:class:`LoadRegistrationImaged`), label check (:class:`CheckLabeld`), optional ``Orientationd``,
    optional ``Spacingd`` (bilinear for images and labels), resize (linear, DeepReg's choice) or pad/crop to the
    target shape, intensity normalisation of the images to ``[0, 1]``. Absent label keys are skipped.

    Invertible: MONAI's ``Invertd(keys="pred", transform=pre, orig_keys="fixed_image")`` maps an image predicted on
    the network grid back to the fixed image's native grid (orientation, spacing, resize or pad/crop are undone; the
    intensity scaling is not); a DDF needs :class:`~monai_reg_ext.transforms.InvertDDFd`, which also converts its
    values to the native grid's voxels.

    Args:
        spatial_size: target array shape for moving and fixed, ``None`` keeps the loaded shape.
        moving_spatial_size: target shape of the moving image/label (overrides ``spatial_size``).
        fixed_spatial_size: target shape of the fixed image/label (overrides ``spatial_size``).
        spacing: target voxel spacing in mm (``Spacingd``), ``None`` keeps the file's grid.
        orientation: axis codes such as ``"RAS"`` (``Orientationd``), ``None`` keeps the file's orientation.
        resize_mode: ``"resize"`` (linear interpolation) or ``"pad_crop"`` (``ResizeWithPadOrCropd``, zero padding).
        intensity: ``"minmax"`` (per image, to ``[0, 1]``), ``"percentile"`` (clip at ``percentiles`` and rescale to
            ``[0, 1]``) or ``None``.
        percentiles: lower and upper percentiles for ``intensity="percentile"``.
        image_keys: moving and fixed image keys.
        label_keys: moving and fixed label keys (same order as ``image_keys``).
        load: include the loading step (``False`` when samples already hold arrays).
        check_labels: include the label check.
        anti_aliasing: Gaussian low-pass before a downsampling resize (:class:`ResizeLineard`); the inference
            config's ``anti_aliasing`` must match it.

    Returns:
        a ``monai.transforms.Compose``.

    Example:
        >>> t = registration_preprocessing((64, 64, 64), spacing=(1.5, 1.5, 1.5), orientation="RAS")
        >>> sample = t({"moving_image": "m.nii.gz", "fixed_image": "f.nii.gz"})  # doctest: +SKIP
    """
    if resize_mode not in ("resize", "pad_crop"):
        raise ValueError(f"resize_mode must be 'resize' or 'pad_crop', got '{resize_mode}'.")
    if intensity not in ("minmax", "percentile", None):
        raise ValueError(f"intensity must be 'minmax', 'percentile' or None, got '{intensity}'.")
    image_keys, label_keys = list(image_keys), list(label_keys)
    if len(image_keys) != len(label_keys):
        raise ValueError(f"expected one label key per image key, got {image_keys} and {label_keys}.")
    all_keys = image_keys + label_keys
    transforms: list = []
    if load:
        transforms.append(LoadRegistrationImaged(all_keys, allow_missing_keys=True))
    if check_labels:
        transforms.append(CheckLabeld(label_keys, image_keys, allow_missing_keys=True))
    if orientation is not None:
        transforms.append(Orientationd(all_keys, axcodes=orientation, allow_missing_keys=True))
    if spacing is not None:
        transforms.append(Spacingd(all_keys, pixdim=tuple(spacing), mode="bilinear", allow_missing_keys=True))
    sizes = [moving_spatial_size, fixed_spatial_size] if len(image_keys) == 2 else [None] * len(image_keys)
    for img_key, lab_key, size in zip(image_keys, label_keys, sizes):
        size = size if size is not None else spatial_size
        if size is None:
            continue
        if resize_mode == "resize":
            transforms.append(
                ResizeLineard([img_key, lab_key], size, anti_aliasing=anti_aliasing, allow_missing_keys=True)
            )
        else:
            transforms.append(ResizeWithPadOrCropd([img_key, lab_key], tuple(size), allow_missing_keys=True))
    if intensity == "minmax":
        transforms.append(ScaleIntensityd(image_keys, minv=0.0, maxv=1.0, allow_missing_keys=True))
    elif intensity == "percentile":
        lo, hi = percentiles
        transforms.append(
            ScaleIntensityRangePercentilesd(
                image_keys, lower=lo, upper=hi, b_min=0.0, b_max=1.0, clip=True, allow_missing_keys=True
            )
        )
    return Compose(transforms)
