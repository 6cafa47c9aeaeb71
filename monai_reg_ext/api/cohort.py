"""Registering a cohort (a list of pairs) across processes with ``torch.distributed``, as ``monai-reg predict`` does.

Under ``torchrun --nproc_per_node=N`` (and ``--nnodes``/``--node_rank`` on several machines), process ``rank`` of
``world_size`` takes the pairs ``i`` with ``i % world_size == rank`` (:meth:`Shard.takes`) and writes them into the
one output folder; :func:`gather_to_main` then brings every process's rows to rank 0, which writes the tables.
Processes on CPU use the ``gloo`` backend, CUDA processes ``nccl`` with the device ``cuda:LOCAL_RANK``
(:func:`shard_device`). Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) there is one shard and nothing
distributed is started.

A run can be restarted: :func:`pair_outputs_complete` tells which pair folders hold every file a pair writes, and
:func:`read_pair_metrics` reads such a pair's ``metrics.csv`` back for the tables.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Shard",
    "start_shard",
    "shard_device",
    "gather_to_main",
    "barrier",
    "close_shard",
    "pair_outputs_complete",
    "read_pair_metrics",
]


@dataclass(frozen=True)
class Shard:
    """This process's part of a cohort.

    Attributes:
        rank, world_size: of the process group (0 and 1 without ``torchrun``).
        local_rank: the process's index on its machine (its CUDA device).
        started: whether :func:`start_shard` started the process group (:func:`close_shard` then ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the cohort's tables."""
        return self.rank == 0

    def takes(self, index: int) -> bool:
        """Whether this process registers the pair at ``index`` of the list (``index % world_size == rank``)."""
        return index % self.world_size == self.rank


def _wants_cuda(device: str | torch.device | None) -> bool:
    if device is None:
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def start_shard(device: str | torch.device | None = None) -> Shard:
    """This process's :class:`Shard`: from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``), starting the process group (``nccl`` for CUDA, else ``gloo``) unless one runs
    already; a single shard without ``torchrun``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Shard(dist.get_rank(), dist.get_world_size(), local, started=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 (torchrun), but this torch build has no torch.distributed.")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = _wants_cuda(device)
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Shard(rank, world, local, started=True)


def shard_device(device: str | torch.device | None, shard: Shard) -> str | torch.device | None:
    """``device`` for this process: a CUDA device without an index becomes ``cuda:LOCAL_RANK`` when there are several
    processes (one GPU each); anything else is returned as given."""
    if shard.world_size > 1 and _wants_cuda(device) and (device is None or torch.device(device).index is None):
        return f"cuda:{shard.local_rank}"
    return device


def gather_to_main(items: list[Any], shard: Shard) -> list[Any] | None:
    """Every process's ``items`` (picklable), concatenated in rank order, on rank 0; None on the other ranks."""
    if shard.world_size <= 1:
        return list(items)
    import torch.distributed as dist

    parts: list[Any] | None = [None] * shard.world_size if shard.is_main else None
    dist.gather_object(list(items), parts, dst=0)
    return [x for part in parts for x in part] if parts is not None else None


def barrier(shard: Shard) -> None:
    """Wait until every process reaches this point (nothing without ``torchrun``)."""
    if shard.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def close_shard(shard: Shard) -> None:
    """End the process group if :func:`start_shard` started it."""
    if shard.started:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def pair_outputs_complete(folder: str | os.PathLike, names: Iterable[str]) -> bool:
    """Whether ``folder`` holds every file ``names`` (a pair's outputs, e.g.
    :meth:`~monai_reg_ext.api.result.RegistrationResult.output_names`), each non-empty."""
    folder = Path(folder)
    return all((folder / n).is_file() and (folder / n).stat().st_size > 0 for n in names)


def read_pair_metrics(folder: str | os.PathLike) -> dict[str, float]:
    """A pair's ``metrics.csv`` (rows ``metric,value``, as :meth:`RegistrationResult.save` writes it) as a dict.

    Raises:
        ValueError: naming the file, for a row that is not ``metric,number``.
    """
    path = Path(folder) / "metrics.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    out = {}
    for row in rows[1:]:
        try:
            out[row[0]] = float(row[1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: expected rows 'metric,number', got {row!r}.") from None
    return out
