"""Tests of ConditionalSegmentationNet (DeepReg's conditional method, Hu et al. MICCAI 2019)."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.networks import ConditionalSegmentationNet

TINY = {"num_channel_initial": 4}


@pytest.mark.parametrize("backbone", ["localnet", "regunet"])
@pytest.mark.parametrize("dims,sizes", [(3, [(16, 16, 16), (24, 16, 24)]), (2, [(32, 32), (24, 40)])])
def test_output_range_shape_and_gradients(backbone: str, dims: int, sizes: list[tuple[int, ...]]) -> None:
    torch.manual_seed(0)
    net = ConditionalSegmentationNet(dims, backbone, backbone_kwargs=TINY)
    for size in sizes:
        moving, fixed = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
        label = (torch.rand(2, 3, *size) > 0.5).float()
        out = net(moving, fixed, label)
        assert set(out) == {"pred_fixed_label"}
        pred = out["pred_fixed_label"]
        assert pred.shape == (2, 3, *size)
        assert pred.min() >= 0 and pred.max() <= 1
        net.zero_grad()
        pred.mean().backward()
        no_grad = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not no_grad, no_grad


def test_label_channels_are_independent_samples() -> None:
    torch.manual_seed(0)
    net = ConditionalSegmentationNet(2, backbone_kwargs=TINY).eval()  # eval: BatchNorm uses running stats
    moving, fixed, label = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        full = net(moving, fixed, label)["pred_fixed_label"]
        for i in range(3):
            single = net(moving, fixed, label[:, i : i + 1])["pred_fixed_label"]
            torch.testing.assert_close(full[:, i : i + 1], single, atol=1e-6, rtol=1e-5)


def test_moving_size_differs_from_fixed() -> None:
    net = ConditionalSegmentationNet(3, backbone_kwargs=TINY)
    out = net(torch.rand(1, 1, 24, 20, 12), torch.rand(1, 1, 16, 16, 16), torch.rand(1, 2, 24, 20, 12))
    assert out["pred_fixed_label"].shape == (1, 2, 16, 16, 16)


@pytest.mark.parametrize("backbone", ["globalnet", "voxelmorph"])
def test_unsuitable_backbones_rejected(backbone: str) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        ConditionalSegmentationNet(3, backbone)  # type: ignore[arg-type]


def test_wrong_shapes_raise() -> None:
    net = ConditionalSegmentationNet(2, backbone_kwargs=TINY)
    img = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match="expected.*got None"):
        net(img, img, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected .*got \(2, 1, 16, 32\)"):
        net(img, img, torch.rand(2, 1, 16, 32))
    with pytest.raises(ValueError, match="expected 4 dims.*got shape"):
        net(torch.rand(2, 1, 32, 32, 8), img, torch.rand(2, 1, 32, 32, 8))
