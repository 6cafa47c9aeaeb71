"""Invertible DDF resizing and the inversion of a preprocessing for DDFs (MONAI ``Invertd`` with vector values).

MONAI's ``Invertd`` maps an image predicted on the network grid back to the native grid by undoing the recorded
operations (``Orientationd``, ``Spacingd``, :class:`~monai_reg_ext.transforms.ResizeLineard`, ...). A DDF also needs
its VALUES changed: it is a vector field in voxels of the grid it lives on, channel ``k`` along array axis ``k``
(``docs/conventions.md``), so a resize scales channel ``k`` by the voxel-size ratio of axis ``k``, a flip negates it
and a permutation reorders the channels. :class:`ResizeDDF` / :class:`ResizeDDFd` resize a DDF and rescale it (and
back, as their inverse); :class:`InvertDDFd` inverts any recorded preprocessing for a DDF through physical space.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Invertd, InvertibleTransform, MapTransform
from monai.utils import ensure_tuple_rep

from .preprocess import ResizeLinear

__all__ = ["ResizeDDF", "ResizeDDFd", "InvertDDFd"]


def _check_ddf(ddf: torch.Tensor, name: str = "ddf") -> int:
    """Number of spatial dims of a DDF ``(D, *S)``; raises when the channels are not ``D``."""
    dims = ddf.ndim - 1
    if dims not in (2, 3) or ddf.shape[0] != dims:
        raise ValueError(f"{name}: expected a DDF (D, *S) with D = 2 or 3 spatial dims, got shape {tuple(ddf.shape)}.")
    return dims


def _rescale(ddf: torch.Tensor, old: Sequence[int], new: Sequence[int]) -> torch.Tensor:
    """Scale channel ``k`` by ``(new_k - 1) / (old_k - 1)``: voxels of the ``old`` grid to voxels of the ``new`` grid
    covering the same field of view (``align_corners=True``, as :func:`~monai_reg_ext.spatial.resize_ddf`)."""
    factors = [(n - 1) / (o - 1) if o > 1 and n > 1 else 1.0 for n, o in zip(new, old)]
    scale = torch.tensor(factors, dtype=ddf.dtype, device=ddf.device).view(len(factors), *([1] * len(factors)))
    return ddf * scale


class ResizeDDF(ResizeLinear):
    """Resize a DDF ``(D, *S)`` (voxels) to ``spatial_size`` and rescale its values to the new voxel size; invertible.

    Linear interpolation with ``align_corners=True`` (:class:`~monai_reg_ext.transforms.ResizeLinear`), then channel
    ``k`` times ``(new_k - 1) / (old_k - 1)``, so a displacement keeps its physical length (the same result as
    :func:`~monai_reg_ext.spatial.resize_ddf`). The inverse (``inverse``, or MONAI's ``Invertd`` through
    :class:`ResizeDDFd`) resizes back to the recorded shape and applies the reciprocal factors: a constant
    translation of ``t`` voxels on a ``33^3`` grid becomes ``2 t`` on ``65^3``, and ``t`` again after the inverse.

    Args:
        spatial_size: target grid ``(H, W[, D])``.
    """

    def __init__(self, spatial_size: Sequence[int]):
        super().__init__(spatial_size, anti_aliasing=False)

    def __call__(self, ddf: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Resize and rescale ``ddf`` ``(D, *S)``."""
        _check_ddf(ddf)
        old = tuple(ddf.shape[1:])
        return _rescale(super().__call__(ddf, *args, **kwargs), old, self.spatial_size)

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Resize back to the recorded shape and rescale the values back."""
        transform = self.pop_transform(data)
        current = tuple(data.shape[1:])
        out = self.inverse_transform(data, transform)
        return _rescale(out, current, tuple(out.shape[1:]))


class ResizeDDFd(MapTransform, InvertibleTransform):
    """Dictionary version of :class:`ResizeDDF`; invertible, so MONAI's ``Invertd`` restores the DDF's grid and units.

    Args:
        keys: DDF keys, each ``(D, *S)`` in voxels.
        spatial_size: target grid.
        allow_missing_keys: skip absent keys (``False``: raise ``KeyError``, as MONAI).
    """

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.resizer = ResizeDDF(spatial_size)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        """Resize each key back to its recorded grid, in that grid's voxels."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer.inverse(d[key])
        return d


