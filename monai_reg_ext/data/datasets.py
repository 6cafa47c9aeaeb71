"""Paired, unpaired and grouped registration datasets with DeepReg's staged random sampling.

Each item is a MONAI dict sample (after ``transform``): ``moving_image``, ``fixed_image`` ``(1, *S)`` float32
MetaTensors (their ``.meta`` keeps the file name, affine, original affine and original ``spatial_shape``),
``moving_label``, ``fixed_label`` ``(L, *S)`` when labelled, and identifiers ``moving_image_id``, ``fixed_image_id``,
``pair_index``, ``label_index`` (``-1`` = all labels). Layouts and examples: ``docs/data.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from ..transforms.preprocess import registration_preprocessing
from .layouts import (
    ImageEntry,
    entries_from_datalist,
    find_entries,
    find_paired_entries,
    group_entries,
    paired_entries_from_datalist,
)

__all__ = ["RegistrationDataset", "PairedDataset", "UnpairedDataset", "GroupedDataset"]

SampleLabel = Literal["sample", "all"]


def _user_error(error: BaseException) -> BaseException | None:
    """The innermost ``ValueError``/``FileNotFoundError`` in the ``__cause__`` chain of a MONAI wrapper error."""
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (ValueError, FileNotFoundError)):
            found = error
        error = error.__cause__
    return found


def _require_one_source(dir: object, datalist: object) -> None:
    """Raise ValueError unless exactly one of ``dir`` and ``datalist`` is given."""
    if (dir is None) == (datalist is None):
        raise ValueError("give exactly one of dir and datalist.")


def _image_entries(
    dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
    datalist: str | os.PathLike | None,
    datalist_key: str,
    labeled: bool | None,
    format: Literal["nifti", "h5"] | None,
    grouped: bool,
) -> tuple[list[ImageEntry], bool]:
    """Entries (and whether labelled) of the unpaired/grouped layout under ``dir``, else of the JSON ``datalist``."""
    if dir is not None:
        return find_entries(dir, labeled, format, grouped=grouped)
    return entries_from_datalist(datalist, datalist_key, labeled, grouped=grouped)


class RegistrationDataset(Dataset):
    """Base class: pairs of :class:`~monai_reg_ext.data.layouts.ImageEntry`, loaded and transformed on access.

    Subclasses implement :meth:`_epoch_pairs`. The pairs of an epoch depend only on ``(seed, epoch)``, so every
    DataLoader worker sees the same list; call :meth:`set_epoch` before iterating over each epoch (with
    ``num_workers > 0``, before the loader's iterator is created, i.e. without ``persistent_workers``).
    """

    def __init__(
        self,
        entries: list[ImageEntry],
        labeled: bool,
        spatial_size: Sequence[int] | None,
        transform: Callable | None,
        sample_label: SampleLabel,
        seed: int,
        shuffle: bool,
    ):
        if sample_label not in ("sample", "all"):
            raise ValueError(f"sample_label must be 'sample' or 'all', got '{sample_label}'.")
        self.entries = entries
        self.labeled = labeled
        self.transform = transform if transform is not None else registration_preprocessing(spatial_size)
        self.sample_label = sample_label
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self._pairs_cache: tuple[int, list[tuple[int, int]]] | None = None

    # ------------------------------------------------------------------ sampling
    def _rng(self, *extra: int) -> np.random.Generator:
        # shuffle=False: a fixed evaluation set, the same pairs (and labels) every epoch
        return np.random.default_rng([self.seed, self.epoch if self.shuffle else 0, *extra])

    def _epoch_pairs(self) -> list[tuple[int, int]]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose pairs (and sampled labels) are served; deterministic given ``seed`` and ``epoch``."""
        self.epoch = int(epoch)

    def pairs(self, epoch: int | None = None) -> list[tuple[str, str]]:
        """``(moving_id, fixed_id)`` of every pair of ``epoch`` (default: the current one), in serving order."""
        current = self.epoch
        if epoch is not None:
            self.set_epoch(epoch)
        try:
            return [(self.entries[m].id, self.entries[f].id) for m, f in self._index_pairs()]
        finally:
            self.set_epoch(current)

    def _index_pairs(self) -> list[tuple[int, int]]:
        if self._pairs_cache is None or self._pairs_cache[0] != self.epoch:
            self._pairs_cache = (self.epoch, self._epoch_pairs())
        return self._pairs_cache[1]

    def __len__(self) -> int:
        return len(self._index_pairs())

    # ------------------------------------------------------------------ loading
    def _moving_fixed(self, index: int) -> tuple[ImageEntry, ImageEntry]:
        m, f = self._index_pairs()[index]
        return self.entries[m], self.entries[f]

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"pair index {index} out of range for {n} pairs.")
        index = index % n
        moving, fixed = self._moving_fixed(index)
        sample: dict = {"moving_image": moving.image, "fixed_image": fixed.image}
        if self.labeled:
            sample["moving_label"] = list(moving.label) if len(moving.label) > 1 else moving.label[0]
            sample["fixed_label"] = list(fixed.label) if len(fixed.label) > 1 else fixed.label[0]
        try:
            sample = dict(self.transform(sample))
        except RuntimeError as e:  # MONAI's Compose wraps errors; surface ours (they name the file)
            inner = _user_error(e)
            if inner is None:
                raise
            raise inner from e
        sample.update(moving_image_id=moving.id, fixed_image_id=fixed.id, pair_index=index)
        if self.labeled:
            ml, fl = sample["moving_label"], sample["fixed_label"]
            if ml.shape[0] != fl.shape[0]:
                raise ValueError(
                    f"moving label {moving.label} has {ml.shape[0]} labels but fixed label {fixed.label} has "
                    f"{fl.shape[0]}; expected the same number."
                )
            label_index = -1
            if self.sample_label == "sample":
                label_index = int(self._rng(index, 1).integers(ml.shape[0]))
                sample["moving_label"] = ml[label_index : label_index + 1]
                sample["fixed_label"] = fl[label_index : label_index + 1]
            sample["label_index"] = label_index
        return sample


