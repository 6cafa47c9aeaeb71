"""Pairs to evaluate: what a pairs file names (:class:`PairSpec`) and what is scored (:class:`Pair`).

A :class:`Pair` holds everything on the grid the DDF lives on (the *fixed grid*): the fixed image, label, masks and
landmarks, and the moving image and label that the DDF pulls (``warped(x) = moving(x + ddf(x))``,
``docs/conventions.md``). Two loaders build one from a :class:`PairSpec`:

- :func:`load_pair`: the files' native fixed grid (the grid :func:`monai_reg_ext.register` returns its DDF on);
  optionally the moving image, label and landmarks are first resampled onto it in world coordinates, as
  ``register`` does when the grids differ.
- :func:`preprocess_pair`: the network grid, through the training preprocessing
  (:func:`monai_reg_ext.transforms.registration_preprocessing`: linear resize, min-max scaling).

Bundles with their own sampling (grouped frames, H5 folds) build :class:`Pair` objects directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["PairSpec", "Pair", "read_pairs", "load_pair", "preprocess_pair"]

_KEYS = {
    "moving": ("moving", "moving_image"),
    "fixed": ("fixed", "fixed_image"),
    "moving_label": ("moving_label",),
    "fixed_label": ("fixed_label",),
    "moving_landmarks": ("moving_landmarks",),
    "fixed_landmarks": ("fixed_landmarks",),
    "true_ddf": ("ddf", "true_ddf"),
}
_MASK_KEYS = ("fov", "mask")


@dataclass(frozen=True)
class PairSpec:
    """The files of one pair (absolute paths, or H5 references ``file.h5::key``).

    Attributes:
        moving, fixed: the images.
        moving_label, fixed_label: labels ``(*S)`` or one-hot ``(*S, L)`` in [0, 1].
        moving_landmarks, fixed_landmarks: corresponding points (CSV/JSON, :func:`monai_reg_ext.io.read_landmarks`).
        true_ddf: a known pull DDF ``(*S, D)`` in fixed voxels (synthetic pairs).
        masks: named region masks on the fixed grid (e.g. ``{"fov": ...}``, an ultrasound field of view).
        name: the pair's name in results (default: the fixed file's stem).
        subject: an optional group or subject name, copied into every result row.
    """

    moving: str
    fixed: str
    moving_label: str | None = None
    fixed_label: str | None = None
    moving_landmarks: str | None = None
    fixed_landmarks: str | None = None
    true_ddf: str | None = None
    masks: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    subject: str = ""

    @classmethod
    def from_entry(cls, item: Mapping[str, Any], root: str | os.PathLike) -> PairSpec:
        """A pairs-file entry (keys ``moving``/``moving_image``, ``fixed``..., ``ddf``, ``fov``, ``*_mask``, ``name``,
        ``subject``; relative paths are read from ``root``).

        Raises:
            ValueError: an entry without a moving or fixed image (its keys are named).
        """

        def resolve(value: str) -> str:
            return value if Path(value).is_absolute() else str(Path(root) / value)

        found = {}
        for field_name, keys in _KEYS.items():
            value = next((item[k] for k in keys if item.get(k)), None)
            if value is not None:
                found[field_name] = resolve(str(value))
        if "moving" not in found or "fixed" not in found:
            raise ValueError(f"pairs entry: expected 'moving' and 'fixed' images, got keys {sorted(item)}.")
        masks = {k: resolve(str(v)) for k, v in item.items() if k in _MASK_KEYS or k.endswith("_mask")}
        masks.update({k: resolve(str(v)) for k, v in dict(item.get("masks") or {}).items()})
        name = str(item.get("name") or Path(found["fixed"].split("::")[-1]).name.split(".")[0])
        return cls(**found, masks=masks, name=name, subject=str(item.get("subject", "")))


@dataclass
class Pair:
    """One pair on its fixed grid, ready to score.

    Attributes:
        name: the pair's name in results.
        moving_image, fixed_image: ``(1, C, *S)``.
        moving_label, fixed_label: ``(1, L, *S)`` in [0, 1], or None.
        moving_landmarks: ``(N, D)`` voxel indices of the moving image (of the fixed grid once resampled).
        fixed_landmarks: ``(N, D)`` voxel indices of the fixed grid.
        fixed_affine, moving_affine: ``(D+1, D+1)`` voxel-to-world (RAS mm) affines, None on a network grid.
        masks: named boolean masks ``(*S)`` of the fixed grid.
        true_ddf: ``(1, D, *S)`` known DDF in fixed voxels, or None.
        spec: the files it came from (peers and ``register`` read them), or None.
        info: extra columns of its result rows (subject, group, frame names...).
    """

    name: str
    moving_image: torch.Tensor
    fixed_image: torch.Tensor
    moving_label: torch.Tensor | None = None
    fixed_label: torch.Tensor | None = None
    moving_landmarks: np.ndarray | None = None
    fixed_landmarks: np.ndarray | None = None
    fixed_affine: np.ndarray | None = None
    moving_affine: np.ndarray | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    true_ddf: torch.Tensor | None = None
    spec: PairSpec | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The fixed grid's shape ``S``."""
        return tuple(self.fixed_image.shape[2:])

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size of the fixed grid in mm, ``(D,)`` (ones without an affine)."""
        d = len(self.spatial_shape)
        if self.fixed_affine is None:
            return np.ones(d)
        return np.sqrt((np.asarray(self.fixed_affine, dtype=np.float64)[:d, :d] ** 2).sum(0))


def read_pairs(path: str | os.PathLike) -> list[PairSpec]:
    """The pairs of a JSON file (a list, or ``{"pairs": [...]}``), relative paths read from its folder.

    Raises:
        FileNotFoundError: no such file. ValueError: not a non-empty list of pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {str(path)!r} does not exist.")
    items = json.loads(path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty list of pairs.")
    return [PairSpec.from_entry(item, path.parent) for item in items]


def _read(path: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    if not Path(path).is_file():
        raise FileNotFoundError(f"pair file {path!r} does not exist.")
    img = nib.load(path)
    return np.asarray(img.get_fdata(dtype=np.float64)), np.asarray(img.affine, dtype=np.float64)


def _channels_first(arr: np.ndarray, ndim: int) -> np.ndarray:
    """``(*S)`` -> ``(1, *S)``; ``(*S, L)`` -> ``(L, *S)``."""
    return arr[None] if arr.ndim == ndim else np.moveaxis(arr, -1, 0)


def _same_grid(a: np.ndarray, aff_a: np.ndarray, b: np.ndarray, aff_b: np.ndarray) -> bool:
    """Whether ``a`` (an image, or a label with a trailing channel axis) lies on the grid of image ``b``."""
    return a.shape[: b.ndim] == b.shape and np.allclose(aff_a, aff_b, atol=1e-4)


def _resample_to_fixed(arr: np.ndarray, affine: np.ndarray, fixed: np.ndarray, fixed_affine: np.ndarray):
    """``(C, *S_m)`` resampled onto the fixed grid in world coordinates (MONAI ``ResampleToMatch``, bilinear, border:
    what :func:`monai_reg_ext.register` does), float32."""
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    src = MetaTensor(torch.as_tensor(arr, dtype=torch.float32), affine=torch.as_tensor(affine))
    dst = MetaTensor(torch.as_tensor(fixed, dtype=torch.float32)[None], affine=torch.as_tensor(fixed_affine))
    return ResampleToMatch(mode="bilinear", padding_mode="border")(src, img_dst=dst).as_tensor().numpy()


def _landmarks(spec: PairSpec, shapes: tuple, affines: tuple, to_fixed: bool) -> tuple:
    from ..io import read_landmarks

    if not (spec.moving_landmarks and spec.fixed_landmarks):
        return None, None
    (m_shape, f_shape), (m_aff, f_aff) = shapes, affines
    fixed = read_landmarks(spec.fixed_landmarks, affine=f_aff, spatial_shape=f_shape)
    moving = read_landmarks(spec.moving_landmarks, affine=m_aff, spatial_shape=m_shape)
    if len(fixed) != len(moving):
        raise ValueError(f"{spec.fixed_landmarks} and {spec.moving_landmarks}: {len(fixed)} vs {len(moving)} points.")
    if to_fixed:  # moving voxel -> world -> fixed voxel
        homog = np.concatenate([moving, np.ones((len(moving), 1))], 1)
        moving = (np.linalg.inv(f_aff) @ m_aff @ homog.T).T[:, :-1]
    return moving, fixed


def load_pair(
    spec: PairSpec, *, resample_moving: bool = False, dtype: torch.dtype = torch.float64, binarise: bool = False
) -> Pair:
    """Load a pair on the fixed image's native grid (NIfTI files, read with nibabel).

    Args:
        spec: the files.
        resample_moving: resample the moving image and label onto the fixed grid in world coordinates when the grids
            differ (as :func:`monai_reg_ext.register` does) and express the moving landmarks in fixed voxels;
            otherwise moving and fixed must share one grid (shape and affine).
        dtype: dtype of the image, label and DDF tensors.
        binarise: labels ``> 0.5`` (masks stored with other values).

    Raises:
        FileNotFoundError: a missing file. ValueError: moving and fixed on different grids without
            ``resample_moving``, or a label / mask / true DDF that is not on its image's grid.
    """
    fixed, f_aff = _read(spec.fixed)
    moving, m_aff = _read(spec.moving)
    nd = fixed.ndim
    resample = not _same_grid(moving, m_aff, fixed, f_aff)
    if resample and not resample_moving:
        raise ValueError(
            f"{spec.moving} and {spec.fixed}: moving and fixed must share one grid (shape and affine); got shapes "
            f"{moving.shape} / {fixed.shape}."
        )
    labels = {}
    for key, ref, ref_aff in (("moving_label", moving, m_aff), ("fixed_label", fixed, f_aff)):
        if getattr(spec, key):
            lab, aff = _read(getattr(spec, key))
            if not _same_grid(lab, aff, ref, ref_aff):
                raise ValueError(f"{getattr(spec, key)}: {key} is not on its image's grid ({lab.shape}).")
            lab = _channels_first(lab, nd)
            labels[key] = (lab > 0.5).astype(np.float64) if binarise else lab
    m_shape, moving = moving.shape, moving[None]
    if resample:
        moving = _resample_to_fixed(moving, m_aff, fixed, f_aff)
        if "moving_label" in labels:
            labels["moving_label"] = _resample_to_fixed(labels["moving_label"], m_aff, fixed, f_aff)
    m_pts, f_pts = _landmarks(spec, (m_shape, fixed.shape), (m_aff, f_aff), resample)
    masks = {k: torch.as_tensor(_read(p)[0] > 0) for k, p in spec.masks.items()}
    true_ddf = None
    if spec.true_ddf:
        ddf, _ = _read(spec.true_ddf)
        if ddf.shape != (*fixed.shape, nd):
            raise ValueError(f"{spec.true_ddf}: expected a {(*fixed.shape, nd)} voxel DDF, got shape {ddf.shape}.")
        true_ddf = torch.as_tensor(np.moveaxis(ddf, -1, 0), dtype=dtype)[None]

    def tensor(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)[None]

    return Pair(
        name=spec.name,
        moving_image=tensor(moving),
        fixed_image=tensor(fixed[None]),
        moving_label=tensor(labels.get("moving_label")),
        fixed_label=tensor(labels.get("fixed_label")),
        moving_landmarks=m_pts,
        fixed_landmarks=f_pts,
        fixed_affine=f_aff,
        moving_affine=f_aff if resample else m_aff,
        masks=masks,
        true_ddf=true_ddf,
        spec=spec,
        info={"subject": spec.subject} if spec.subject else {},
    )


def preprocess_pair(
    spec: PairSpec, spatial_size: Sequence[int] | None, anti_aliasing: bool = False, name: str | None = None
) -> Pair:
    """Load a pair as the bundles train on it: min-max scaled, linearly resized to ``spatial_size`` (None keeps the
    files' shape), float32, no affine (scores are in network-grid voxels).

    Args:
        spec: the files (NIfTI or H5 references).
        spatial_size: the network grid.
        anti_aliasing: Gaussian low-pass before a downsampling resize (the bundle's inference setting).
        name: the pair's name (default ``spec.name``).
    """
    from ..transforms import registration_preprocessing

    sample = {"moving_image": spec.moving, "fixed_image": spec.fixed}
    if spec.moving_label and spec.fixed_label:
        sample.update(moving_label=spec.moving_label, fixed_label=spec.fixed_label)
    out = registration_preprocessing(spatial_size, anti_aliasing=anti_aliasing)(sample)

    def tensor(key: str) -> torch.Tensor | None:
        return torch.as_tensor(out[key]).float()[None] if key in out else None

    return Pair(
        name=spec.name if name is None else name,
        moving_image=tensor("moving_image"),
        fixed_image=tensor("fixed_image"),
        moving_label=tensor("moving_label"),
        fixed_label=tensor("fixed_label"),
        spec=spec,
        info={"subject": spec.subject} if spec.subject else {},
    )
