"""3-D convolutions on oneDNN (MKLDNN) for inference on CPU.

PyTorch chooses between oneDNN and its own im2col convolution (``slow_conv3d``) with a heuristic written for 2-D
images: oneDNN only when ``batch x channels x (first two array sizes) > 20480`` (among other conditions). In the
bundles' 3-D networks most layers fall below that line (16 channels at 32x40x32, the 2-channel input at 64x80x64, and
every layer below), and the im2col path is about 3x slower there: on one thread the ``unpaired_mr_brain`` RegUNet at
64x80x64 takes 1.4-1.7 s with PyTorch's choice and 0.45-0.55 s with every convolution on oneDNN, in channels-last
layout (``scripts/bench_network_path.py``, ``scripts/profile_network_path.py``; docs/benchmarks.md). The DDFs agree
to float rounding (max. 3e-6 voxels on that network) and the Dice of its test pairs is unchanged.

:func:`use_onednn_convolutions` switches the ``nn.Conv3d`` layers of a module to :class:`OneDNNConv3d` (same
parameters, state_dict keys and ``isinstance``), which calls oneDNN directly when nothing needs a gradient
(``torch.no_grad`` / ``torch.inference_mode``, or frozen weights), on CPU, in float32, with zero padding. Anything
else (training, CUDA, half precision, TorchScript, tracing, ``torch.compile``) takes ``nn.Conv3d``'s own path, so
training is unchanged. 2-D convolutions are left alone: for them the heuristic already picks oneDNN at image sizes
(``batch x channels x H x W > 20480``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["OneDNNConv3d", "use_onednn_convolutions", "onednn_usable"]


def onednn_usable(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``conv`` (an ``nn.Conv3d``) may run ``x`` on oneDNN: CPU float32 input and weights,
    zero padding given as numbers, oneDNN available and enabled (``torch.backends.mkldnn.enabled``), not tracing
    or compiling (``torch.jit.trace``, ONNX export and ``torch.compile`` see ``nn.Conv3d``'s own operation; inductor
    chooses its own kernels), and no gradient needed."""
    weight = conv.weight
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or x.dim() != weight.dim():
        return False
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))


def _onednn_forward(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # channels-last input and weights: oneDNN's own layout for few channels, without a reorder per call (a further
    # 10-20 % at 64x80x64); the weights are small, so their copy costs little
    cl = torch.channels_last_3d
    weight = conv.weight.contiguous(memory_format=cl)
    return torch.ops.aten.mkldnn_convolution(
        x.contiguous(memory_format=cl),
        weight,
        conv.bias,
        list(conv.padding),
        list(conv.stride),
        list(conv.dilation),
        conv.groups,
    )


class OneDNNConv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs on oneDNN in CPU inference (module docstring); otherwise ``nn.Conv3d`` itself."""

    @torch.jit.unused
    def _eager(self, input: torch.Tensor) -> torch.Tensor:
        if onednn_usable(self, input):
            return _onednn_forward(self, input)
        return self._conv_forward(input, self.weight, self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript (e.g. MONAI's ckpt_export): nn.Conv3d's path
            return self._conv_forward(input, self.weight, self.bias)
        return self._eager(input)


_SWAPS = {nn.Conv3d: OneDNNConv3d}


def use_onednn_convolutions(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch, in place, the plain ``nn.Conv3d`` layers of ``module`` to :class:`OneDNNConv3d` (module
    docstring), or back with ``enabled=False``. Subclasses of them are left as they are.

    Returns:
        ``module`` itself.
    """
    swaps = _SWAPS if enabled else {v: k for k, v in _SWAPS.items()}
    for sub in module.modules():
        new = swaps.get(type(sub))
        if new is not None:
            sub.__class__ = new
    return module
