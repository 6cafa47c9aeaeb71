"""Backbones for registration networks: MONAI's LocalNet, GlobalNet, RegUNet and VoxelMorphUNet with safe defaults.

The defaults avoid the MONAI pitfalls listed in ``../shared/reference/monai-notes.md``: ``extract_levels`` is always a
tuple (TorchScript rejects lists), RegUNet gets ``extract_levels=(0, ..., depth)`` so that it has a decoder (its MONAI
default builds none), and JSON lists in keyword arguments are turned into tuples. Conventions (DDF layout, units,
moving vs fixed): ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from monai.networks.nets import GlobalNet, LocalNet, RegUNet, VoxelMorphUNet
from torch import nn

__all__ = [
    "BACKBONES",
    "BackboneName",
    "build_backbone",
    "backbone_name_of",
    "default_backbone_kwargs",
    "output_convs",
    "size_multiple",
    "to_jsonable",
    "to_tuples",
]

BackboneName = Literal["localnet", "globalnet", "regunet", "voxelmorph"]
BACKBONES: tuple[str, ...] = ("localnet", "globalnet", "regunet", "voxelmorph")

# arguments the wrapper sets itself; passing them in ``backbone_kwargs`` is an error
_RESERVED = ("spatial_dims", "in_channels", "out_channels", "image_size")


def default_backbone_kwargs(name: str) -> dict[str, Any]:
    """Default keyword arguments of a named backbone (besides dims and channels).

    LocalNet: 16 initial channels, levels (0, 1, 2, 3) as DeepReg's ``local`` demos. RegUNet: 16 initial channels,
    depth 3, levels (0, 1, 2, 3) (a full decoder). GlobalNet: 16 initial channels, depth 3. VoxelMorphUNet: the
    VoxelMorph paper's network (``channels=(16, 32, 32, 32, 32, 32)``, ``unet_out_channels=32``,
    ``final_conv_channels=(16, 16)``).
    """
    defaults: dict[str, dict[str, Any]] = {
        "localnet": {"num_channel_initial": 16, "extract_levels": (0, 1, 2, 3)},
        "regunet": {"num_channel_initial": 16, "depth": 3, "extract_levels": (0, 1, 2, 3)},
        "globalnet": {"num_channel_initial": 16, "depth": 3},
        "voxelmorph": {
            "unet_out_channels": 32,
            "channels": (16, 32, 32, 32, 32, 32),
            "final_conv_channels": (16, 16),
        },
    }
    if name not in defaults:
        raise ValueError(f"backbone: expected one of {BACKBONES} or an nn.Module, got {name!r}.")
    return dict(defaults[name])


def to_tuples(value: Any) -> Any:
    """Recursively turn lists (e.g. read from JSON) into tuples; dict values are converted too."""
    if isinstance(value, (list, tuple)):
        return tuple(to_tuples(v) for v in value)
    if isinstance(value, Mapping):
        return {k: to_tuples(v) for k, v in value.items()}
    return value


def to_jsonable(value: Any) -> Any:
    """Recursively turn tuples into lists so that a config dict is plain JSON (and ``weights_only`` loadable)."""
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"config: expected plain JSON-able values (None, bool, int, float, str, list, dict), got {value!r}."
    )


def resolve_backbone_kwargs(name: str, backbone_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge user keyword arguments into the defaults of ``name``; lists become tuples.

    For RegUNet, giving only ``depth`` sets ``extract_levels=(0, ..., depth)``; giving only ``extract_levels`` sets
    ``depth=max(extract_levels)``.

    Raises:
        ValueError: if ``backbone_kwargs`` holds an argument the wrapper sets itself.
    """
    user = to_tuples(dict(backbone_kwargs or {}))
    reserved = [k for k in _RESERVED if k in user]
    if reserved:
        raise ValueError(
            f"backbone_kwargs: expected no {reserved} (set by the wrapper from spatial_dims/image_size), got {user}."
        )
    kwargs = default_backbone_kwargs(name)
    if name == "regunet":
        if "depth" in user and "extract_levels" not in user:
            kwargs["extract_levels"] = tuple(range(int(user["depth"]) + 1))
        elif "extract_levels" in user and "depth" not in user:
            kwargs["depth"] = max(user["extract_levels"])
    kwargs.update(user)
    return kwargs


