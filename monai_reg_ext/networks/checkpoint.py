"""Self-describing checkpoints: weights saved beside the constructor arguments, loadable with ``weights_only=True``.

A checkpoint file is ``{"state_dict": {...}, "config": {...}, "class": "RegistrationNet", "monai_reg_version": "...",
"extra": {...}}`` holding only tensors and plain Python types (VoxelMorph's idea of storing the constructor arguments
with the weights). Bare state-dict files, as Ignite's ``CheckpointSaver`` writes ``model.pt``, load when the config is
given. Network conventions: ``docs/conventions.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from .conditional import ConditionalSegmentationNet
from .registration import RegistrationNet

__all__ = ["save_checkpoint", "load_checkpoint", "read_torch_file", "weights_load_error", "NETWORK_CLASSES"]

NETWORK_CLASSES: dict[str, type[nn.Module]] = {
    "RegistrationNet": RegistrationNet,
    "ConditionalSegmentationNet": ConditionalSegmentationNet,
}
# keys under which a wrapper dict (e.g. Ignite's Checkpoint with several objects) may hold the network's state_dict
_NESTED_KEYS = ("state_dict", "model", "network", "net")


def _version() -> str:
    return str(__version__)


def weights_load_error(err: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed (without torch's advice to load unsafely)."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:
        detail = (text.split("WeightsUnpickler error:", 1)[1].strip().splitlines() or [""])[0]
        return f"refused by the weights-only unpickler (pickled Python objects can run code): {detail or '?'}"
    return f"{type(err).__name__}: {(text.splitlines() or [''])[0].split('. ')[0].rstrip('.')}"


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors naming ``what`` and the file.

    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a folder.
        ValueError: truncated or corrupt file, not a torch file, or pickled objects (refused, never run).
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {str(p)!r} is a directory; expected a checkpoint file.")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r}: no such checkpoint file.")
    try:
        return torch.load(str(p), map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, pickled objects refused by weights_only
        raise ValueError(
            f"{what} {p}: cannot load the checkpoint with torch.load(weights_only=True) (truncated or corrupt file, "
            f"or pickled objects): {weights_load_error(err)}."
        ) from None


def _check_plain(value: Any, where: str) -> None:
    """Raise ValueError unless ``value`` is made of tensors and plain Python types (``weights_only`` loadable)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"save_checkpoint: {where} expected str keys, got {k!r} ({type(k).__name__}).")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(
        f"save_checkpoint: {where} expected tensors or plain Python types (None, bool, int, float, str, list, dict), "
        f"got {type(value).__name__}."
    )


def save_checkpoint(net: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``net``'s weights and constructor arguments to ``path``.

    Args:
        net: a :class:`RegistrationNet` or :class:`ConditionalSegmentationNet` (anything with a ``config`` dict and a
            class listed in ``NETWORK_CLASSES``).
        path: output file (parent folders are created).
        **extra: plain values stored under ``"extra"`` (e.g. ``epoch=10``, ``metrics={"dice": 0.8}``).

    Returns:
        The path written.

    Raises:
        ValueError: ``net`` is not a known self-describing network, or ``extra`` holds non-plain objects.
    """
    cls_name = type(net).__name__
    if cls_name not in NETWORK_CLASSES or not isinstance(net, NETWORK_CLASSES[cls_name]):
        raise ValueError(f"save_checkpoint: expected one of {sorted(NETWORK_CLASSES)}, got {cls_name}.")
    _check_plain(extra, "extra")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {
        "state_dict": state,
        "config": net.config,
        "class": cls_name,
        "monai_reg_version": _version(),
        "extra": dict(extra),
    }
    from ..io.atomic import atomic_write_path

    path = Path(path)
    with atomic_write_path(path) as tmp:  # a crash while writing never leaves a truncated checkpoint
        torch.save(payload, tmp)
    return path


def _extract_state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, str | None]:
    """Split a loaded file into (state_dict, config or None, class name or None)."""
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"load_checkpoint: {path} expected a dict (checkpoint or state_dict), got {type(obj).__name__}."
        )
    if "state_dict" in obj and "config" in obj:
        return dict(obj["state_dict"]), dict(obj["config"]), obj.get("class")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None, None
    for key in _NESTED_KEYS:
        nested = obj.get(key)
        if isinstance(nested, Mapping) and nested and all(isinstance(v, torch.Tensor) for v in nested.values()):
            return dict(nested), None, None
    raise ValueError(
        f"load_checkpoint: {path} expected a monai-reg checkpoint (keys 'state_dict', 'config') or a state_dict "
        f"(tensor values, possibly under one of {_NESTED_KEYS}), got keys {sorted(map(str, obj))}."
    )


def _mismatch(net: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """Describe missing, unexpected and wrongly shaped keys of ``state`` for ``net`` ('' if they fit)."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]

    def _few(keys: list[str]) -> str:
        return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_few(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches: {_few(shapes)}")
    return "; ".join(parts)


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device | None = "cpu",
    config: Mapping[str, Any] | None = None,
    net_class: str | None = None,
    backbone: nn.Module | None = None,
) -> nn.Module:
    """Rebuild a network from a checkpoint written by :func:`save_checkpoint`, or from a bare state_dict.

    The file is read with ``torch.load(path, weights_only=True)``.

    Args:
        path: checkpoint file.
        map_location: device of the loaded tensors (the rebuilt net is moved there too when it is a device).
        config: constructor arguments (``net.config``); required for a bare state_dict (e.g. Ignite's ``model.pt``),
            and overrides the stored config otherwise.
        net_class: ``"RegistrationNet"`` or ``"ConditionalSegmentationNet"``; taken from the file when stored there,
            ``"RegistrationNet"`` by default for a bare state_dict.
        backbone: a prebuilt backbone module, required when the net was built with one (its config records only its
            class path).

    Returns:
        The network with the loaded weights, in eval mode.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a truncated or corrupt file (naming it), no config for a bare state_dict, an unknown class, or
            weights of another architecture (naming the path, the config and the mismatching keys).
    """
    path = Path(path)
    if not path.is_file() and not path.is_dir():
        raise FileNotFoundError(f"load_checkpoint: expected an existing checkpoint file, got {str(path)!r}.")
    obj = read_torch_file(path, "load_checkpoint:", map_location=map_location)
    state, stored_config, stored_class = _extract_state_dict(obj, path)
    cfg = dict(config) if config is not None else stored_config
    if cfg is None:
        raise ValueError(
            f"load_checkpoint: {path} is a bare state_dict; expected the network config (net.config) as the config "
            "argument, got None."
        )
    cls_name = net_class or stored_class or "RegistrationNet"
    if cls_name not in NETWORK_CLASSES:
        raise ValueError(f"load_checkpoint: class expected one of {sorted(NETWORK_CLASSES)}, got {cls_name!r}.")
    net = NETWORK_CLASSES[cls_name].from_config(cfg, backbone=backbone)  # type: ignore[attr-defined]
    problem = _mismatch(net, state)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"load_checkpoint: the weights in {path} do not fit {cls_name} with config {cfg}: "
            f"{problem or str(err).splitlines()[0]}."
        ) from err
    if isinstance(map_location, (str, torch.device)):
        net = net.to(map_location)
    return net.eval()
