"""Folder, H5 and JSON-datalist layouts of registration data (the same folder names as DeepReg).

- paired: ``moving_images/``, ``fixed_images/``, optional ``moving_labels/``, ``fixed_labels/``;
- unpaired: ``images/``, optional ``labels/``;
- grouped: ``images/<group>/<image>``, optional ``labels/<group>/<image>``;

each either a folder of image files or one H5 file (``moving_images.h5`` ..., grouped keys ``group-<g>-<i>``).
Labels match images by id (the relative path without suffix, or the H5 key). Several labels per image are either
channels of one file (one-hot, last axis) or one sub-folder per label (``labels/<label_name>/<same ids>``).
See ``docs/data.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..io.folders import natural_key, scan_image_folder
from ..io.h5 import h5_ref, is_h5_ref, ref_exists, scan_h5_file, split_h5_ref

__all__ = [
    "ImageEntry",
    "detect_format",
    "find_entries",
    "find_paired_entries",
    "entries_from_datalist",
    "paired_entries_from_datalist",
    "group_entries",
]

Format = Literal["nifti", "h5"]


@dataclass(frozen=True)
class ImageEntry:
    """One image of a data set.

    Attributes:
        id: identifier (relative path without suffix, or H5 key); prefixed by the folder name when several
            folders are combined.
        image: file reference (a path, or ``"<file>.h5::<key>"``).
        label: label file references (one, or one per label folder), or ``None`` when unlabelled.
        group: group name (grouped data only).
    """

    id: str
    image: str
    label: tuple[str, ...] | None = None
    group: str | None = None


def _dirs(dir: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    dirs = [os.fspath(dir)] if isinstance(dir, (str, os.PathLike)) else [os.fspath(d) for d in dir]
    if not dirs:
        raise ValueError("dir must be a folder or a non-empty list of folders, got an empty list.")
    for d in dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"data folder '{d}' does not exist.")
    return dirs


def _prefixes(dirs: list[str]) -> list[str]:
    """Id prefixes keeping ids unique when several folders are combined ('' for a single folder)."""
    if len(dirs) == 1:
        return [""]
    names = [Path(d).resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return [n + "/" for n in names]
    return [Path(d).resolve().as_posix() + "/" for d in dirs]


def detect_format(dir: str, name: str, format: Format | None) -> Format:
    """Whether ``dir/name`` is a folder of image files (``"nifti"``) or an H5 file ``dir/name.h5`` (``"h5"``).

    Raises:
        FileNotFoundError: if neither exists (or the requested one is missing).
        ValueError: if ``format`` is unknown, or both exist and ``format`` is ``None``.
    """
    folder, h5 = os.path.join(dir, name), os.path.join(dir, name + ".h5")
    if format not in (None, "nifti", "h5"):
        raise ValueError(f"format must be 'nifti', 'h5' or None (auto), got '{format}'.")
    has_folder, has_h5 = os.path.isdir(folder), os.path.isfile(h5)
    if format == "nifti":
        if not has_folder:
            raise FileNotFoundError(f"expected a folder of images at '{folder}', but it does not exist.")
        return "nifti"
    if format == "h5":
        if not has_h5:
            raise FileNotFoundError(f"expected an H5 file at '{h5}', but it does not exist.")
        return "h5"
    if has_folder and has_h5:
        raise ValueError(f"both '{folder}' and '{h5}' exist; pass format='nifti' or format='h5'.")
    if has_folder:
        return "nifti"
    if has_h5:
        return "h5"
    raise FileNotFoundError(f"expected a folder '{folder}' or an H5 file '{h5}', found neither.")


def _label_exists(dir: str, name: str) -> bool:
    return os.path.isdir(os.path.join(dir, name)) or os.path.isfile(os.path.join(dir, name + ".h5"))


def _diff_message(what: str, expected: Sequence[str], got: Sequence[str]) -> str:
    missing = [k for k in expected if k not in set(got)]
    extra = [k for k in got if k not in set(expected)]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra:
        parts.append(f"unexpected {len(extra)}: {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    return f"{what}: ids do not match the images ({'; '.join(parts)})."


def _scan(dir: str, name: str, fmt: Format) -> dict[str, str]:
    """``{id: reference}`` for one images/labels source."""
    if fmt == "h5":
        path = os.path.join(dir, name + ".h5")
        return {k: h5_ref(path, k) for k in scan_h5_file(path)}
    return scan_image_folder(os.path.join(dir, name))


def _match_labels(dir: str, name: str, fmt: Format, image_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """Label references per image id (one file per image, or one sub-folder per label)."""
    where = os.path.join(dir, name + (".h5" if fmt == "h5" else ""))
    if fmt == "h5":
        labels = _scan(dir, name, fmt)
        if set(labels) != set(image_ids):
            raise ValueError(_diff_message(f"unknown or missing H5 keys in '{where}'", image_ids, list(labels)))
        return {k: (labels[k],) for k in image_ids}
    folder = os.path.join(dir, name)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"expected a folder of labels at '{folder}', but it does not exist.")
    direct = scan_image_folder(folder)
    if set(direct) == set(image_ids):
        return {k: (direct[k],) for k in image_ids}
    # one sub-folder per label: labels/<label_name>/<ids>
    subdirs = sorted(
        (d.name for d in Path(folder).iterdir() if d.is_dir() and not d.name.startswith(".")), key=natural_key
    )
    if subdirs:
        per_label = {s: scan_image_folder(os.path.join(folder, s)) for s in subdirs if _has_images(folder, s)}
        if per_label and len(per_label) == len(subdirs) and all(set(v) == set(image_ids) for v in per_label.values()):
            return {k: tuple(per_label[s][k] for s in per_label) for k in image_ids}
    raise ValueError(
        _diff_message(
            f"labels in '{folder}' (expected one label file per image, or one sub-folder per label)",
            image_ids,
            list(direct),
        )
    )


def _has_images(folder: str, sub: str) -> bool:
    try:
        scan_image_folder(os.path.join(folder, sub))
    except ValueError:
        return False
    return True


def _parse_group_key(key: str, where: str) -> tuple[str, str]:
    parts = key.split("-")
    if len(parts) != 3 or parts[0] != "group" or not parts[1] or not parts[2]:
        raise ValueError(f"H5 key '{key}' in '{where}': grouped H5 keys must be 'group-<group>-<image>'.")
    return parts[1], parts[2]


def find_entries(
    dir: str | os.PathLike | Sequence[str | os.PathLike],
    labeled: bool | None = None,
    format: Format | None = None,
    grouped: bool = False,
) -> tuple[list[ImageEntry], bool]:
    """Images (and labels) of an unpaired or grouped data set in one or several folders.

    Args:
        dir: a folder holding ``images/`` (or ``images.h5``) and optionally ``labels/`` (``labels.h5``), or a list
            of such folders (cross-validation folds), combined in order.
        labeled: ``True`` requires labels, ``False`` ignores them, ``None`` uses them when every folder has them.
        format: ``"nifti"`` (any image files), ``"h5"``, or ``None`` to detect per folder.
        grouped: grouped layout (``images/<group>/<image>``, H5 keys ``group-<g>-<i>``).

    Returns:
        ``(entries, labeled)``: entries in folder order, then natural order of ids.

    Raises:
        FileNotFoundError: missing folder or file.
        ValueError: no images, labels not matching images, bad H5 keys, a grouped image outside a group folder.
    """
    dirs = _dirs(dir)
    if labeled is None:
        labeled = all(_label_exists(d, "labels") for d in dirs)
    entries: list[ImageEntry] = []
    for d, prefix in zip(dirs, _prefixes(dirs)):
        fmt = detect_format(d, "images", format)
        images = _scan(d, "images", fmt)
        labels = _match_labels(d, "labels", fmt, list(images)) if labeled else {}
        for key, ref in images.items():
            group = None
            if grouped:
                if fmt == "h5":
                    g, i = _parse_group_key(key, os.path.join(d, "images.h5"))
                    group = prefix + g
                else:
                    if "/" not in key:
                        raise ValueError(
                            f"grouped data: image '{ref}' is not inside a group folder; "
                            "expected images/<group>/<image>."
                        )
                    group = prefix + key.rsplit("/", 1)[0]
            entries.append(ImageEntry(id=prefix + key, image=ref, label=labels.get(key), group=group))
    return entries, bool(labeled)


def find_paired_entries(
    dir: str | os.PathLike | Sequence[str | os.PathLike],
    labeled: bool | None = None,
    format: Format | None = None,
) -> tuple[list[tuple[ImageEntry, ImageEntry]], bool]:
    """``(moving, fixed)`` entries of a paired data set, matched by id.

    Raises:
        FileNotFoundError: missing folder or file.
        ValueError: moving and fixed ids differ, only one of moving/fixed labels exists, labels not matching.
    """
    dirs = _dirs(dir)
    if labeled is None:
        labeled = all(_label_exists(d, "moving_labels") or _label_exists(d, "fixed_labels") for d in dirs)
    pairs: list[tuple[ImageEntry, ImageEntry]] = []
    for d, prefix in zip(dirs, _prefixes(dirs)):
        fmt_m = detect_format(d, "moving_images", format)
        fmt_f = detect_format(d, "fixed_images", format)
        moving, fixed = _scan(d, "moving_images", fmt_m), _scan(d, "fixed_images", fmt_f)
        if set(moving) != set(fixed):
            raise ValueError(
                _diff_message(
                    f"fixed images in '{os.path.join(d, 'fixed_images')}' vs moving images in "
                    f"'{os.path.join(d, 'moving_images')}'",
                    list(moving),
                    list(fixed),
                )
            )
        ml: dict[str, tuple[str, ...]] = {}
        fl: dict[str, tuple[str, ...]] = {}
        if labeled:
            for name in ("moving_labels", "fixed_labels"):
                if not _label_exists(d, name):
                    raise FileNotFoundError(
                        f"labelled paired data needs both moving_labels and fixed_labels; "
                        f"'{os.path.join(d, name)}' (folder or .h5) does not exist."
                    )
            ml = _match_labels(d, "moving_labels", detect_format(d, "moving_labels", format), list(moving))
            fl = _match_labels(d, "fixed_labels", detect_format(d, "fixed_labels", format), list(moving))
        for key in moving:
            pairs.append(
                (
                    ImageEntry(id=prefix + key, image=moving[key], label=ml.get(key)),
                    ImageEntry(id=prefix + key, image=fixed[key], label=fl.get(key)),
                )
            )
    return pairs, bool(labeled)


def group_entries(entries: list[ImageEntry]) -> tuple[list[str], list[list[int]]]:
    """Group names (in order of first appearance) and, per group, the entry indices (natural order of ids)."""
    names: list[str] = []
    members: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        if e.group is None:
            raise ValueError(f"entry '{e.id}' has no group.")
        if e.group not in members:
            names.append(e.group)
            members[e.group] = []
        members[e.group].append(i)
    return names, [sorted(members[g], key=lambda i: natural_key(entries[i].id)) for g in names]


# ---------------------------------------------------------------- JSON datalists


def _load_datalist(path: str | os.PathLike, key: str) -> tuple[list[dict], str]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"datalist file '{path}' does not exist.")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read datalist '{path}' as JSON: {e}") from e
    if not isinstance(content, dict) or key not in content:
        keys = list(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"datalist '{path}': expected a JSON object with key '{key}', got keys {keys}.")
    items = content[key]
    if not isinstance(items, list) or not items:
        raise ValueError(f"datalist '{path}': '{key}' must be a non-empty list of entries.")
    return items, os.path.dirname(os.path.abspath(path))


def _resolve(value, base: str, where: str, field: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: '{field}' must be a path or a list of paths, got {value!r}.")
    out = []
    for v in values:
        v = os.path.expanduser(v)
        if is_h5_ref(v):
            p, k = split_h5_ref(v)
            v = h5_ref(p if os.path.isabs(p) else os.path.join(base, p), k)
        elif not os.path.isabs(v):
            v = os.path.join(base, v)
        if not ref_exists(v):
            raise FileNotFoundError(f"{where}: '{field}' file '{v}' does not exist.")
        out.append(v)
    return tuple(out)


def _entry(item, i: int, base: str, where: str, img: str, lab: str, labeled: bool | None, group: bool) -> ImageEntry:
    if not isinstance(item, dict) or img not in item:
        raise ValueError(f"{where} entry {i}: expected an object with key '{img}', got {item!r}.")
    image = _resolve(item[img], base, f"{where} entry {i}", img)
    if len(image) != 1:
        raise ValueError(f"{where} entry {i}: '{img}' must be a single path.")
    label = None
    if labeled is not False:
        if lab in item:
            label = _resolve(item[lab], base, f"{where} entry {i}", lab)
        elif labeled:
            raise ValueError(f"{where} entry {i}: labelled data expected key '{lab}', got keys {sorted(item)}.")
    g = None
    if group:
        if "group" not in item:
            raise ValueError(f"{where} entry {i}: grouped data expected key 'group', got keys {sorted(item)}.")
        g = str(item["group"])
    ident = str(item.get("id", os.path.basename(image[0]).split(".")[0] if not is_h5_ref(image[0]) else image[0]))
    return ImageEntry(id=ident, image=image[0], label=label, group=g)


def _check_all_or_none(entries: list[ImageEntry], where: str) -> bool:
    has = [e.label is not None for e in entries]
    if any(has) and not all(has):
        i = has.index(False)
        raise ValueError(f"{where}: entry {i} ('{entries[i].id}') has no label while others have; label all or none.")
    return all(has)


def entries_from_datalist(
    path: str | os.PathLike, key: str = "training", labeled: bool | None = None, grouped: bool = False
) -> tuple[list[ImageEntry], bool]:
    """Unpaired/grouped entries from a MONAI-style JSON datalist.

    Each item is ``{"image": path, "label": path | [paths], "group": name, "id": name}`` (``label``, ``id``
    optional, ``group`` required when grouped). Relative paths are relative to the JSON file's folder; H5 datasets
    are written ``"file.h5::key"``.
    """
    items, base = _load_datalist(path, key)
    where = f"datalist '{os.fspath(path)}' [{key}]"
    entries = [_entry(it, i, base, where, "image", "label", labeled, grouped) for i, it in enumerate(items)]
    return entries, _check_all_or_none(entries, where)


def paired_entries_from_datalist(
    path: str | os.PathLike, key: str = "training", labeled: bool | None = None
) -> tuple[list[tuple[ImageEntry, ImageEntry]], bool]:
    """Paired entries from a MONAI-style JSON datalist.

    Each item is ``{"moving_image", "fixed_image", "moving_label", "fixed_label", "id"}`` (labels and id optional).
    """
    items, base = _load_datalist(path, key)
    where = f"datalist '{os.fspath(path)}' [{key}]"
    pairs = []
    for i, it in enumerate(items):
        m = _entry(it, i, base, where, "moving_image", "moving_label", labeled, False)
        f = _entry(it, i, base, where, "fixed_image", "fixed_label", labeled, False)
        if (m.label is None) != (f.label is None):
            raise ValueError(f"{where} entry {i}: give both 'moving_label' and 'fixed_label' or neither.")
        pairs.append((m, f))
    return pairs, _check_all_or_none([m for m, _ in pairs], where)
