"""The pieces of the bundles' MONAI inference workflow (``configs/inference.json``: a ``SupervisedEvaluator`` over a
list of pairs), so that MONAI's ``ConfigWorkflow`` / ``monai.bundle run inference`` drive the same registration steps
as ``monai-reg register`` / ``predict``.

:func:`read_pairs` (the datalist), :class:`LoadRegistrationPaird` and :class:`RegistrationInputd` (preprocessing),
:func:`collate_pairs` (the DataLoader's ``collate_fn``), the network on ``(B, 2, *S)`` (``RegistrationNet`` returns the
DDF tensor), :class:`SaveRegistrationd` (postprocessing: outputs on each fixed image's native grid, as
``monai-reg register`` writes them), :class:`RegistrationSummary` (a handler: ``metrics.csv`` and ``summary.csv``) and
:func:`check_outputs` (refuses to replace an earlier run without ``--overwrite``). It sits on :mod:`monai_reg_ext.api`
(layer 5, beside the command line; ``docs/architecture.md``). See ``docs/distribution.md`` ("MONAI bundle tools").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from .api.register import check_world_overlap, describe_pair, prepare_inputs, score, to_native
from .api.result import RegistrationResult, minmax, write_metric_tables
from .spatial import resize_image

__all__ = [
    "read_pairs",
    "LoadRegistrationPaird",
    "RegistrationInputd",
    "collate_pairs",
    "SaveRegistrationd",
    "RegistrationSummary",
    "check_outputs",
]

_PAIR_KEYS = {
    "moving_image": ("moving_image", "moving"),
    "fixed_image": ("fixed_image", "fixed"),
    "moving_label": ("moving_label",),
    "fixed_label": ("fixed_label",),
    "moving_landmarks": ("moving_landmarks",),
    "fixed_landmarks": ("fixed_landmarks",),
}


def read_pairs(pairs_file: str | os.PathLike) -> list[dict[str, str]]:
    """The datalist of the inference workflow: a pairs JSON file as a list of dicts of absolute paths.

    The file holds a list (or ``{"pairs": [...]}``) of objects with ``moving``/``fixed`` (or ``moving_image``/
    ``fixed_image``) and optional ``moving_label``/``fixed_label`` and ``moving_landmarks``/``fixed_landmarks``
    (their space: the JSON file's ``space``, else the entry's ``landmark_space``, else voxel indices); relative paths
    are read from the file's folder. Entry ``i`` becomes ``{"name": "pair_<i:03d>", "moving_image": ...,
    "fixed_image": ..., ...}`` (``name`` names the output folder, as ``monai-reg predict``; an entry's own ``name`` is
    kept as ``case``).

    Raises:
        FileNotFoundError / ValueError / KeyError: naming the file and the entry at fault.
    """
    path = Path(pairs_file)
    if not path.is_file():
        raise FileNotFoundError(f"pairs_file: {str(path)!r} is not a file.")
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"pairs_file: {str(path)!r} is not valid JSON ({err}).") from None
    items = items.get("pairs", items) if isinstance(items, dict) else items
    if not isinstance(items, list) or not items:
        raise ValueError(f"pairs_file: {str(path)!r} must hold a non-empty list of pairs.")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(
                f"pairs_file: entry {i} of {str(path)!r} must be an object with 'moving' and 'fixed', got "
                f"{type(item).__name__} {item!r:.60}."
            )
        entry = {"name": f"pair_{i:03d}"}
        if item.get("name"):
            entry["case"] = str(item["name"])
        for key, names in _PAIR_KEYS.items():
            value = next((item[n] for n in names if item.get(n)), None)
            if value is not None:
                entry[key] = str(Path(value) if Path(value).is_absolute() else path.parent / value)
        if "moving_image" not in entry or "fixed_image" not in entry:
            raise KeyError(f"pairs_file: entry {i} of {str(path)!r} lacks 'moving'/'fixed'; it has {sorted(item)}.")
        if item.get("landmark_space"):
            entry["landmark_space"] = str(item["landmark_space"])
        out.append(entry)
    return out


def _flag(value: Any, name: str) -> bool:
    """A config switch as a bool; the strings ``"true"`` / ``"false"`` (python-fire passes ``--x true`` so) count too.

    Raises:
        ValueError: for anything else, naming the option.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name}: expected true or false, got {value!r}.")


