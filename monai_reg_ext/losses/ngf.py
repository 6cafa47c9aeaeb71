"""Normalised gradient fields (NGF): an edge-alignment loss for multi-modal registration, 2D and 3D.

Haber and Modersitzki, "Intensity gradient based registration and fusion of multi-modal images", MICCAI 2006
(Methods Inf. Med. 2007). Two images are similar where their intensity edges are parallel or anti-parallel,
whatever the intensities on either side, so the loss is unchanged when one image's contrast is inverted.
See ``docs/conventions.md`` for the image layout.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["NormalizedGradientFieldLoss"]


class NormalizedGradientFieldLoss(nn.Module):
    """``mean_x [1 - (|<g_a, g_b>| + eps^2)^2 / ((|g_a|^2 + eps^2) (|g_b|^2 + eps^2))]`` over batch, channels, voxels.

    ``g_a``, ``g_b`` are the intensity gradients of ``pred`` and ``target`` per voxel (central differences, one-sided
    at the faces; intensity units per voxel). The fraction is the squared cosine of the angle between the vectors
    ``(g_a, eps)`` and ``(g_b, eps)`` up to the sign of ``<g_a, g_b>``: by Cauchy-Schwarz the loss lies in
    ``[0, 1]`` and is ``0`` exactly where ``g_a = +- g_b``, including flat regions of both images (where plain NGF,
    ``1 - <g_a, g_b>^2 / (|g_a|_eps^2 |g_b|_eps^2)``, would give 1). The absolute value makes it exactly invariant
    to a contrast inversion of either image; edges much weaker than ``eps`` count as flat.

    Args:
        spatial_dims: 2 or 3.
        eps: edge parameter in intensity units per voxel: gradients well below it are treated as noise. The
            default suits images min-max scaled to ``[0, 1]``; set it to about the noise level of the gradients.
    """

    def __init__(self, spatial_dims: int = 3, eps: float = 1e-2) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"NormalizedGradientFieldLoss: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not eps > 0:
            raise ValueError(f"NormalizedGradientFieldLoss: eps must be > 0, got {eps}.")
        self.spatial_dims = int(spatial_dims)
        self.eps = float(eps)

    def _gradient(self, image: torch.Tensor) -> list[torch.Tensor]:
        if min(image.shape[2:]) < 2:
            raise ValueError(f"NormalizedGradientFieldLoss: every spatial size must be >= 2, got {image.shape[2:]}.")
        return list(torch.gradient(image, dim=tuple(range(2, 2 + self.spatial_dims)), edge_order=1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: warped moving image ``(B, C, *S)`` (``S`` of length ``spatial_dims``).
            target: fixed image, same shape (any contrast).

        Returns:
            A scalar in ``[0, 1]``.

        Raises:
            ValueError: on a wrong number of dimensions, mismatched shapes or a spatial size below 2.
        """
        if pred.ndim - 2 != self.spatial_dims:
            raise ValueError(
                f"NormalizedGradientFieldLoss: expected pred (B, C, *S) with {self.spatial_dims} spatial dims, "
                f"got shape {tuple(pred.shape)}."
            )
        if target.shape != pred.shape:
            raise ValueError(
                f"NormalizedGradientFieldLoss: expected target of shape {tuple(pred.shape)}, got {tuple(target.shape)}."
            )
        grad_a = self._gradient(pred)
        grad_b = self._gradient(target.to(pred.dtype))
        eps2 = self.eps**2
        dot = sum(a * b for a, b in zip(grad_a, grad_b))
        norm_a = sum(a * a for a in grad_a) + eps2
        norm_b = sum(b * b for b in grad_b) + eps2
        return (1.0 - (dot.abs() + eps2).pow(2) / (norm_a * norm_b)).mean()
