"""Warp images or labels with a DDF: array transform (``WarpImage()(image, ddf)``) and dictionary transform (the DDF
stored in the same sample, e.g. a network's prediction).

Conventions (pull semantics, voxels of the fixed grid): ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import ensure_tuple_rep

from ..spatial import warp_image

__all__ = ["WarpImage", "WarpImaged"]


class WarpImage:
    """Warp an image with a DDF, ``WarpImage()(img, ddf)``: ``out(x) = img(x + ddf(x))`` (``warp_image``).

    Array version of :class:`WarpImaged`; the DDF is a call argument. Works on samples (``img`` ``(C, *S)``, ``ddf``
    ``(D, *S_fixed)``) or, with ``batch=True``, on batches (``(B, C, *S)`` with ``(B, D, *S_fixed)``). The output is on
    the DDF's (fixed) grid; a MetaTensor DDF passes its metadata (affine) on.

    Args:
        mode: interpolation, ``"bilinear"`` (images, soft labels) or ``"nearest"``.
        padding_mode: ``"border"`` (default), ``"zeros"`` or ``"reflection"``.
        batch: the inputs carry a leading batch axis.

    Raises:
        ValueError: shapes that do not fit (message from :func:`monai_reg_ext.warp_image`).
    """

    def __init__(self, mode: str = "bilinear", padding_mode: str = "border", batch: bool = False):
        self.mode, self.padding_mode, self.batch = mode, padding_mode, batch

    def __call__(
        self, img: torch.Tensor, ddf: torch.Tensor, mode: str | None = None, padding_mode: str | None = None
    ) -> torch.Tensor:
        """Warp ``img`` with ``ddf`` (fixed-grid voxels); ``mode`` / ``padding_mode`` override the defaults."""
        field = torch.as_tensor(ddf.as_tensor() if isinstance(ddf, MetaTensor) else ddf).float()
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        field = (field if self.batch else field[None]).to(x.device)
        out = warp_image(
            x if self.batch else x[None],
            field,
            mode=mode or self.mode,
            padding_mode=padding_mode or self.padding_mode,
        )
        out = out if self.batch else out[0]
        if isinstance(ddf, MetaTensor):  # the fixed grid's metadata (affine...), batched or not
            out = MetaTensor(out).copy_meta_from(ddf, keys=("_meta", "_is_batch"))
        return out


class WarpImaged(MapTransform):
    """Warp ``keys`` with the DDF at ``ddf_key``: ``out(x) = in(x + ddf(x))`` (dictionary :class:`WarpImage`).

    Works on samples (``(C, *S)`` with a DDF ``(D, *S_fixed)``, inside a ``Compose`` before a ``DataLoader``) or,
    with ``batch=True``, on batches (``(B, C, *S)`` with ``(B, D, *S_fixed)``, e.g. as a post-transform after
    inference). The output is on the DDF's (fixed) grid; a MetaTensor DDF passes its metadata (affine) on, so the
    warped image can be saved on the fixed image's grid.

    Args:
        keys: keys of the images/labels to warp, e.g. ``("moving_image", "moving_label")``.
        ddf_key: key of the DDF, in fixed-grid voxels.
        mode: interpolation, one per key or one for all: ``"bilinear"`` (images, soft labels) or ``"nearest"``.
        padding_mode: ``"border"`` (default), ``"zeros"`` or ``"reflection"``, one per key or one for all.
        output_keys: where to write the results (default: overwrite ``keys``), e.g. ``("pred_fixed_image",)``.
        batch: the values carry a leading batch axis.
        allow_missing_keys: skip absent keys (unlabelled samples).

    Raises:
        KeyError: the DDF is absent.
        ValueError: shapes that do not fit (message from :func:`monai_reg_ext.warp_image`).
    """

    def __init__(
        self,
        keys,
        ddf_key: str = "ddf",
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str | Sequence[str] = "border",
        output_keys: Sequence[str] | None = None,
        batch: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.ddf_key = ddf_key
        self.batch = batch
        self.warper = WarpImage(batch=batch)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.padding_mode = ensure_tuple_rep(padding_mode, len(self.keys))
        self.output_keys = tuple(output_keys) if output_keys is not None else tuple(self.keys)
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"expected one output key per key, got {list(self.output_keys)} for {list(self.keys)}.")

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        if self.ddf_key not in d:
            raise KeyError(f"WarpImaged: the sample has no DDF at key '{self.ddf_key}'; it has {sorted(map(str, d))}.")
        ddf = d[self.ddf_key]
        for key, out_key, mode, pad in self.key_iterator(d, self.output_keys, self.mode, self.padding_mode):
            d[out_key] = self.warper(d[key], ddf, mode=mode, padding_mode=pad)
        return d
