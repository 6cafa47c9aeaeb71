"""Conditional segmentation network: (moving image, fixed image, moving label) -> predicted fixed label.

DeepReg's ``conditional`` method (Hu et al., "Conditional segmentation in lieu of image registration", MICCAI 2019):
no transformation is predicted; the network outputs the fixed label directly. Conventions (moving vs fixed, labels):
``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from .backbones import build_backbone, init_output_layer, resolve_backbone_kwargs, size_multiple, to_jsonable
from .registration import check_pair, resize_to

__all__ = ["ConditionalSegmentationNet"]

_CONDITIONAL_BACKBONES = ("localnet", "regunet")


class ConditionalSegmentationNet(nn.Module):
    """Predict the fixed label from the moving image, the fixed image and the moving label.

    The moving image and label are resized to the fixed grid (linear, ``align_corners=True``) and concatenated with
    the fixed image into a ``(2C + 1)``-channel input. Each label channel is an independent sample (the batch is
    reshaped to ``B * L``), as DeepReg, and the result is restored to ``(B, L, *S_fixed)``. The output conv has
    Glorot-uniform init and a sigmoid follows, as DeepReg's conditional model. The sigmoid is applied once, after the
    backbone averages its extract levels (DeepReg applies it per level before averaging; both give values in [0, 1]).

    Args:
        spatial_dims: 2 or 3.
        backbone: ``"localnet"`` or ``"regunet"`` (GlobalNet outputs an affine DDF and VoxelMorphUNet needs an even
            number of input channels and outputs ``spatial_dims`` channels, so neither fits).
        backbone_kwargs: overrides of the backbone defaults (JSON lists accepted).
        image_channels: channels ``C`` of each of the moving and fixed images.

    Raises:
        ValueError: unknown backbone or bad options.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        backbone: Literal["localnet", "regunet"] = "localnet",
        backbone_kwargs: Mapping[str, Any] | None = None,
        image_channels: int = 1,
    ) -> None:
        super().__init__()
        if backbone not in _CONDITIONAL_BACKBONES:
            raise ValueError(f"backbone: expected one of {_CONDITIONAL_BACKBONES}, got {backbone!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.image_channels = int(image_channels)
        self.backbone_name = backbone
        kwargs = resolve_backbone_kwargs(backbone, backbone_kwargs)
        self.backbone = build_backbone(
            backbone, spatial_dims=spatial_dims, in_channels=2 * self.image_channels + 1, out_channels=1, **kwargs
        )
        init_output_layer(self.backbone, "glorot")
        self._size_multiple = size_multiple(self.backbone)
        self._config: dict[str, Any] = to_jsonable(
            {
                "spatial_dims": spatial_dims,
                "backbone": backbone,
                "backbone_kwargs": kwargs,
                "image_channels": self.image_channels,
            }
        )

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain JSON-able dict; ``ConditionalSegmentationNet(**config)`` rebuilds it."""
        return to_jsonable(self._config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backbone: nn.Module | None = None) -> ConditionalSegmentationNet:
        """Rebuild from :attr:`config` (``backbone`` is accepted for symmetry with RegistrationNet and must be None)."""
        if backbone is not None:
            raise ValueError("ConditionalSegmentationNet.from_config: expected backbone=None, got a module.")
        return cls(**dict(config))

    def forward(
        self, moving_image: torch.Tensor, fixed_image: torch.Tensor, moving_label: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Predict the fixed label.

        Args:
            moving_image: ``(B, C, *S_moving)``.
            fixed_image: ``(B, C, *S_fixed)``; defines the output grid.
            moving_label: ``(B, L, *S_moving)`` in [0, 1].

        Returns:
            Dict with ``pred_fixed_label`` ``(B, L, *S_fixed)`` in [0, 1] (no ``ddf``).

        Raises:
            ValueError: shapes that do not fit, naming expected vs got.
        """
        if moving_label is None:
            raise ValueError("ConditionalSegmentationNet: expected a moving_label (B, L, *S_moving), got None.")
        check_pair(
            "ConditionalSegmentationNet",
            self.spatial_dims,
            self.image_channels,
            moving_image,
            fixed_image,
            moving_label,
            size_mult=self._size_multiple,
        )
        batch, num_labels = moving_label.shape[:2]
        fixed_size = fixed_image.shape[2:]
        moving = resize_to(moving_image, fixed_size)
        label = resize_to(moving_label.to(moving.dtype), fixed_size)
        # one sample per label channel: (B, L, *S) -> (B * L, 1, *S); images repeated per label
        label = label.reshape(batch * num_labels, 1, *fixed_size)
        images = torch.cat([moving, fixed_image], dim=1).repeat_interleave(num_labels, dim=0)
        logits = self.backbone(torch.cat([images, label], dim=1))  # (B * L, 1, *S)
        pred = torch.sigmoid(logits).reshape(batch, num_labels, *fixed_size)
        return {"pred_fixed_label": pred}

    def extra_repr(self) -> str:
        return f"spatial_dims={self.spatial_dims}, backbone={self.backbone_name!r}"
