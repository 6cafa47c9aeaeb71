"""Sharding a cohort across processes (monai_reg_ext.api.cohort): which pairs a rank takes, gathering rows on rank 0
over gloo with 2 real processes, and recognising finished pair folders."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from monai_reg_ext.api.cohort import (
    Shard,
    barrier,
    close_shard,
    gather_to_main,
    pair_outputs_complete,
    read_pair_metrics,
    shard_device,
    start_shard,
)


def test_ranks_take_every_pair_once():
    shards = [Shard(rank=r, world_size=3) for r in range(3)]
    taken = [[i for i in range(8) if s.takes(i)] for s in shards]
    assert taken == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert shards[0].is_main and not shards[1].is_main


def test_without_torchrun_one_shard_and_nothing_started(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    shard = start_shard("cpu")
    assert shard == Shard() and not torch.distributed.is_initialized()
    assert gather_to_main([1, 2], shard) == [1, 2]
    barrier(shard)
    close_shard(shard)
    assert shard_device("cpu", Shard(1, 2, 1)) == "cpu" and shard_device(None, Shard()) is None


def test_cuda_device_per_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert shard_device("cuda", Shard(3, 4, 1)) == "cuda:1"
    assert shard_device(None, Shard(3, 4, 1)) == "cuda:1"
    assert shard_device("cuda:0", Shard(3, 4, 1)) == "cuda:0"  # an explicit index stays
    assert shard_device("cuda", Shard()) == "cuda"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
         "MASTER_PORT": str(port)}
    )  # fmt: skip
    shard = start_shard("cpu")
    try:
        mine = [{"pair": i, "rank": shard.rank} for i in range(5) if shard.takes(i)]
        gathered = gather_to_main(mine, shard)
        barrier(shard)
        queue.put((rank, shard.world_size, shard.started, gathered))
    finally:
        close_shard(shard)


def test_two_processes_gather_on_rank_0():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_worker, args=(2, _free_port(), queue), nprocs=2, join=True, start_method="spawn")
    got = dict((r, (w, s, g)) for r, w, s, g in (queue.get(timeout=60) for _ in range(2)))
    assert got[1] == (2, True, None)
    world, started, rows = got[0]
    assert (world, started) == (2, True)
    assert sorted(r["pair"] for r in rows) == [0, 1, 2, 3, 4]
    assert {r["pair"]: r["rank"] for r in rows} == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}


def test_complete_outputs_and_metrics_read_back(tmp_path):
    names = ["warped_moving.nii.gz", "ddf.nii.gz", "metrics.csv"]
    assert not pair_outputs_complete(tmp_path / "missing", names)
    for n in names[:2]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "metrics.csv").write_text("")
    assert not pair_outputs_complete(tmp_path, names)  # an empty file is not a finished one
    (tmp_path / "metrics.csv").write_text("metric,value\nseconds,1.5\ndice_label0_after,0.91\n")
    assert pair_outputs_complete(tmp_path, names)
    assert read_pair_metrics(tmp_path) == {"seconds": 1.5, "dice_label0_after": 0.91}
    (tmp_path / "metrics.csv").write_text("metric,value\nseconds\n")
    with pytest.raises(ValueError, match="metrics.csv"):
        read_pair_metrics(tmp_path)
