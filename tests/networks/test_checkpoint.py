"""Tests of self-describing checkpoints: round trips, weights_only loading, bare state_dicts, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import LocalNet
from torch import nn

from monai_reg_ext.networks import ConditionalSegmentationNet, RegistrationNet, load_checkpoint, save_checkpoint
from monai_reg_ext.networks.backbones import output_convs


@torch.no_grad()
def randomise(net: nn.Module) -> None:
    """Non-identity weights, so that a round trip is checked on a non-trivial output."""
    for conv in output_convs(net.backbone):
        conv.weight.normal_(0.0, 0.05)
    if hasattr(net.backbone, "output_block") and hasattr(net.backbone.output_block, "fc"):
        net.backbone.output_block.fc.weight.normal_(0.0, 1e-4)


def outputs_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


@pytest.mark.parametrize(
    "net_fn,inputs",
    [
        (
            lambda: RegistrationNet("localnet", "dvf", 3, backbone_kwargs={"num_channel_initial": 4}),
            lambda: (torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16), torch.rand(1, 2, 16, 16, 16)),
        ),
        (
            lambda: RegistrationNet("globalnet", "affine", 2, image_size=(32, 32), backbone_kwargs={"depth": 2}),
            lambda: (torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)),
        ),
        (
            lambda: RegistrationNet("voxelmorph", "ddf", 2, backbone_kwargs={"channels": [4, 8, 8, 8]}),
            lambda: (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)),
        ),
        (
            lambda: ConditionalSegmentationNet(2, "regunet", backbone_kwargs={"num_channel_initial": 4, "depth": 2}),
            lambda: (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 2, 16, 16)),
        ),
    ],
    ids=["localnet-dvf-3d", "globalnet-affine-2d", "voxelmorph-ddf-2d", "conditional-regunet-2d"],
)
def test_round_trip_identical_outputs(tmp_path: Path, net_fn, inputs) -> None:
    torch.manual_seed(0)
    net = net_fn()
    randomise(net)
    net.train()
    net(*inputs())  # update BatchNorm running statistics, so that buffers are checked too
    net.eval()
    x = inputs()
    path = save_checkpoint(net, tmp_path / "sub" / "net.pt", epoch=3, metrics={"dice": 0.5})

    raw = torch.load(path, weights_only=True)  # only tensors and plain Python types
    assert raw["class"] == type(net).__name__
    assert raw["extra"] == {"epoch": 3, "metrics": {"dice": 0.5}}
    assert isinstance(raw["monai_reg_version"], str)
    json.dumps(raw["config"])

    loaded = load_checkpoint(path)
    assert type(loaded) is type(net) and not loaded.training
    assert loaded.config == net.config
    with torch.no_grad():
        outputs_equal(net(*x), loaded(*x))


def test_bare_state_dict_with_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = RegistrationNet("regunet", "ddf", 2, backbone_kwargs={"num_channel_initial": 4}).eval()
    randomise(net)
    torch.save(net.state_dict(), tmp_path / "model.pt")  # as Ignite's CheckpointSaver writes model.pt
    with pytest.raises(ValueError, match="bare state_dict.*config"):
        load_checkpoint(tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt", config=net.config)
    x = (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    with torch.no_grad():
        outputs_equal(net(*x), loaded(*x))
    # a dict of state_dicts (Ignite's Checkpoint with several objects)
    torch.save({"network": net.state_dict(), "epoch": 1}, tmp_path / "ckpt.pt")
    cond = ConditionalSegmentationNet(2, backbone_kwargs={"num_channel_initial": 4})
    torch.save(cond.state_dict(), tmp_path / "cond.pt")
    assert isinstance(load_checkpoint(tmp_path / "ckpt.pt", config=net.config), RegistrationNet)
    assert isinstance(
        load_checkpoint(tmp_path / "cond.pt", config=cond.config, net_class="ConditionalSegmentationNet"),
        ConditionalSegmentationNet,
    )


def test_other_architecture_raises_value_error(tmp_path: Path) -> None:
    net = RegistrationNet("localnet", "ddf", 2, backbone_kwargs={"num_channel_initial": 4})
    path = save_checkpoint(net, tmp_path / "local.pt")
    other = RegistrationNet("localnet", "ddf", 2, backbone_kwargs={"num_channel_initial": 8}).config
    with pytest.raises(ValueError, match=r"local\.pt.*num_channel_initial': 8.*shape mismatches: .*expected"):
        load_checkpoint(path, config=other)
    other = RegistrationNet("voxelmorph", "ddf", 2).config
    with pytest.raises(ValueError, match="missing keys: .*unexpected keys: "):
        load_checkpoint(path, config=other)


def test_missing_file_and_bad_content(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"a": 1}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="expected a monai-reg checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    net = RegistrationNet("localnet", "ddf", 2, backbone_kwargs={"num_channel_initial": 4})
    with pytest.raises(ValueError, match="plain Python types"):
        save_checkpoint(net, tmp_path / "x.pt", optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="expected one of"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "y.pt")


def test_prebuilt_backbone_needs_the_module(tmp_path: Path) -> None:
    def make() -> LocalNet:
        return LocalNet(2, in_channels=2, num_channel_initial=4, extract_levels=(0, 1), out_channels=2)

    net = RegistrationNet(make(), "ddf", spatial_dims=2).eval()
    path = save_checkpoint(net, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="prebuilt backbone.*LocalNet"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, backbone=make())
    x = (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    with torch.no_grad():
        outputs_equal(net(*x), loaded(*x))