class LoadRegistrationPaird:
    """Read and check one pair of :func:`read_pairs` as ``monai-reg register`` does
    (:func:`monai_reg_ext.api.register.prepare_inputs`: the moving image and label are resampled onto the fixed grid
    in world coordinates when the grids differ; integer label maps become one-hot channels; a pair whose images do not
    overlap in world space is refused).

    Adds ``data[pair_key]``, a :class:`~monai_reg_ext.api.register.PreparedPair`; the paths stay in ``data``.

    Args:
        spatial_dims: 2 or 3.
        pair_key: where the prepared pair goes.
    """

    def __init__(self, spatial_dims: int = 3, pair_key: str = "pair") -> None:
        self.spatial_dims = int(spatial_dims)
        self.pair_key = pair_key

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        d[self.pair_key] = prepare_inputs(
            d["moving_image"], d["fixed_image"], self.spatial_dims, d.get("moving_label"), d.get("fixed_label")
        )
        check_world_overlap(d[self.pair_key], describe_pair(d["moving_image"], d["fixed_image"]))
        return d


class RegistrationInputd:
    """The network input ``(2, *spatial_size)`` of a prepared pair: the moving image (on the fixed grid) and the
    fixed image, each min-max scaled to [0, 1] and resized to the network grid (``align_corners=True``; with
    ``anti_aliasing``, a Gaussian low-pass first and min-max again after it), as ``monai-reg register`` and the
    training preprocessing do.

    Args:
        spatial_size: the network grid (the inference config's ``spatial_size``).
        anti_aliasing: as the training preprocessing's (the inference config's ``anti_aliasing``).
        pair_key: where :class:`LoadRegistrationPaird` put the pair.
        image_key: where the input goes (``"image"``, which MONAI's default ``prepare_batch`` feeds the network).
    """

    def __init__(
        self, spatial_size: Sequence[int], anti_aliasing: bool = False, pair_key: str = "pair", image_key: str = "image"
    ) -> None:
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.anti_aliasing = _flag(anti_aliasing, "anti_aliasing")
        self.pair_key, self.image_key = pair_key, image_key

    def _to_net(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x[:1]).float()
        x = resize_image(minmax(x)[None], self.spatial_size, anti_aliasing=self.anti_aliasing)
        return (minmax(x) if self.anti_aliasing else x)[0]

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        pair = d[self.pair_key]
        d[self.image_key] = torch.cat([self._to_net(pair.moving_on_fixed), self._to_net(pair.fixed)], dim=0)
        return d