def build_backbone(
    name: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    image_size: Sequence[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a MONAI backbone by name with the defaults of :func:`default_backbone_kwargs`.

    Args:
        name: ``"localnet"``, ``"globalnet"``, ``"regunet"`` or ``"voxelmorph"``.
        spatial_dims: 2 or 3.
        in_channels: input channels (2 for a moving/fixed pair of 1-channel images).
        out_channels: output channels (``spatial_dims`` for a DDF/DVF). GlobalNet and VoxelMorphUNet always output
            ``spatial_dims`` channels.
        image_size: fixed image array shape ``(H, W[, Z])``; required by GlobalNet (its size is fixed at
            construction), ignored otherwise.
        **kwargs: overrides of the defaults (JSON lists are accepted and turned into tuples).

    Returns:
        The backbone; it maps ``(B, in_channels, *S)`` to ``(B, out_channels, *S)``.

    Raises:
        ValueError: unknown name, missing ``image_size`` for GlobalNet, or an impossible ``out_channels``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims}.")
    kw = resolve_backbone_kwargs(name, kwargs)
    if name == "localnet":
        return LocalNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kw)
    if name == "regunet":
        return RegUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kw)
    if name == "globalnet":
        if image_size is None or len(image_size) != spatial_dims:
            raise ValueError(
                f"globalnet: expected image_size with {spatial_dims} entries (fixed image shape), got {image_size}."
            )
        if out_channels != spatial_dims:
            raise ValueError(f"globalnet: expected out_channels == spatial_dims == {spatial_dims}, got {out_channels}.")
        return GlobalNet(
            image_size=[int(s) for s in image_size], spatial_dims=spatial_dims, in_channels=in_channels, **kw
        )
    if name == "voxelmorph":
        if out_channels != spatial_dims:
            raise ValueError(
                f"voxelmorph: VoxelMorphUNet outputs spatial_dims channels, expected out_channels == {spatial_dims}, "
                f"got {out_channels}."
            )
        return VoxelMorphUNet(spatial_dims=spatial_dims, in_channels=in_channels, **kw)
    raise ValueError(f"backbone: expected one of {BACKBONES} or an nn.Module, got {name!r}.")


def backbone_name_of(net: nn.Module) -> str | None:
    """The name of a MONAI backbone class (``"localnet"``...), or ``None`` for other modules."""
    # GlobalNet and LocalNet subclass RegUNet: test them first
    for cls, name in ((GlobalNet, "globalnet"), (LocalNet, "localnet"), (RegUNet, "regunet")):
        if isinstance(net, cls):
            return name
    if isinstance(net, VoxelMorphUNet):
        return "voxelmorph"
    return None


def output_convs(net: nn.Module) -> Iterator[nn.Module]:
    """The convolutions that produce a MONAI backbone's output (the DDF/DVF or label logits).

    LocalNet/RegUNet: the convs of ``output_block`` (one per extract level, no bias). VoxelMorphUNet: the last conv
    (``net[1].final_conv_out``). GlobalNet: none (its affine head already starts at the identity). Other modules: none.
    """
    name = backbone_name_of(net)
    conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    if name in ("localnet", "regunet"):
        head: nn.Module = net.output_block  # type: ignore[assignment]
    elif name == "voxelmorph":
        head = net.net[1].final_conv_out  # type: ignore[index, union-attr]
    else:
        return iter(())
    return (m for m in head.modules() if isinstance(m, conv_types))


@torch.no_grad()
def init_output_layer(net: nn.Module, kind: Literal["zeros", "glorot"]) -> None:
    """Initialise the output convolutions of a MONAI backbone in place.

    ``"zeros"``: weights and biases set to 0, so the predicted DDF/DVF starts at 0 (identity), as DeepReg.
    ``"glorot"``: Xavier-uniform weights and zero biases, as DeepReg's conditional model.
    """
    for conv in output_convs(net):
        if kind == "zeros":
            nn.init.zeros_(conv.weight)
        else:
            nn.init.xavier_uniform_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


def size_multiple(net: nn.Module) -> int:
    """The number every input spatial size of a MONAI backbone must be divisible by (1 if unknown)."""
    name = backbone_name_of(net)
    if name in ("localnet", "regunet", "globalnet"):
        return 2 ** int(net.depth)  # type: ignore[arg-type]
    if name == "voxelmorph":
        return 2 ** (len(net.channels) // 2)  # type: ignore[arg-type]
    return 1
