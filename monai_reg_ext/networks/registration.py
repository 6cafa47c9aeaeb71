"""Registration network: a MONAI backbone predicting a DDF, a DVF or an affine transform, plus the warping.

This is DeepReg's ``ddf`` / ``dvf`` models (and ``ddf`` with the ``global`` backbone, i.e. affine) on MONAI backbones.
Conventions (DDF layout, voxel units, moving vs fixed, theta): ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..spatial import dvf_to_ddf, warp_image
from .backbones import (
    BACKBONES,
    backbone_name_of,
    build_backbone,
    init_output_layer,
    resolve_backbone_kwargs,
    size_multiple,
    to_jsonable,
)
from .onednn import use_onednn_convolutions

__all__ = ["RegistrationNet", "RegistrationDDFNet", "integrate_velocity", "resize_to", "check_pair"]

Method = Literal["ddf", "dvf", "affine"]
_METHODS = ("ddf", "dvf", "affine")


def resize_to(image: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """Resize ``(B, C, *S)`` to ``spatial_size`` with (bi/tri)linear interpolation, ``align_corners=True``.

    Moving and fixed are taken to cover the same field of view (``docs/conventions.md``). Returns ``image`` itself when
    the size already matches.
    """
    size = tuple(int(s) for s in spatial_size)
    if tuple(image.shape[2:]) == size:
        return image
    mode = "trilinear" if len(size) == 3 else "bilinear"
    return F.interpolate(image, size=size, mode=mode, align_corners=True)


def check_pair(
    name: str,
    spatial_dims: int,
    image_channels: int,
    moving_image: torch.Tensor,
    fixed_image: torch.Tensor,
    moving_label: torch.Tensor | None,
    size_mult: int = 1,
    fixed_size: Sequence[int] | None = None,
) -> None:
    """Validate a moving/fixed pair (and an optional moving label) for a network.

    Raises:
        ValueError: naming the expected and the received shape for wrong ndim, channels, batch or spatial size.
    """
    nd = spatial_dims + 2
    layout = "(B, C, H, W)" if spatial_dims == 2 else "(B, C, H, W, Z)"
    for key, t in (("moving_image", moving_image), ("fixed_image", fixed_image), ("moving_label", moving_label)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: {key} expected a torch.Tensor {layout}, got {type(t).__name__}.")
        if t.ndim != nd:
            raise ValueError(
                f"{name}: {key} expected {nd} dims {layout} for spatial_dims={spatial_dims}, "
                f"got shape {tuple(t.shape)}."
            )
    for key, t in (("moving_image", moving_image), ("fixed_image", fixed_image)):
        if t.shape[1] != image_channels:
            raise ValueError(f"{name}: {key} expected {image_channels} channel(s), got shape {tuple(t.shape)}.")
    if moving_image.shape[0] != fixed_image.shape[0]:
        raise ValueError(
            f"{name}: expected equal batch sizes, got moving_image {tuple(moving_image.shape)} "
            f"and fixed_image {tuple(fixed_image.shape)}."
        )
    if moving_label is not None:
        if moving_label.shape[0] != moving_image.shape[0] or moving_label.shape[2:] != moving_image.shape[2:]:
            raise ValueError(
                f"{name}: moving_label expected shape (B, L, *S_moving) = ({moving_image.shape[0]}, L, "
                f"{', '.join(str(s) for s in moving_image.shape[2:])}), got {tuple(moving_label.shape)}."
            )
        if moving_label.shape[1] < 1:
            raise ValueError(f"{name}: moving_label expected at least 1 channel, got {tuple(moving_label.shape)}.")
    s_fix = tuple(int(s) for s in fixed_image.shape[2:])
    if fixed_size is not None and s_fix != tuple(int(s) for s in fixed_size):
        raise ValueError(
            f"{name}: fixed_image spatial size expected {tuple(fixed_size)} (fixed at construction), got {s_fix}."
        )
    if any(s % size_mult for s in s_fix):
        raise ValueError(
            f"{name}: fixed_image spatial size expected divisible by {size_mult} (backbone depth), got {s_fix}."
        )


def _warp_border(image: torch.Tensor, ddf: torch.Tensor, ref_grid: torch.Tensor) -> torch.Tensor:
    """``image(x + ddf(x))``, bilinear, border padding, ``align_corners=True``: MONAI's ``Warp`` (PyTorch path) in a
    form TorchScript compiles. ``ref_grid`` is the identity grid ``(1, D, *S)`` in voxels."""
    nd = ddf.dim() - 2
    grid = (ref_grid + ddf).permute([0] + list(range(2, nd + 2)) + [1])
    denom: list[float] = []
    for s in ddf.shape[2:]:
        denom.append(float(max(int(s) - 1, 1)))
    grid = grid * 2 / torch.tensor(denom, dtype=grid.dtype, device=grid.device) - 1  # MONAI's order of operations
    grid = grid.flip([-1])  # array axes (0, 1, 2) -> grid_sample's (x, y, z)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def integrate_velocity(dvf: torch.Tensor, num_steps: int = 7) -> torch.Tensor:
    """Scaling and squaring of a stationary velocity field ``(B, D, *S)`` (voxels): ``ddf = dvf / 2**num_steps``,
    then ``num_steps`` times ``ddf = ddf + warp(ddf, ddf)`` with border padding, as
    :func:`monai_reg_ext.spatial.dvf_to_ddf` (MONAI's ``DVF2DDF``), and scriptable with TorchScript.
    ``num_steps=0`` returns the field itself."""
    if num_steps <= 0:
        return dvf
    axes = [torch.arange(int(s), dtype=dvf.dtype, device=dvf.device) for s in dvf.shape[2:]]
    ref_grid = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=0).unsqueeze(0)
    ddf = dvf / float(2**num_steps)
    for _ in range(num_steps):
        ddf = ddf + _warp_border(ddf, ddf, ref_grid)
    return ddf


class RegistrationDDFNet(nn.Module):
    """The tensor-in, tensor-out form of a :class:`RegistrationNet`, which TorchScript compiles.

    ``forward(image)`` maps the moving and fixed images concatenated along channels, ``(B, 2C, *S)`` (moving first,
    both on one grid), to the DDF ``(B, D, *S)`` in voxels: the backbone's output, integrated by scaling and squaring
    for a ``"dvf"`` network. It shares the backbone (and so the weights and state_dict keys, ``backbone.*``) of the
    :class:`RegistrationNet` it comes from; ``torch.jit.script(registration_net)`` compiles this form (through
    ``RegistrationNet.__prepare_scriptable__``), which is what MONAI's ``ckpt_export`` writes.

    Args:
        backbone: the registration network's backbone ``(B, 2C, *S) -> (B, D, *S)``.
        num_steps: scaling-and-squaring steps (0: the backbone output is the DDF).
    """

    def __init__(self, backbone: nn.Module, num_steps: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_steps = int(num_steps)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return integrate_velocity(self.backbone(image), self.num_steps)


class RegistrationNet(nn.Module):
    """Predict the transformation from a moving to a fixed image, and warp the moving image (and label) with it.

    The moving image is resized to the fixed grid (linear, ``align_corners=True``) and concatenated with the fixed
    image as the backbone input ``(B, 2C, *S_fixed)``. The backbone predicts a DDF (``method="ddf"``), a stationary
    velocity field integrated by scaling and squaring (``"dvf"``), or an affine transform (``"affine"``, GlobalNet
    only). The **original** moving image is then warped with :func:`monai_reg_ext.warp_image` (normalised
    coordinates, so moving and fixed sizes may differ). See ``docs/conventions.md``.

    Called with one tensor, ``net(image)`` with ``image`` ``(B, 2C, *S)`` (moving channels first, then fixed, on one
    grid: the ``network_data_format`` input of the bundles' metadata), it returns the DDF ``(B, D, *S)`` alone, as a
    tensor: MONAI's tensor-in, tensor-out network convention, which ``verify_net_in_out``, ``SupervisedEvaluator`` and
    TorchScript (``ckpt_export``, scripted or traced; :class:`RegistrationDDFNet`) use. The weights are the same.

    The output convolutions of named backbones are zero-initialised (GlobalNet's affine head already starts at the
    identity), so training starts at the identity transform, as DeepReg. Their 3-D convolutions run on oneDNN in CPU
    inference (:mod:`~monai_reg_ext.networks.onednn`: about 3x faster; training and CUDA unchanged).

    Args:
        backbone: ``"localnet"``, ``"globalnet"``, ``"regunet"``, ``"voxelmorph"`` (MONAI's LocalNet, GlobalNet,
            RegUNet, VoxelMorphUNet with :func:`~monai_reg_ext.networks.backbones.default_backbone_kwargs`), or a
            prebuilt ``nn.Module`` mapping ``(B, 2C, *S)`` to ``(B, D, *S)``. A prebuilt module is used as given (its
            output layer is **not** re-initialised) and :attr:`config` records only its class path, so
            :func:`~monai_reg_ext.networks.load_checkpoint` needs the module again (``backbone=`` argument).
        method: ``"ddf"``, ``"dvf"`` or ``"affine"`` (requires a GlobalNet backbone). A GlobalNet backbone with
            ``"ddf"`` is DeepReg's affine ``ddf`` + ``global`` model; ``"dvf"`` with GlobalNet is refused.
        spatial_dims: 2 or 3.
        image_size: fixed image array shape; required for GlobalNet, whose size is fixed at construction.
        backbone_kwargs: overrides of the backbone defaults (e.g. ``{"num_channel_initial": 4}``); JSON lists are
            turned into tuples. ``spatial_dims``, ``in_channels``, ``out_channels``, ``image_size`` are set here.
        num_steps: scaling-and-squaring steps for ``"dvf"``.
        warp_mode: interpolation of the moving image (``"bilinear"`` or ``"nearest"``); labels are always bilinear.
        padding_mode: ``"border"``, ``"zeros"`` or ``"reflection"`` when sampling outside the moving image.
        image_channels: channels ``C`` of each of the moving and fixed images (1 for DeepReg data).
        inverse_consistent: in training mode, also register the fixed image to the moving one (one backbone call
            on a batch of ``2B``) and return ``ddf_inverse`` and ``pred_moving_image`` for a symmetric image loss and
            :class:`~monai_reg_ext.losses.InverseConsistencyLoss`. Needs moving and fixed on one grid. In eval mode
            (inference, validation) only the forward direction runs, so inference cost and weights are unchanged.

    Raises:
        ValueError: invalid method/backbone combination, missing ``image_size``, bad options.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "localnet",
        method: Method = "ddf",
        spatial_dims: int = 3,
        image_size: Sequence[int] | None = None,
        backbone_kwargs: Mapping[str, Any] | None = None,
        num_steps: int = 7,
        warp_mode: Literal["bilinear", "nearest"] = "bilinear",
        padding_mode: Literal["border", "zeros", "reflection"] = "border",
        image_channels: int = 1,
        inverse_consistent: bool = False,
    ) -> None:
        super().__init__()
        if method not in _METHODS:
            raise ValueError(f"method: expected one of {_METHODS}, got {method!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims}.")
        if warp_mode not in ("bilinear", "nearest"):
            raise ValueError(f"warp_mode: expected 'bilinear' or 'nearest', got {warp_mode!r}.")
        if padding_mode not in ("border", "zeros", "reflection"):
            raise ValueError(f"padding_mode: expected 'border', 'zeros' or 'reflection', got {padding_mode!r}.")
        if int(num_steps) < 0:
            raise ValueError(f"num_steps: expected >= 0, got {num_steps}.")
        if image_size is not None and len(image_size) != spatial_dims:
            raise ValueError(f"image_size: expected {spatial_dims} entries, got {tuple(image_size)}.")
        self.method = method
        self.spatial_dims = spatial_dims
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        self.num_steps = int(num_steps)
        self.warp_mode = warp_mode
        self.padding_mode = padding_mode
        self.image_channels = int(image_channels)
        self.inverse_consistent = bool(inverse_consistent)

        if isinstance(backbone, nn.Module):
            self.backbone = backbone
            self.backbone_name = backbone_name_of(backbone)
            backbone_cfg: Any = None
            kwargs_cfg: dict[str, Any] = {}
            self._backbone_class = f"{type(backbone).__module__}.{type(backbone).__qualname__}"
        elif isinstance(backbone, str):
            if backbone not in BACKBONES:
                raise ValueError(f"backbone: expected one of {BACKBONES} or an nn.Module, got {backbone!r}.")
            kwargs = resolve_backbone_kwargs(backbone, backbone_kwargs)
            self.backbone = build_backbone(
                backbone,
                spatial_dims=spatial_dims,
                in_channels=2 * self.image_channels,
                out_channels=spatial_dims,
                image_size=self.image_size,
                **kwargs,
            )
            self.backbone_name = backbone
            init_output_layer(self.backbone, "zeros")
            use_onednn_convolutions(self.backbone)  # CPU inference on oneDNN (3x faster); training unchanged
            backbone_cfg = backbone
            kwargs_cfg = kwargs
            self._backbone_class = None
        else:
            raise ValueError(
                f"backbone: expected a name in {BACKBONES} or an nn.Module, got {type(backbone).__name__}."
            )

        self.is_global = self.backbone_name == "globalnet"
        if method == "affine" and not self.is_global:
            raise ValueError(
                f"method='affine': expected the 'globalnet' backbone, got {self.backbone_name or backbone}."
            )
        if method == "dvf" and self.is_global:
            raise ValueError(
                "method='dvf': expected a dense backbone (localnet, regunet, voxelmorph), got 'globalnet'."
            )
        if self.is_global and self.image_size is None:
            self.image_size = tuple(int(s) for s in self.backbone.image_size)  # prebuilt GlobalNet
        self._size_multiple = size_multiple(self.backbone)

        self._config: dict[str, Any] = to_jsonable(
            {
                "backbone": backbone_cfg,
                "method": method,
                "spatial_dims": spatial_dims,
                "image_size": self.image_size,
                "backbone_kwargs": kwargs_cfg,
                "num_steps": self.num_steps,
                "warp_mode": warp_mode,
                "padding_mode": padding_mode,
                "image_channels": self.image_channels,
                "inverse_consistent": self.inverse_consistent,
            }
        )
        if self._backbone_class is not None:
            self._config["backbone_class"] = self._backbone_class

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain JSON-able dict (a copy). ``RegistrationNet(**config)`` rebuilds the net,
        except for a prebuilt backbone (``backbone`` is ``None`` and ``backbone_class`` names its class)."""
        return to_jsonable(self._config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backbone: nn.Module | None = None) -> RegistrationNet:
        """Rebuild from :attr:`config`; ``backbone`` replaces the recorded one (required for a prebuilt backbone).

        Raises:
            ValueError: the config records a prebuilt backbone and none is given.
        """
        cfg = dict(config)
        backbone_class = cfg.pop("backbone_class", None)
        if backbone is not None:
            cfg["backbone"] = backbone
            cfg.pop("backbone_kwargs", None)
        elif cfg.get("backbone") is None:
            raise ValueError(
                f"RegistrationNet.from_config: the config records a prebuilt backbone ({backbone_class}); expected it "
                "as the backbone argument, got None."
            )
        return cls(**cfg)

    def _run_backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Backbone output ``(B, D, *S)`` and, for GlobalNet, theta ``(B, D, D + 1)`` (with gradients)."""
        if not self.is_global:
            return self.backbone(x), None
        captured: list[torch.Tensor] = []
        # GlobalNet keeps only a detached theta (save_theta); read the affine head's output instead
        handle = self.backbone.output_block.fc.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            ddf = self.backbone(x)
        finally:
            handle.remove()
        theta = captured[-1].reshape(x.shape[0], self.spatial_dims, self.spatial_dims + 1)
        return ddf, theta

    def ddf_net(self) -> RegistrationDDFNet:
        """The tensor-in, tensor-out form of this network (same backbone module, so the same weights)."""
        return RegistrationDDFNet(self.backbone, self.num_steps if self.method == "dvf" else 0)

    def __prepare_scriptable__(self) -> RegistrationDDFNet:
        """``torch.jit.script(net)`` compiles :meth:`ddf_net` (the dict-returning two-input form has Python-only
        parts: hooks, MONAI's ``Warp``)."""
        return self.ddf_net()

    def predict_ddf(self, image: torch.Tensor) -> torch.Tensor:
        """The DDF ``(B, D, *S)`` in voxels for ``image`` ``(B, 2C, *S)``: moving channels then fixed channels.

        Raises:
            ValueError: for a shape that does not fit, naming expected vs got.
        """
        nd, c = self.spatial_dims + 2, 2 * self.image_channels
        if not isinstance(image, torch.Tensor) or image.ndim != nd or image.shape[1] != c:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(
                f"RegistrationNet: a single input expected shape (B, {c}, *S) with {self.spatial_dims} spatial dims "
                f"(moving then fixed channels), got {got}."
            )
        half = self.image_channels
        check_pair(
            "RegistrationNet",
            self.spatial_dims,
            self.image_channels,
            image[:, :half],
            image[:, half:],
            None,
            size_mult=self._size_multiple,
            fixed_size=self.image_size if self.is_global else None,
        )
        return self.ddf_net()(image)

    def forward(
        self,
        moving_image: torch.Tensor,
        fixed_image: torch.Tensor | None = None,
        moving_label: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor] | torch.Tensor:
        """Register ``moving_image`` to ``fixed_image``.

        Args:
            moving_image: ``(B, C, *S_moving)``, intensities typically in [0, 1]; or, without ``fixed_image``, the
                pair concatenated along channels ``(B, 2C, *S)`` (moving first), for which the DDF tensor alone is
                returned (:meth:`predict_ddf`).
            fixed_image: ``(B, C, *S_fixed)``; defines the output grid.
            moving_label: optional ``(B, L, *S_moving)`` in [0, 1].

        Returns:
            With ``fixed_image``: a dict with ``ddf`` ``(B, D, *S_fixed)`` in fixed-grid voxels; ``pred_fixed_image``
            ``(B, C, *S_fixed)`` (the warped moving image); ``dvf`` (``"dvf"``, same layout as ``ddf``); ``theta``
            ``(B, D, D + 1)`` (GlobalNet, voxel coordinates with origin at voxel 0); ``pred_fixed_label``
            ``(B, L, *S_fixed)`` (moving label warped bilinearly) when ``moving_label`` is given; with
            ``inverse_consistent`` in training mode also ``ddf_inverse`` ``(B, D, *S)`` (fixed -> moving, on the moving
            grid) and ``pred_moving_image`` (the fixed image warped onto the moving grid). Without ``fixed_image``: the
            DDF tensor ``(B, D, *S)`` (forward direction only).

        Raises:
            ValueError: shapes that do not fit, naming expected vs got.
        """
        if fixed_image is None:
            if moving_label is not None:
                raise ValueError(
                    "RegistrationNet: moving_label expected with a separate fixed_image, got it with a single "
                    "concatenated input."
                )
            return self.predict_ddf(moving_image)
        check_pair(
            "RegistrationNet",
            self.spatial_dims,
            self.image_channels,
            moving_image,
            fixed_image,
            moving_label,
            size_mult=self._size_multiple,
            fixed_size=self.image_size if self.is_global else None,
        )
        both = self.inverse_consistent and self.training
        x = torch.cat([resize_to(moving_image, fixed_image.shape[2:]), fixed_image], dim=1)
        if both:
            if moving_image.shape != fixed_image.shape:
                raise ValueError(
                    "RegistrationNet(inverse_consistent=True): expected moving and fixed images of one shape in "
                    f"training, got moving {tuple(moving_image.shape)} and fixed {tuple(fixed_image.shape)}."
                )
            x = torch.cat([x, torch.cat([fixed_image, moving_image], dim=1)], dim=0)
        raw, theta = self._run_backbone(x)
        ddf = dvf_to_ddf(raw, num_steps=self.num_steps) if self.method == "dvf" else raw
        n = moving_image.shape[0]
        out: dict[str, torch.Tensor] = {}
        if self.method == "dvf":
            out["dvf"] = raw[:n]
        out["ddf"] = ddf[:n]
        if theta is not None:
            out["theta"] = theta[:n]
        out["pred_fixed_image"] = warp_image(moving_image, ddf[:n], mode=self.warp_mode, padding_mode=self.padding_mode)
        if moving_label is not None:
            out["pred_fixed_label"] = warp_image(moving_label, ddf[:n], mode="bilinear", padding_mode=self.padding_mode)
        if both:
            out["ddf_inverse"] = ddf[n:]
            out["pred_moving_image"] = warp_image(
                fixed_image, ddf[n:], mode=self.warp_mode, padding_mode=self.padding_mode
            )
        return out

    def extra_repr(self) -> str:
        return f"method={self.method!r}, spatial_dims={self.spatial_dims}, backbone={self.backbone_name!r}"
