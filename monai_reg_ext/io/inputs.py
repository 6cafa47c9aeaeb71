"""Read an image, label or DDF-grid reference given as a file, an array or a MONAI ``MetaTensor``.

Used by :func:`monai_reg_ext.register` and the ``monai-reg`` commands: every input becomes a channel-first
``MetaTensor`` ``(C, *S)`` with its voxel-to-world (RAS) affine, and bad input gets an error naming it and its file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

__all__ = ["ImageLike", "load_input"]

ImageLike = Union[str, os.PathLike, np.ndarray, torch.Tensor]


def load_input(x: ImageLike, name: str, spatial_dims: int, single_channel: bool = False) -> MetaTensor:
    """Load an image or label as a channel-first ``MetaTensor`` ``(C, *S)`` with its affine.

    Args:
        x: a file readable by MONAI's ``LoadImage`` (NIfTI, ``.mha``, ``.nrrd``, ...), an array/tensor ``(*S)`` or
            ``(C, *S)`` (identity affine unless it is a ``MetaTensor``), or a ``MetaTensor``.
        name: what it is (``"moving"``, ``"fixed_label"``...), used in error messages.
        spatial_dims: number of spatial dims the network expects.
        single_channel: refuse more than one channel (intensity images; a 4-D NIfTI where a 3-D one is expected).

    Raises:
        FileNotFoundError / ValueError naming the input (and its file) and what was expected.
    """
    what = name
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        what = f"{name} {str(path)!r}"
        if not path.exists():
            raise FileNotFoundError(f"{name}: file {str(path)!r} does not exist.")
        if path.is_dir():
            raise ValueError(f"{name}: {str(path)!r} is a directory; expected an image file.")
        if path.suffix.lower() in (".h5", ".hdf5"):
            raise ValueError(
                f"{what}: H5 files are read by the datasets (images.h5 + key), not here; expected an image file "
                "(NIfTI, .mha, .nrrd...)."
            )
        try:
            img = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
        except Exception as err:  # readers raise many types; report them with the file name
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(
                f"{name}: cannot read {str(path)!r} as an image ({type(err).__name__}: {first})."
            ) from None
        if img.ndim == spatial_dims and spatial_dims == 2:
            img = img[None]
    else:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        if t.ndim == spatial_dims:
            t = t[None]
        img = t if isinstance(t, MetaTensor) else MetaTensor(t, affine=torch.eye(4 if spatial_dims == 3 else 3))
    if img.ndim != spatial_dims + 1:
        raise ValueError(
            f"{what}: expected a {spatial_dims}-D image (shape (*S) or (C, *S)), got shape {tuple(img.shape)}."
        )
    if single_channel and img.shape[0] != 1:
        raise ValueError(
            f"{what}: expected a single-channel {spatial_dims}-D image, got {img.shape[0]} channels "
            f"(a {spatial_dims + 1}-D array, shape {tuple(img.shape)})."
        )
    img = img.float()
    if not torch.isfinite(img).all():
        raise ValueError(f"{what}: contains NaN or infinite voxels.")
    return img
