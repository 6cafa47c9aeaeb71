"""Load a registration network from a MONAI bundle folder (configs/inference.json + models/model.pt)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from .hub import warn_bundle_config

__all__ = ["BundleModel", "load_bundle", "infer_bundle_root", "run_pairs"]


@dataclass
class BundleModel:
    """A registration network ready for inference.

    Attributes:
        network: the network (eval mode), called as ``network(moving, fixed)`` and returning a dict with ``ddf`` (a
            ``RegistrationNet`` also takes ``network(cat([moving, fixed], 1))`` and returns the DDF tensor).
        spatial_size: the grid the network runs on, ``(H, W[, Z])``.
        bundle_dir: where it came from (None for a network given directly).
        config: the parsed inference config (empty for a network given directly).
        anti_aliasing: Gaussian low-pass before images are downsampled to ``spatial_size`` (the inference config's
            optional ``anti_aliasing``, default False; it must match the training preprocessing's).
    """

    network: nn.Module
    spatial_size: tuple[int, ...]
    bundle_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    anti_aliasing: bool = False


def load_bundle(
    bundle_dir: str | os.PathLike,
    device: str | torch.device | None = None,
    weights: str | os.PathLike | None = None,
    config_file: str = "configs/inference.json",
    overrides: dict[str, Any] | None = None,
) -> BundleModel:
    """Build a bundle's ``network_def`` and load its weights (``torch.load(..., weights_only=True)``).

    The inference config must define ``network_def`` and ``spatial_size`` (optional: ``anti_aliasing``); the
    weights default to ``<bundle_dir>/models/model.pt`` (a plain state dict, as MONAI's ``CheckpointSaver`` writes
    it, or a ``{"network": state_dict}`` / ``{"state_dict": ...}`` dict). ``overrides`` set config entries after
    reading (e.g. ``{"spatial_dims": 2, "spatial_size": [128, 128]}`` for a bundle's 2D weights).

    Raises:
        FileNotFoundError: naming the missing folder, config or weights file (NotADirectoryError for a file).
        ValueError: when the config lacks a key, the weights file is corrupt, or the weights do not fit the network
            (other architecture).
    """
    root = Path(bundle_dir)
    if root.is_file():
        raise NotADirectoryError(f"bundle {str(root)!r} is a file; expected a bundle folder (configs/, models/).")
    if not root.is_dir():
        raise FileNotFoundError(f"bundle folder {str(root)!r} does not exist.")
    cfg_path = root / config_file
    if not cfg_path.is_file():
        raise FileNotFoundError(f"bundle {str(root)!r}: no {config_file} (expected the inference config there).")
    parser = ConfigParser()
    warn_bundle_config(cfg_path)  # parsing runs the config's code: say so once, before it runs (docs/security.md)
    parser.read_config(str(cfg_path))
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    for key in ("network_def", "spatial_size"):
        if key not in parser:
            raise ValueError(f"{cfg_path}: missing key {key!r} (needed to build the registration network).")
    network = parser.get_parsed_content("network_def", instantiate=True)
    spatial_size = tuple(int(s) for s in parser.get_parsed_content("spatial_size"))
    anti_aliasing = parser.get_parsed_content("anti_aliasing") if "anti_aliasing" in parser else False
    if not isinstance(anti_aliasing, bool):
        raise ValueError(f"{cfg_path}: 'anti_aliasing' must be true or false, got {anti_aliasing!r}.")
    weights_path = Path(weights) if weights is not None else root / "models" / "model.pt"
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"bundle {str(root)!r}: weights file {str(weights_path)!r} not found (train the bundle or download it)."
        )
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated/corrupt zip, pickled objects refused by weights_only, ...
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{weights_path}: cannot load the weights (truncated or corrupt file, or not a state dict): "
            f"{type(err).__name__}: {first}"
        ) from None
    if isinstance(state, dict) and "network" in state and isinstance(state["network"], dict):
        state = state["network"]
    elif isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise ValueError(
            f"{weights_path}: the weights do not fit the network_def of {cfg_path} (another architecture?): "
            + " ".join(first)
        ) from None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    network = network.to(dev).eval()
    return BundleModel(
        network=network, spatial_size=spatial_size, bundle_dir=root, config=parser.config, anti_aliasing=anti_aliasing
    )


def infer_bundle_root(name: str | None = None, default: str = ".") -> str:
    """Find the bundle folder for a config's ``bundle_root`` when it is not given on the command line.

    Looks, in order, at the folder two levels above the first ``--config_file`` on the command line
    (``python -m monai.bundle run training --config_file bundles/NAME/configs/train.json``), at the current folder
    when it holds ``configs/metadata.json``, and at ``bundles/<name>`` below it. Falls back to ``default``.

    Args:
        name: the bundle's folder name, used for the ``bundles/<name>`` guess.
        default: returned when nothing matches.
    """
    import ast
    import sys

    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        value = None
        if arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        elif arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is None:
            continue
        if value.strip().startswith("["):
            try:
                value = ast.literal_eval(value)[0]
            except (ValueError, SyntaxError, IndexError):
                continue
        else:
            value = value.split(",")[0]
        root = Path(value).resolve().parent.parent
        if (root / "configs").is_dir():
            return str(root)
    cwd = Path.cwd()
    if (cwd / "configs" / "metadata.json").is_file():
        return str(cwd)
    if name and (cwd / "bundles" / name / "configs").is_dir():
        return str(cwd / "bundles" / name)
    return default


def run_pairs(
    pairs_file: str | os.PathLike,
    output_dir: str | os.PathLike,
    register_pair: Any,
    pairs: Any = None,
    shard: Any = (0, 1),
) -> dict[str, Any]:
    """Run ``register_pair(entry, data_dir, output_dir)`` on the named entries of a pairs JSON file.

    Used by the optimisation-based bundles, whose ``run`` entry registers a list of pairs without a network.

    Args:
        pairs_file: a JSON list of objects, each with a ``name``; relative paths in them are read from the file's folder
            (``data_dir`` given to ``register_pair``).
        output_dir: where ``register_pair`` writes and where ``metrics.json`` goes (``metrics_rank<r>.json`` when
            sharded).
        register_pair: ``(entry: dict, data_dir: Path, output_dir: Path) -> dict`` of metrics.
        pairs: names of the entries to run; None runs all.
        shard: ``(rank, world_size)``: this process runs every ``world_size``-th selected entry from ``rank``.

    Returns:
        ``{name: metrics}``.

    Raises:
        ValueError: naming the unknown pair names and the known ones.
    """
    import json

    pairs_path = Path(pairs_file)
    entries = json.loads(pairs_path.read_text())
    if pairs is not None:
        known = [e["name"] for e in entries]
        unknown = sorted(set(pairs) - set(known))
        if unknown:
            raise ValueError(f"pairs: expected names from {known}, got unknown {unknown}.")
        entries = [e for e in entries if e["name"] in set(pairs)]
    rank, world = int(shard[0]), int(shard[1])
    out_dir = Path(output_dir)
    summary = {e["name"]: register_pair(e, pairs_path.parent, out_dir) for e in entries[rank::world]}
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "metrics.json" if world == 1 else f"metrics_rank{rank}.json"
    (out_dir / name).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