def _linear(affine: torch.Tensor, dims: int, like: torch.Tensor) -> torch.Tensor:
    """The upper-left ``dims x dims`` block of a voxel-to-world affine, float64 on ``like``'s device."""
    return torch.as_tensor(affine)[:dims, :dims].to(dtype=torch.float64, device=like.device)


def _apply_matrix(matrix: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``out[i] = sum_j matrix[i, j] field[j]`` for a field ``(D, *S)`` (plain tensor, ``field``'s dtype)."""
    plain = field.as_tensor() if isinstance(field, MetaTensor) else torch.as_tensor(field)
    return torch.einsum("ij,j...->i...", matrix, plain.to(torch.float64)).to(plain.dtype)


class InvertDDFd(MapTransform):
    """MONAI's ``Invertd`` for DDFs: back to the native grid of ``orig_keys``, in that grid's voxels.

    ``Invertd`` undoes the recorded operations of the reference key (e.g. ``Orientationd``, ``Spacingd``,
    ``ResizeLineard``) on the DDF's array but leaves its values in voxels of the network grid. This transform converts
    the DDF to physical displacements first (``d_world = R_net d``, ``R_net`` the upper-left ``D x D`` block of the
    reference's current affine, ``docs/conventions.md``), resamples those with ``Invertd`` (a physical vector does
    not depend on the grid), and converts back with the restored affine (``d = R_native^-1 d_world``): a resize scales
    each channel by its voxel-size ratio, a flip negates it, a permutation reorders the channels.

    There is no array version: as ``Invertd``, it reads the operations recorded on another key of the sample.

    Args:
        keys: DDF keys, each ``(D, *S_net)`` (one sample, not a batch: decollate first).
        transform: the (invertible) preprocessing applied to the reference keys.
        orig_keys: reference key of each DDF key (e.g. ``"fixed_image"``: a DDF lives on the fixed grid); default
            ``keys``.
        allow_missing_keys: skip absent DDF keys (``False``: raise ``KeyError``, as MONAI).

    Example:
        >>> pre = registration_preprocessing((64, 64, 64), spacing=(1.5, 1.5, 1.5), orientation="RAS")
        >>> post = InvertDDFd("ddf", transform=pre, orig_keys="fixed_image")
        >>> native = post({**sample, "ddf": ddf})["ddf"]  # doctest: +SKIP
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: InvertibleTransform,
        orig_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.orig_keys = ensure_tuple_rep(orig_keys, len(self.keys)) if orig_keys is not None else self.keys
        self.invert = Invertd(
            self.keys, transform, orig_keys=self.orig_keys, nearest_interp=False, allow_missing_keys=allow_missing_keys
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        present = []
        for key, orig_key in self.key_iterator(d, self.orig_keys):
            ref = d.get(orig_key)
            if not isinstance(ref, MetaTensor):
                raise KeyError(f"InvertDDFd: the reference '{orig_key}' of '{key}' must be a MetaTensor in the sample.")
            dims = _check_ddf(d[key], name=str(key))
            d[key] = MetaTensor(_apply_matrix(_linear(ref.affine, dims, d[key]), d[key]))  # Invertd sets its meta
            present.append(key)
        d = self.invert(d)
        for key in present:
            out = d[key]
            native = torch.linalg.inv(_linear(out.affine, out.ndim - 1, out))
            d[key] = MetaTensor(_apply_matrix(native, out), meta=out.meta, applied_operations=out.applied_operations)
        return d
