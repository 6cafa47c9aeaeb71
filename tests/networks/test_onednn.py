"""3-D convolutions on oneDNN in CPU inference (monai_reg_ext.networks.onednn): same results, same weights, and
nn.Conv3d's own path whenever a gradient, TorchScript, tracing or another device is involved."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_reg_ext.networks import RegistrationNet, onednn
from monai_reg_ext.networks.onednn import OneDNNConv3d, use_onednn_convolutions


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 2, stride=2, bias=False))


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """Counts the oneDNN calls."""
    seen: list[int] = []
    original = onednn._onednn_forward

    def counted(conv, x):
        seen.append(1)
        return original(conv, x)

    monkeypatch.setattr(onednn, "_onednn_forward", counted)
    return seen


def test_swap_keeps_weights_and_type_and_undoes():
    net = _net()
    keys = list(net.state_dict())
    use_onednn_convolutions(net)
    assert [type(m) for m in net] == [OneDNNConv3d, nn.ReLU, OneDNNConv3d]
    assert isinstance(net[0], nn.Conv3d) and list(net.state_dict()) == keys
    use_onednn_convolutions(net, enabled=False)
    assert [type(m) for m in net] == [nn.Conv3d, nn.ReLU, nn.Conv3d]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_inference_runs_on_onednn_with_the_same_result(calls):
    net = _net().eval()
    x = torch.rand(1, 2, 10, 12, 8)
    with torch.no_grad():
        ref = net(x)
        out = use_onednn_convolutions(net)(x)
    assert len(calls) == 2
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-5)
    assert len(calls) == 4


def test_training_and_other_cases_take_the_plain_path(calls):
    net = use_onednn_convolutions(_net())
    x = torch.rand(1, 2, 8, 8, 8)
    net(x).sum().backward()  # weights need a gradient
    assert net[0].weight.grad is not None
    with torch.no_grad():
        net.double()(x.double())  # not float32
        net.float()
        torch.backends.mkldnn.enabled, was = False, torch.backends.mkldnn.enabled
        try:
            net(x)  # oneDNN switched off by the user
        finally:
            torch.backends.mkldnn.enabled = was
        same = use_onednn_convolutions(nn.Conv3d(2, 2, 3, padding="same"))
        torch.testing.assert_close(same(x), nn.functional.conv3d(x, same.weight, same.bias, padding="same"))
    assert calls == []


def test_torchscript_and_trace_record_the_plain_convolution(calls):
    net = use_onednn_convolutions(_net()).eval()
    x = torch.rand(1, 2, 8, 8, 8)
    scripted = torch.jit.script(net)
    traced = torch.jit.trace(net, x)  # its check reruns the module without grad: the graphs must agree
    assert "mkldnn_convolution" not in str(traced.graph)
    calls.clear()
    with torch.no_grad():
        from_script, from_trace = scripted(x), traced(x)
        assert calls == []
        eager = net(x)
    assert len(calls) == 2
    torch.testing.assert_close(from_script, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(from_trace, eager, atol=1e-5, rtol=1e-5)


def test_registration_net_uses_it_for_named_backbones_only():
    net = RegistrationNet("regunet", "dvf", backbone_kwargs={"num_channel_initial": 4, "depth": 2})
    convs = [m for m in net.modules() if isinstance(m, nn.Conv3d)]
    assert convs and all(type(m) is OneDNNConv3d for m in convs)
    prebuilt = nn.Conv3d(2, 3, 3, padding=1)
    assert type(RegistrationNet(prebuilt).backbone) is nn.Conv3d
    moving, fixed = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.manual_seed(0)
        for p in net.parameters():  # the output layer starts at zero: a DDF of zeros would compare nothing
            p.normal_(0.0, 0.2)
        fast = net.eval()(moving, fixed)["ddf"]
        plain = use_onednn_convolutions(net, enabled=False)(moving, fixed)["ddf"]
    assert float(plain.abs().max()) > 0.1
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