def collate_pairs(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` of the inference workflow: tensors under ``image`` are stacked into a batch, every
    other entry (paths, names, prepared pairs on their own grids) becomes a list with one item per pair."""
    keys = list(dict.fromkeys(k for it in items for k in it))
    batch: dict[str, Any] = {k: [it.get(k) for it in items] for k in keys}
    if "image" in batch:
        batch["image"] = torch.stack([torch.as_tensor(x) for x in batch["image"]])
    return batch


class SaveRegistrationd:
    """Postprocessing of the inference workflow: for each pair of the batch, the network's DDF (``data[pred_key]``,
    ``(B, D, *spatial_size)``) is resized to the fixed image's native grid, the moving image and label are warped, the
    pair is scored (Dice per label, folding, SDlogJ, TRE with landmarks) and ``OUTPUT_DIR/<name>/`` receives what
    ``monai-reg register`` writes: ``warped_moving.nii.gz``, ``ddf.nii.gz`` (ITK displacement field, mm),
    ``warped_moving_label.nii.gz``, ``metrics.csv``, ``registration.png``.

    Adds ``data["metrics"]``: one row (``pair``, ``moving``, ``fixed``, metrics...) per pair, for
    :class:`RegistrationSummary`.

    Args:
        output_dir: where the per-pair folders go.
        overwrite: replace existing output files (otherwise FileExistsError).
        figure: write ``registration.png``.
        pred_key: the network output (``"pred"`` in MONAI's engines).
        pair_key: the prepared pairs (:class:`LoadRegistrationPaird`).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        overwrite: bool = False,
        figure: bool = True,
        pred_key: str = "pred",
        pair_key: str = "pair",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.overwrite, self.figure = _flag(overwrite, "overwrite"), _flag(figure, "figure")
        self.pred_key, self.pair_key = pred_key, pair_key

    def _save_one(self, pair: Any, ddf_net: torch.Tensor, entry: Mapping[str, Any], name: str) -> dict[str, Any]:
        ddf, warped = to_native(pair, ddf_net.float(), ddf_net.device)
        given = [entry.get(k) for k in _PAIR_KEYS]
        result = RegistrationResult(
            warped_image=MetaTensor(warped.cpu(), affine=pair.fixed.affine),
            ddf=ddf.cpu(),
            fixed=pair.fixed,
            moving_on_fixed=pair.moving_on_fixed,
            input_paths=tuple(str(x) for x in given if x is not None),
        )
        landmarks = (entry.get("moving_landmarks"), entry.get("fixed_landmarks"), entry.get("landmark_space"))
        result.metrics = score(pair, result, landmarks)
        result.save(self.output_dir / name, overwrite=self.overwrite, figure=self.figure)
        row = {"pair": name, "case": entry.get("case"), "moving": entry.get("moving_image")}
        row = {k: v for k, v in {**row, "fixed": entry.get("fixed_image"), **result.metrics}.items() if v is not None}
        return row

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        pred, pairs = d[self.pred_key], d[self.pair_key]
        names = d.get("name") or [f"pair_{i:03d}" for i in range(len(pairs))]
        rows = []
        with torch.no_grad():
            for i, pair in enumerate(pairs):
                entry = {k: v[i] for k, v in d.items() if isinstance(v, list) and len(v) == len(pairs)}
                rows.append(self._save_one(pair, pred[i : i + 1].detach(), entry, str(names[i])))
        d["metrics"] = rows
        return d


class RegistrationSummary:
    """Handler of the inference workflow: collects the rows of :class:`SaveRegistrationd` and, when the run
    completes, writes ``OUTPUT_DIR/metrics.csv`` (one row per pair) and ``OUTPUT_DIR/summary.csv`` (mean, median, std
    and count of each metric), as ``monai-reg predict``.

    Args:
        output_dir: where the two files go.
        metrics_key: where the rows are in ``engine.state.output``.
    """

    def __init__(self, output_dir: str | os.PathLike, metrics_key: str = "metrics") -> None:
        self.output_dir = Path(output_dir)
        self.metrics_key = metrics_key
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, lambda _e: self.write())

    def _collect(self, engine: Any) -> None:
        output = engine.state.output
        outputs = output if isinstance(output, list) else [output]
        for out in outputs:
            if isinstance(out, Mapping):
                self.rows.extend(out.get(self.metrics_key) or [])

    def write(self) -> None:
        """Write ``metrics.csv`` and ``summary.csv`` from the rows collected so far (atomically,
        :func:`~monai_reg_ext.api.result.write_metric_tables`)."""
        write_metric_tables(self.output_dir, self.rows)


def check_outputs(output_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """First step of the inference workflow's ``run``: stop, with one line and no traceback, when ``output_dir``
    holds the outputs of an earlier run (``metrics.csv``, ``summary.csv`` or ``pair_*``) and ``overwrite`` is false.

    Raises:
        SystemExit: naming the folder and the ``--overwrite`` / ``--output_dir`` options (``monai.bundle run`` prints
            the message alone and exits with status 1).
    """
    out = Path(output_dir)
    if _flag(overwrite, "overwrite") or not out.is_dir():
        return
    earlier = ("metrics.csv", "summary.csv")
    found = sorted(p.name for p in out.iterdir() if p.name in earlier or p.name.startswith("pair_"))
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise SystemExit(
            f"inference: {out} holds the outputs of an earlier run ({shown}); add --overwrite to replace them, "
            "or --output_dir DIR to write elsewhere."
        )
