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


def run_train_evaluate_inference(
    bundle: Path,
    dataset_dir: Path,
    tmp_path: Path,
    train_configs: list[str] | None = None,
    spatial_size: list[int] | None = None,
    eval_metric: str = "val_mean_dice",
    summary_key: str = "dice_label0_after",
) -> Path:
    """One epoch of training through ``train_configs`` (default ``["train.json"]``), then the evaluating and the
    inference configs, on ``dataset_dir`` (``pairs.json`` for inference); asserts each step's output.

    Returns the trained ``model.pt``.
    """
    from monai.bundle import run

    configs = bundle / "configs"
    size = spatial_size or [16, 16, 16]
    common = {"bundle_root": str(bundle), "dataset_dir": str(dataset_dir), "output_dir": str(tmp_path / "runs")}
    run(
        "training",
        config_file=[str(configs / c) for c in (train_configs or ["train.json"])],
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        spatial_size=size,
        max_epochs=1,
        val_interval=1,
        num_workers=0,
        batch_size=1,
        **common,
    )
    model_path = tmp_path / "runs" / "model.pt"
    assert model_path.is_file() and torch.load(model_path, weights_only=True)
    run(
        "evaluating",
        config_file=[str(configs / "train.json"), str(configs / "evaluate.json")],
        meta_file=str(configs / "metadata.json"),
        spatial_size=size,
        eval_split="val",
        ckpt_path=str(model_path),
        **common,
    )
    assert eval_metric in (tmp_path / "runs" / "eval" / "metrics.csv").read_text()
    out = tmp_path / "inference"
    run(
        "inference",
        config_file=str(configs / "inference.json"),
        bundle_root=str(bundle),
        pairs_file=str(dataset_dir / "pairs.json"),
        output_dir=str(out),
        device="$torch.device('cpu')",
    )
    assert (out / "pair_000" / "ddf.nii.gz").is_file()
    assert summary_key in (out / "summary.csv").read_text()
    return model_path
