"""Tests of RegistrationNet: every valid backbone x method in 2D and 3D, identity start, shapes, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from monai.networks.nets import LocalNet, RegUNet
from torch import nn

from monai_reg_ext.networks import RegistrationNet, build_backbone
from monai_reg_ext.networks.backbones import output_convs
from monai_reg_ext.networks.registration import resize_to

# small backbones (4 initial channels; VoxelMorph: a 3-level UNet with narrow layers) keep the suite fast on CPU
TINY: dict[str, dict[str, Any]] = {
    "localnet": {"num_channel_initial": 4},
    "regunet": {"num_channel_initial": 4},
    "globalnet": {"num_channel_initial": 4},
    "voxelmorph": {"channels": [4, 8, 8, 8, 8, 8], "unet_out_channels": 8, "final_conv_channels": [4]},
}
# two input sizes per dimensionality, all divisible by 8 (= 2**depth)
SIZES = {3: [(16, 16, 16), (24, 16, 24)], 2: [(32, 32), (24, 40)]}
VALID = [
    ("localnet", "ddf"),
    ("localnet", "dvf"),
    ("regunet", "ddf"),
    ("regunet", "dvf"),
    ("voxelmorph", "ddf"),
    ("voxelmorph", "dvf"),
    ("globalnet", "affine"),
    ("globalnet", "ddf"),
]


def make_net(backbone: str, method: str, dims: int, size: tuple[int, ...] | None = None) -> RegistrationNet:
    return RegistrationNet(
        backbone, method, spatial_dims=dims, image_size=size if backbone == "globalnet" else None,
        backbone_kwargs=TINY[backbone],
    )  # fmt: skip


@torch.no_grad()
def perturb_output_layer(net: RegistrationNet, std: float = 0.05) -> None:
    """Random weights for the zero-initialised output layer, so that every parameter receives a gradient."""
    convs = list(output_convs(net.backbone))
    for conv in convs:
        conv.weight.normal_(0.0, std)
    if not convs:  # GlobalNet affine head
        net.backbone.output_block.fc.weight.normal_(0.0, 1e-4)


@pytest.mark.parametrize("dims", [3, 2])
@pytest.mark.parametrize("backbone,method", VALID)
def test_forward_backward_two_sizes(backbone: str, method: str, dims: int) -> None:
    torch.manual_seed(0)
    sizes = SIZES[dims]
    # GlobalNet's size is fixed at construction: one net per size; the other backbones take both sizes
    nets = (
        [make_net(backbone, method, dims, s) for s in sizes]
        if backbone == "globalnet"
        else [make_net(backbone, method, dims)] * 2
    )
    for net, size in zip(nets, sizes):
        moving, fixed, label = torch.rand(2, 1, *size), torch.rand(2, 1, *size), torch.rand(2, 2, *size)
        out = net(moving, fixed, label)

        expected = {"ddf", "pred_fixed_image", "pred_fixed_label"}
        expected |= {"dvf"} if method == "dvf" else set()
        expected |= {"theta"} if backbone == "globalnet" else set()
        assert set(out) == expected
        assert out["ddf"].shape == (2, dims, *size)
        assert out["pred_fixed_image"].shape == (2, 1, *size)
        assert out["pred_fixed_label"].shape == (2, 2, *size)
        if method == "dvf":
            assert out["dvf"].shape == (2, dims, *size)
        # identity at initialisation
        assert out["ddf"].abs().max() < 1e-6
        torch.testing.assert_close(out["pred_fixed_image"], moving, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["pred_fixed_label"], label, atol=1e-5, rtol=0)

        # the zero output layer still learns: its weights get a gradient
        net.zero_grad()
        (out["pred_fixed_image"] - fixed).pow(2).mean().backward()
        assert all(p.grad is not None for p in net.parameters())
        head = list(output_convs(net.backbone)) or [net.backbone.output_block.fc]
        assert any(m.weight.grad.abs().sum() > 0 for m in head)

    # with a non-zero output layer, gradients reach every backbone parameter, at both sizes
    for net in nets:
        perturb_output_layer(net)
    for net, size in zip(nets, sizes):
        net.zero_grad()
        moving, fixed = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
        out = net(moving, fixed)
        assert out["ddf"].abs().max() > 0
        (out["pred_fixed_image"] - fixed).pow(2).mean().backward()
        no_grad = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not no_grad, no_grad


@pytest.mark.parametrize("backbone,method", [("localnet", "ddf"), ("voxelmorph", "dvf"), ("globalnet", "affine")])
def test_moving_size_differs_from_fixed(backbone: str, method: str) -> None:
    torch.manual_seed(0)
    net = make_net(backbone, method, 3, (16, 16, 16))
    moving, fixed = torch.rand(1, 1, 24, 20, 12), torch.rand(1, 1, 16, 16, 16)
    label = torch.rand(1, 3, 24, 20, 12)
    out = net(moving, fixed, label)
    assert out["ddf"].shape == (1, 3, 16, 16, 16)
    assert out["pred_fixed_label"].shape == (1, 3, 16, 16, 16)
    # a zero DDF gives the moving image resized to the fixed grid
    torch.testing.assert_close(out["pred_fixed_image"], resize_to(moving, (16, 16, 16)), atol=1e-5, rtol=0)
    out["pred_fixed_image"].sum().backward()


@pytest.mark.parametrize("dims", [3, 2])
def test_affine_theta_identity_at_init(dims: int) -> None:
    size = SIZES[dims][0]
    net = make_net("globalnet", "affine", dims, size)
    out = net(torch.rand(3, 1, *size), torch.rand(3, 1, *size))
    eye = torch.eye(dims, dims + 1).expand(3, dims, dims + 1)
    assert out["theta"].shape == (3, dims, dims + 1)
    torch.testing.assert_close(out["theta"], eye, atol=1e-6, rtol=0)
    assert out["theta"].requires_grad  # usable by an affine regulariser


def test_theta_matches_ddf() -> None:
    from monai_reg_ext import affine_to_ddf

    torch.manual_seed(0)
    net = make_net("globalnet", "affine", 3, (16, 16, 16))
    perturb_output_layer(net)
    out = net(torch.rand(2, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16))
    assert (out["theta"] - torch.eye(3, 4)).abs().max() > 0
    torch.testing.assert_close(affine_to_ddf(out["theta"], (16, 16, 16)), out["ddf"], atol=1e-4, rtol=1e-4)


def test_prebuilt_backbone_and_config() -> None:
    backbone = LocalNet(2, in_channels=2, num_channel_initial=4, extract_levels=(0, 1, 2), out_channels=2)
    net = RegistrationNet(backbone, "ddf", spatial_dims=2)
    out = net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    assert out["ddf"].shape == (1, 2, 16, 16)
    assert net.config["backbone"] is None
    assert net.config["backbone_class"].endswith("LocalNet")
    json.dumps(net.config)


def test_config_is_json_and_lists_become_tuples() -> None:
    net = RegistrationNet(
        "localnet", spatial_dims=2, backbone_kwargs={"num_channel_initial": 4, "extract_levels": [0, 1]}
    )
    assert net.backbone.extract_levels == (0, 1)  # a tuple, as TorchScript needs
    cfg = json.loads(json.dumps(net.config))
    assert cfg["backbone_kwargs"] == {"num_channel_initial": 4, "extract_levels": [0, 1]}
    rebuilt = RegistrationNet(**cfg)
    assert rebuilt.backbone.extract_levels == (0, 1)


def test_regunet_has_a_decoder() -> None:
    net = build_backbone("regunet", spatial_dims=3, in_channels=2, out_channels=3, num_channel_initial=4)
    assert isinstance(net, RegUNet) and net.extract_levels == (0, 1, 2, 3) and len(net.decode_convs) == 3
    net = build_backbone("regunet", spatial_dims=3, in_channels=2, out_channels=3, num_channel_initial=4, depth=2)
    assert net.extract_levels == (0, 1, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"backbone": "localnet", "method": "affine"}, "globalnet"),
        ({"backbone": "globalnet", "method": "dvf", "image_size": (16, 16, 16)}, "globalnet"),
        ({"backbone": "globalnet", "method": "affine"}, "image_size"),
        ({"backbone": "unet"}, "expected one of"),
        ({"method": "bspline"}, "expected one of"),
        ({"spatial_dims": 4}, "expected 2 or 3"),
        ({"backbone_kwargs": {"in_channels": 3}}, "in_channels"),
    ],
)
def test_invalid_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RegistrationNet(**kwargs)


@pytest.fixture(scope="module")
def net3d() -> RegistrationNet:
    return make_net("localnet", "ddf", 3)


@pytest.mark.parametrize(
    "moving,fixed,label",
    [
        ((2, 1, 16, 16, 16), (1, 1, 16, 16, 16), None),  # batch mismatch
        ((2, 1, 16, 16), (2, 1, 16, 16), None),  # 2D input to a 3D net
        ((2, 2, 16, 16, 16), (2, 2, 16, 16, 16), None),  # wrong channels
        ((2, 1, 16, 16, 16), (2, 1, 16, 16, 16), (2, 1, 8, 16, 16)),  # label size != moving size
        ((2, 1, 16, 16, 16), (2, 1, 16, 16, 16), (1, 1, 16, 16, 16)),  # label batch
        ((2, 1, 16, 16, 16), (2, 1, 12, 16, 16), None),  # fixed size not divisible by 2**depth
    ],
)
def test_wrong_shapes_raise(net3d: RegistrationNet, moving: tuple, fixed: tuple, label: tuple | None) -> None:
    lab = None if label is None else torch.rand(label)
    with pytest.raises(ValueError, match="expected") as err:
        net3d(torch.rand(moving), torch.rand(fixed), lab)
    assert "got" in str(err.value)


def test_globalnet_wrong_size_raises() -> None:
    net = make_net("globalnet", "affine", 2, (32, 32))
    with pytest.raises(ValueError, match=r"expected \(32, 32\).*got \(24, 40\)"):
        net(torch.rand(1, 1, 24, 40), torch.rand(1, 1, 24, 40))


def test_nn_module_repr() -> None:
    assert "localnet" in repr(make_net("localnet", "ddf", 2))
    assert isinstance(make_net("localnet", "ddf", 2).backbone, nn.Module)


# ------------------------------------------------------------- one concatenated input: the MONAI / TorchScript form
@pytest.mark.parametrize(
    "backbone,method,dims", [(b, m, 3) for b, m in VALID] + [("regunet", "dvf", 2), ("localnet", "ddf", 2)]
)
def test_single_input_gives_the_ddf_scripted_and_traced(backbone: str, method: str, dims: int) -> None:
    """``net(cat([moving, fixed], 1))`` is the DDF tensor of ``net(moving, fixed)``, and TorchScript (scripted through
    ``__prepare_scriptable__``, or traced) gives the same with the same state_dict keys."""
    import warnings

    torch.manual_seed(0)
    size = SIZES[dims][0]
    net = make_net(backbone, method, dims, size).eval()
    perturb_output_layer(net)
    moving, fixed = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    x = torch.cat([moving, fixed], dim=1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks turned into constants
        ref = net(moving, fixed)["ddf"]
        out = net(x)
        scripted = torch.jit.script(net)
        traced = torch.jit.trace(net, (x,))
        assert isinstance(out, torch.Tensor) and out.shape == (2, dims, *size)
        assert ref.abs().max() > 0
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(scripted(x), ref, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(traced(x), ref, atol=1e-6, rtol=1e-5)
    assert set(scripted.state_dict()) == set(net.state_dict())  # models/model.pt loads into the exported module


@pytest.mark.parametrize("dims", [3, 2])
def test_integrate_velocity_is_dvf_to_ddf(dims: int) -> None:
    from monai_reg_ext import dvf_to_ddf
    from monai_reg_ext.networks import integrate_velocity

    torch.manual_seed(0)
    dvf = 2 * torch.randn(2, dims, *SIZES[dims][1])
    torch.testing.assert_close(integrate_velocity(dvf, 7), dvf_to_ddf(dvf, 7), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.jit.script(integrate_velocity)(dvf, 7), integrate_velocity(dvf, 7))
    assert integrate_velocity(dvf, 0) is dvf


def test_single_input_errors() -> None:
    net = make_net("localnet", "ddf", 3)
    with pytest.raises(ValueError, match=r"\(B, 2, \*S\)"):
        net(torch.rand(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 2, \*S\)"):
        net(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="moving_label"):
        net(torch.rand(1, 2, 16, 16, 16), moving_label=torch.rand(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 2, 12, 16, 16))
