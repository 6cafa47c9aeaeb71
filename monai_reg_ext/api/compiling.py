"""``torch.compile`` of a bundle's network for long cohorts (``monai-reg predict --compile``).

:func:`compile_network` compiles, in place, the module that :func:`~monai_reg_ext.api.register` calls: the backbone
of a :class:`~monai_reg_ext.networks.RegistrationNet` (its ``predict_ddf`` / single-input call; a ``"dvf"`` network's
integration stays eager), else the whole network. It then runs it once on zeros of the bundle's grid, which compiles
it: every pair is resized to that grid, so the one compiled graph serves every pair and nothing is compiled again.

* The backbone's :class:`~monai_reg_ext.networks.onednn.OneDNNConv3d` layers are switched back to ``nn.Conv3d`` first:
  inductor chooses its own (oneDNN) convolution kernels, and the wrapper would only break the graph.
* The first call runs with inductor's ``freezing`` (weights folded into the graph as constants, convolution weights
  prepacked for oneDNN), set only for that call and restored after it: ``torch.compile(..., options={"freezing":
  True})`` does not apply it (torch 2.13). The compiled network is for inference only (frozen weights).
* Measured on one CPU thread, ``unpaired_mr_brain`` (RegUNet 64x80x64): see docs/benchmarks.md.

When compiling fails (e.g. no C compiler for inductor's CPU kernels), the network is restored as it was and runs
eagerly; :func:`compile_network` says why in its return value.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..networks import RegistrationNet
from ..networks.onednn import OneDNNConv3d, use_onednn_convolutions
from .register import network_ddf

__all__ = ["compile_network", "is_compiled"]


def _target(network: nn.Module) -> tuple[nn.Module, int]:
    """The module to compile and the channels of each image it is fed."""
    if isinstance(network, RegistrationNet):
        return network.backbone, network.image_channels
    return network, 1


def compile_network(
    network: nn.Module, spatial_size: tuple[int, ...], device: str | torch.device = "cpu"
) -> tuple[float | None, str]:
    """Compile ``network`` (in place, module docstring) and compile it for one pair of images on ``spatial_size``.

    Args:
        network: a bundle's network (as :func:`~monai_reg_ext.api.register.network_ddf` calls it), on ``device``.
        spatial_size: the network grid (every input is resized to it).
        device: where the network runs.

    Returns:
        ``(seconds, "")`` the compilation took, or ``(None, reason)`` when it failed: the network is then as before
        (eager, with its oneDNN convolutions).
    """
    module, channels = _target(network)
    swapped = [m for m in module.modules() if type(m) is OneDNNConv3d]
    use_onednn_convolutions(module, False)
    start = time.perf_counter()
    try:
        import torch._inductor.config as inductor_config

        module.compile()
        zeros = torch.zeros(1, channels, *spatial_size, device=device)
        with torch.inference_mode(), inductor_config.patch(freezing=True):
            network_ddf(network, zeros, zeros)  # compiles now (lazily on the first call)
    except Exception as err:  # compilers fail in many ways (no C compiler, unsupported operations): run eagerly
        module._compiled_call_impl = None  # what nn.Module.compile set
        for m in swapped:
            m.__class__ = OneDNNConv3d
        first = (str(err).strip().splitlines() or [""])[0]
        return None, f"{type(err).__name__}: {first}"
    return time.perf_counter() - start, ""


def is_compiled(network: Any) -> bool:
    """Whether :func:`compile_network` compiled ``network`` (its compiled module is in use)."""
    module, _ = _target(network)
    return getattr(module, "_compiled_call_impl", None) is not None
