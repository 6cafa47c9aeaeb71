"""Helpers shared by tests: tiny bundles built in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from monai_reg_ext.networks import RegistrationNet


def make_tiny_bundle(root: Path, spatial_dims: int = 3, size: int = 16, random_output: bool = False) -> Path:
    """Write ``root/configs/inference.json`` and ``root/models/model.pt`` of a LocalNet (4 channels, levels 0-2).

    Args:
        root: the bundle folder to create.
        spatial_dims: 2 or 3.
        size: the network grid edge (``spatial_size = [size] * spatial_dims``).
        random_output: give the zero-initialised output layer random weights, so the DDF is not zero.
    """
    net_def = {
        "_target_": "monai_reg_ext.networks.RegistrationNet",
        "backbone": "localnet",
        "method": "ddf",
        "spatial_dims": spatial_dims,
        "backbone_kwargs": {"num_channel_initial": 4, "extract_levels": [0, 1, 2]},
    }
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    config = {"spatial_size": [size] * spatial_dims, "network_def": net_def}
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    net = RegistrationNet(
        "localnet",
        "ddf",
        spatial_dims=spatial_dims,
        backbone_kwargs={"num_channel_initial": 4, "extract_levels": (0, 1, 2)},
    )
    if random_output:
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.data.normal_(0, 0.05)
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for torch.distributed's rendezvous in tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_process_training(bundle: Path, config_files: list[str], dataset_dir: Path, output_dir: Path, *extra: str):
    """Train a bundle for a few iterations in 2 CPU processes (torchrun, gloo) through its multi-GPU config.

    ``config_files`` are the bundle's config names before ``multi_gpu_train.json`` (e.g. ``["train.json"]``);
    ``extra`` are further ``--key value`` overrides (grid size, epochs...). Asserts that the run succeeds and writes
    ``output_dir/model.pt``.
    """
    import os
    import subprocess
    import sys

    configs = bundle / "configs"
    names = [*config_files, "multi_gpu_train.json"]
    config_arg = "[" + ",".join(f"'{configs / n}'" for n in names) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "monai.bundle", "run", "training", "--config_file", config_arg,
           "--meta_file", str(configs / "metadata.json"), "--bundle_root", str(bundle),
           "--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir),
           "--num_workers", "0", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (Path(output_dir) / "model.pt").is_file()
