"""Exact resumption of training: the RNG states travel in the checkpoint, and a bad checkpoint is refused up front.

:class:`RngState` is a checkpointable object (``state_dict`` / ``load_state_dict``) holding every random number
generator a training run draws from: torch's (CPU and CUDA), numpy's and Python's global ones, the generators of the
DataLoader and its sampler, and the ``R`` of every MONAI random transform of its dataset. :class:`AtomicCheckpointSaver`
(``monai_reg_ext.engines``) adds one to any checkpoint that holds a ``trainer``, and :class:`ResumeCheckpointLoader`
restores it, so a run resumed from ``checkpoint_epoch=N.pt`` draws the same shuffles, augmentations and noise as the
run that was not interrupted (``docs/reliability.md``). Its state holds tensors and plain Python values only, so
``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.handlers import CheckpointLoader

from ..networks.checkpoint import read_torch_file

__all__ = ["RngState", "ResumeCheckpointLoader", "FreshLoaderEachEpoch", "check_resume_checkpoint", "RESUME_KEYS"]

#: what a checkpoint must hold to resume training from it (``rng`` is optional: older checkpoints lack it)
RESUME_KEYS = ("network", "optimizer", "trainer")
_MAX_DEPTH = 8


def _numpy_state(state: tuple) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _numpy_tuple(state: Mapping[str, Any]) -> tuple:
    keys = np.asarray(torch.as_tensor(state["keys"]).numpy(), dtype=np.uint32)
    return (state["name"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["cached_gaussian"]))


def _children(obj: Any) -> list[Any]:
    """What may hold random transforms: a dataset's ``dataset`` / ``transform``, a ``Compose``'s ``transforms``, and
    the transforms a (dictionary) transform wraps (MONAI's ``RandGaussianNoised`` draws from its inner transform)."""
    from monai.transforms import Transform

    if isinstance(obj, (list, tuple)):
        return list(obj)
    named = [getattr(obj, a, None) for a in ("dataset", "datasets", "transform", "transforms")]
    wrapped = [v for v in vars(obj).values() if isinstance(v, Transform)] if hasattr(obj, "__dict__") else []
    return [c for c in named + wrapped if c is not None]


def random_states(root: Any) -> list[np.random.RandomState]:
    """The ``np.random.RandomState`` (``R``) of every random transform reachable from ``root`` (a DataLoader or a
    dataset), in a fixed traversal order."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if obj is None or id(obj) in seen or depth > _MAX_DEPTH or isinstance(obj, (str, bytes, torch.Tensor)):
            return
        seen.add(id(obj))
        r = getattr(obj, "R", None)
        if isinstance(r, np.random.RandomState) and id(r) not in seen:
            seen.add(id(r))
            found.append(r)
        for child in _children(obj):
            visit(child, depth + 1)

    visit(getattr(root, "dataset", root), 0)
    return found


class RngState:
    """Checkpointable RNG states of a training run (``state_dict`` / ``load_state_dict``, as Ignite's ``Checkpoint``
    expects): torch (CPU, and CUDA when available), numpy and Python ``random`` global states, the ``generator`` of
    ``data_loader``, of its sampler and batch sampler, and the ``R`` of the MONAI random transforms of its dataset.

    With ``num_workers > 0`` the workers re-seed their transforms from torch's RNG (or the loader's generator) at each
    epoch, which this state covers; ``persistent_workers=True`` keeps worker states that no checkpoint can hold.

    Args:
        data_loader: the training DataLoader (or None: global states only).
    """

    def __init__(self, data_loader: Any = None) -> None:
        self.data_loader = data_loader

    def _generators(self) -> list[torch.Generator]:
        loader, out = self.data_loader, []
        holders = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
        holders.append(getattr(holders[-1], "sampler", None))
        for holder in holders:
            g = getattr(holder, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not o for o in out):
                out.append(g)
        return out

    def state_dict(self) -> dict[str, Any]:
        version, state, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": _numpy_state(np.random.get_state()),
            "python": {"version": int(version), "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss_next},
            "generators": [g.get_state() for g in self._generators()],
            "transforms": [_numpy_state(r.get_state()) for r in random_states(self.data_loader)],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        cuda = list(state.get("cuda") or [])
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])
        np.random.set_state(_numpy_tuple(state["numpy"]))
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
        generators, saved = self._generators(), list(state.get("generators") or [])
        transforms, saved_t = random_states(self.data_loader), list(state.get("transforms") or [])
        if len(generators) != len(saved) or len(transforms) != len(saved_t):
            warnings.warn(
                f"RngState: the checkpoint holds {len(saved)} DataLoader generator(s) and {len(saved_t)} random "
                f"transform state(s), this run has {len(generators)} and {len(transforms)}: restoring the common "
                "ones only (the resumed run may draw other samples than the uninterrupted one).",
                stacklevel=2,
            )
        for g, s in zip(generators, saved):
            g.set_state(torch.as_tensor(s, dtype=torch.uint8).cpu())
        for r, s in zip(transforms, saved_t):
            r.set_state(_numpy_tuple(s))


def check_resume_checkpoint(path: str | os.PathLike, what: str = "resume_from") -> set[str]:
    """Read a checkpoint to resume training from (``torch.load(weights_only=True)``) and check its keys.

    Returns:
        The checkpoint's keys (``network``, ``optimizer``, ``trainer`` and, when written by this version, ``rng``).

    Raises:
        FileNotFoundError / IsADirectoryError / ValueError: one line naming ``what`` and the file: missing, a folder,
            truncated or corrupt, pickled objects, or not a training checkpoint (e.g. ``models/model.pt``).
    """
    state = read_torch_file(path, what)
    if not isinstance(state, Mapping):
        raise ValueError(f"{what} {path}: expected a dict of state dicts, got a {type(state).__name__}.")
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise ValueError(
            f"{what} {path}: not a training checkpoint to resume from: no {missing} (keys: "
            f"{sorted(map(str, state))[:6]}); give a checkpoint_epoch=N.pt that training wrote (models/model.pt holds "
            "the weights only)."
        )
    return set(map(str, state))


class ResumeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` for resuming training: the file is checked when the handler is built (a one-line
    error naming it, before the run starts), and the RNG states are restored with the weights (:class:`RngState`,
    built on ``load_dict["trainer"].data_loader``), so the resumed run repeats the uninterrupted one.

    A checkpoint written before the RNG states were saved still loads, with a warning. Arguments:
    ``CheckpointLoader``'s; ``keys``: the checkpoint's keys when :func:`check_resume_checkpoint` was called already.
    """

    def __init__(
        self,
        load_path: str | os.PathLike,
        load_dict: Mapping[str, Any],
        *args: Any,
        keys: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        keys = check_resume_checkpoint(load_path) if keys is None else keys
        load_dict = dict(load_dict)
        trainer = load_dict.get("trainer")
        if "rng" not in keys:
            load_dict.pop("rng", None)
            warnings.warn(
                f"resume_from {load_path}: the checkpoint holds no RNG state (written by an earlier monai-reg): "
                "training resumes, but its random draws differ from an uninterrupted run's.",
                stacklevel=2,
            )
        elif "rng" not in load_dict and trainer is not None:
            load_dict["rng"] = RngState(getattr(trainer, "data_loader", None))
        super().__init__(str(load_path), load_dict, *args, **kwargs)


class FreshLoaderEachEpoch:
    """Start every epoch with a new DataLoader iterator, as a resumed run does.

    Ignite keeps the iterator of an epoch that covered the whole DataLoader and runs it out at the start of the next
    epoch; running out, torch's ``RandomSampler`` draws one more permutation from the DataLoader's ``generator``. A
    run resumed from a checkpoint starts with a new iterator and skips that draw, so with a ``generator`` its shuffles
    would differ from the uninterrupted run's. Dropping the spent iterator at each epoch end (when the epoch covered
    the whole loader) makes both runs start each epoch alike. :func:`~monai_reg_ext.engines.create_trainer` attaches
    it.
    """

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        loader = engine.state.dataloader
        try:
            whole = loader is not None and engine.state.epoch_length == len(loader)
        except TypeError:  # an iterable without a length: leave Ignite's iterator alone
            whole = False
        if whole and hasattr(engine, "_dataloader_iter"):
            engine._dataloader_iter = None  # Ignite makes a new one at the next epoch start (as on resume)
