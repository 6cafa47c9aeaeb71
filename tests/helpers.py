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