class PairedDataset(RegistrationDataset):
    """Paired images: ``moving_images/``, ``fixed_images/`` (+ ``moving_labels/``, ``fixed_labels/``), matched by id.

    One epoch = every pair once (shuffled with ``shuffle=True``).

    Args:
        dir: data folder, or a list of folders (cross-validation folds) combined in order; each holds the four
            sub-folders, or ``moving_images.h5`` etc. with matching keys.
        labeled: ``True`` requires labels, ``False`` ignores them, ``None`` uses them when present.
        spatial_size: target shape of both images (default transform only).
        moving_spatial_size: target shape of the moving image (default transform only).
        fixed_spatial_size: target shape of the fixed image (default transform only).
        transform: a callable on the dict sample, e.g. a MONAI ``Compose`` starting with loading (see
            :func:`~monai_reg_ext.transforms.registration_preprocessing`); ``None`` = that default.
        sample_label: ``"sample"`` one random label per pair (training), ``"all"`` every label.
        seed: seed of the sampling.
        shuffle: reshuffle the pairs each epoch (training); ``False`` serves the same pairs in a fixed order every
            epoch (validation, test).
        format: ``"nifti"`` (any image files MONAI reads), ``"h5"``, or ``None`` to detect.
        datalist: a MONAI-style JSON datalist used instead of ``dir`` (see :meth:`from_datalist`).
        datalist_key: the list to read in ``datalist``.

    Example:
        >>> ds = PairedDataset("data/train", spatial_size=(64, 64, 64))  # doctest: +SKIP
        >>> s = ds[0]; s["moving_image"].shape, s["moving_image_id"]  # doctest: +SKIP
    """

    def __init__(
        self,
        dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        labeled: bool | None = None,
        spatial_size: Sequence[int] | None = None,
        transform: Callable | None = None,
        sample_label: SampleLabel = "sample",
        seed: int = 0,
        shuffle: bool = True,
        format: Literal["nifti", "h5"] | None = None,
        *,
        moving_spatial_size: Sequence[int] | None = None,
        fixed_spatial_size: Sequence[int] | None = None,
        datalist: str | os.PathLike | None = None,
        datalist_key: str = "training",
    ):
        _require_one_source(dir, datalist)
        if dir is not None:
            pairs, labeled = find_paired_entries(dir, labeled, format)
        else:
            pairs, labeled = paired_entries_from_datalist(datalist, datalist_key, labeled)
        if transform is None and (moving_spatial_size is not None or fixed_spatial_size is not None):
            transform = registration_preprocessing(
                spatial_size, moving_spatial_size=moving_spatial_size, fixed_spatial_size=fixed_spatial_size
            )
        entries = [e for pair in pairs for e in pair]  # moving 2i, fixed 2i + 1
        super().__init__(entries, labeled, spatial_size, transform, sample_label, seed, shuffle)

    @classmethod
    def from_datalist(cls, path: str | os.PathLike, key: str = "training", **kwargs) -> PairedDataset:
        """Build from a JSON datalist ``{key: [{"moving_image", "fixed_image", "moving_label", "fixed_label"}]}``.

        Relative paths are relative to the JSON file; labels may be lists of files (one per label).
        """
        return cls(datalist=path, datalist_key=key, **kwargs)

    def _epoch_pairs(self) -> list[tuple[int, int]]:
        order = np.arange(len(self.entries) // 2)
        if self.shuffle:
            order = self._rng().permutation(order)
        return [(2 * int(i), 2 * int(i) + 1) for i in order]


class UnpairedDataset(RegistrationDataset):
    """Unpaired images: ``images/`` (+ ``labels/``); each epoch shuffles them and pairs without replacement.

    One epoch has ``floor(N / 2)`` pairs (DeepReg); with ``shuffle=False`` the pairs are ``(0, 1), (2, 3), ...`` in
    natural id order (deterministic validation/test).

    Args:
        dir: data folder(s) holding ``images/`` (or ``images.h5``) and optionally ``labels/`` (``labels.h5``).
        labeled, spatial_size, transform, sample_label, seed, shuffle, format, datalist, datalist_key: as
            :class:`PairedDataset` (datalist items: ``{"image", "label"}``).

    Example:
        >>> ds = UnpairedDataset(["folds/0", "folds/1"], spatial_size=(64, 64, 64), seed=1)  # doctest: +SKIP
        >>> ds.set_epoch(3); len(ds)  # doctest: +SKIP
    """

    def __init__(
        self,
        dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        labeled: bool | None = None,
        spatial_size: Sequence[int] | None = None,
        transform: Callable | None = None,
        sample_label: SampleLabel = "sample",
        seed: int = 0,
        shuffle: bool = True,
        format: Literal["nifti", "h5"] | None = None,
        *,
        datalist: str | os.PathLike | None = None,
        datalist_key: str = "training",
    ):
        _require_one_source(dir, datalist)
        entries, labeled = _image_entries(dir, datalist, datalist_key, labeled, format, grouped=False)
        if len(entries) < 2:
            raise ValueError(f"unpaired data needs at least 2 images, found {len(entries)} in {dir or datalist}.")
        super().__init__(entries, labeled, spatial_size, transform, sample_label, seed, shuffle)

    @classmethod
    def from_datalist(cls, path: str | os.PathLike, key: str = "training", **kwargs) -> UnpairedDataset:
        """Build from a JSON datalist ``{key: [{"image": ..., "label": ...}]}``."""
        return cls(datalist=path, datalist_key=key, **kwargs)

    def _epoch_pairs(self) -> list[tuple[int, int]]:
        n = len(self.entries)
        order = self._rng().permutation(n) if self.shuffle else np.arange(n)
        return [(int(order[2 * k]), int(order[2 * k + 1])) for k in range(n // 2)]


class GroupedDataset(RegistrationDataset):
    """Grouped images: ``images/<group>/<image>`` (+ ``labels/<group>/<image>``), H5 keys ``group-<g>-<i>``.

    Sampling (DeepReg):

    - ``sample_image_in_group=True`` (staged): each epoch shuffles the groups and yields one pair per group: with
      probability ``intra_group_prob`` two different images of that group (ordered by ``intra_group_option``),
      otherwise one image of it (moving) and one of another random group (fixed). ``len = number of groups``.
    - ``sample_image_in_group=False``: every pair, shuffled when ``shuffle``. ``intra_group_prob`` must be 0 (inter:
      ``sum(N)(sum(N) - 1) - sum(n(n - 1))`` pairs) or 1 (intra: ``sum(n(n - 1) / 2)`` for forward/backward,
      ``sum(n(n - 1))`` unconstrained).

    Images inside a group are ordered by natural sort of their names (``t2`` before ``t10``); ``forward`` means
    moving before fixed in that order, ``backward`` the reverse. A group of one image cannot give an intra-group
    pair: an error when ``intra_group_prob == 1``; with a mixed probability such a group always gives an inter-group
    pair.

    Args:
        dir: data folder(s) holding ``images/`` (or ``images.h5``); groups of different folders stay distinct.
        intra_group_prob: 0 = inter-group only, 1 = intra-group only, between = mixed.
        intra_group_option: ``"forward"``, ``"backward"`` or ``"unconstrained"``.
        sample_image_in_group: staged sampling (one pair per group per epoch) or all pairs.
        labeled, spatial_size, transform, sample_label, seed, shuffle, format, datalist, datalist_key: as
            :class:`PairedDataset` (datalist items: ``{"image", "label", "group"}``).

    Example:
        >>> ds = GroupedDataset("data", intra_group_prob=1.0, intra_group_option="forward",
        ...                     sample_image_in_group=False, spatial_size=(64, 64, 32))  # doctest: +SKIP
    """

    def __init__(
        self,
        dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        intra_group_prob: float = 1.0,
        intra_group_option: Literal["forward", "backward", "unconstrained"] = "forward",
        sample_image_in_group: bool = True,
        labeled: bool | None = None,
        spatial_size: Sequence[int] | None = None,
        transform: Callable | None = None,
        sample_label: SampleLabel = "sample",
        seed: int = 0,
        shuffle: bool = True,
        format: Literal["nifti", "h5"] | None = None,
        *,
        datalist: str | os.PathLike | None = None,
        datalist_key: str = "training",
    ):
        _require_one_source(dir, datalist)
        if not 0.0 <= intra_group_prob <= 1.0:
            raise ValueError(f"intra_group_prob must be in [0, 1], got {intra_group_prob}.")
        if intra_group_option not in ("forward", "backward", "unconstrained"):
            raise ValueError(
                f"intra_group_option must be 'forward', 'backward' or 'unconstrained', got '{intra_group_option}'."
            )
        if not sample_image_in_group and intra_group_prob not in (0.0, 1.0):
            raise ValueError(
                f"mixing intra- and inter-group pairs (intra_group_prob={intra_group_prob}) needs "
                "sample_image_in_group=True; with False, intra_group_prob must be 0 or 1."
            )
        source = dir if dir is not None else datalist
        entries, labeled = _image_entries(dir, datalist, datalist_key, labeled, format, grouped=True)
        self.group_names, self.groups = group_entries(entries)
        if intra_group_prob < 1 and len(self.groups) < 2:
            raise ValueError(
                f"inter-group sampling (intra_group_prob={intra_group_prob}) needs at least 2 groups, "
                f"found {len(self.groups)} in {source}."
            )
        if intra_group_prob == 1:
            small = [g for g, members in zip(self.group_names, self.groups) if len(members) < 2]
            if small:
                raise ValueError(
                    f"intra-group sampling needs at least 2 images per group; group(s) {small[:5]} in {source} "
                    "have fewer."
                )
        self.intra_group_prob = float(intra_group_prob)
        self.intra_group_option = intra_group_option
        self.sample_image_in_group = sample_image_in_group
        super().__init__(entries, labeled, spatial_size, transform, sample_label, seed, shuffle)

    @classmethod
    def from_datalist(cls, path: str | os.PathLike, key: str = "training", **kwargs) -> GroupedDataset:
        """Build from a JSON datalist ``{key: [{"image": ..., "label": ..., "group": ...}]}``."""
        return cls(datalist=path, datalist_key=key, **kwargs)

    def _ordered(self, i: int, j: int) -> tuple[int, int]:
        if self.intra_group_option == "forward":
            return min(i, j), max(i, j)
        if self.intra_group_option == "backward":
            return max(i, j), min(i, j)
        return i, j

    def _all_pairs(self) -> list[tuple[int, int]]:
        pairs: list[tuple[int, int]] = []
        if self.intra_group_prob == 1:
            for members in self.groups:
                for a in range(len(members)):
                    for b in range(len(members)):
                        if a == b:
                            continue
                        if self.intra_group_option == "unconstrained" or (
                            (a < b) == (self.intra_group_option == "forward")
                        ):
                            pairs.append((members[a], members[b]))
        else:
            for g1, m1 in enumerate(self.groups):
                for g2, m2 in enumerate(self.groups):
                    if g1 != g2:
                        pairs.extend((i, j) for i in m1 for j in m2)
        return pairs

    def _epoch_pairs(self) -> list[tuple[int, int]]:
        rng = self._rng()
        if not self.sample_image_in_group:
            pairs = self._all_pairs()
            if self.shuffle:
                pairs = [pairs[int(i)] for i in rng.permutation(len(pairs))]
            return pairs
        order = rng.permutation(len(self.groups)) if self.shuffle else np.arange(len(self.groups))
        pairs = []
        for g in (int(x) for x in order):
            members = self.groups[g]
            intra = rng.random() < self.intra_group_prob and len(members) >= 2
            if intra:
                a, b = (int(x) for x in rng.choice(len(members), size=2, replace=False))
                a, b = self._ordered(a, b)
                pairs.append((members[a], members[b]))
            else:
                other = [h for h in range(len(self.groups)) if h != g]
                g2 = other[int(rng.integers(len(other)))]
                pairs.append(
                    (members[int(rng.integers(len(members)))], self.groups[g2][int(rng.integers(len(self.groups[g2])))])
                )
        return pairs
