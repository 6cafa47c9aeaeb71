"""A registration backbone that matches learnt features explicitly: a coarse-to-fine correlation network.

Plain U-Nets (LocalNet, VoxelMorph) have to learn *how to match* from the data before they learn *what to match*:
trained from scratch on random synthetic pairs they stay at the identity for thousands of iterations (measured on
``bundles/universal_3d``: validation Dice equal to no registration after 800 iterations at 64^3, and no gain over a
zero field on a uniform 2-voxel translation after 300 iterations at 32^3). :class:`CorrelationNet` builds the matching
in: a small shared (siamese) encoder turns each image into unit-length feature vectors, a cost volume scores every
displacement in a window by the cosine similarity of fixed and moving features, the scores are aggregated over a
small neighbourhood, and a soft-argmax (softmax-weighted mean of the displacements) gives the displacement, first on
a 1/4 grid over a large window, then as a residual on the 1/2 grid after warping the moving features. Only the encoder
and two temperatures are learnt, so what training has to find is a contrast-independent description of each voxel,
the part that SynthMorph-style data (random contrasts per label) teaches. Related designs: PDD-Net and ConvexAdam
(Heinrich et al.), PWC-Net (Sun et al.).

Geometry: pooling and upsampling use the ``align_corners=False`` convention (voxel centres at ``(i + 0.5) * f - 0.5``),
and a displacement of ``u`` coarse voxels is ``u * f`` fine voxels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CorrelationNet", "cost_volume", "soft_argmax_displacement"]


def _offsets(radius: int, ndim: int) -> torch.Tensor:
    """``((2r + 1)^D, D)`` integer displacements of a cube window, in array-axis order (last axis fastest)."""
    rng = range(-radius, radius + 1)
    return torch.tensor(list(itertools.product(*([rng] * ndim))), dtype=torch.float32)


def cost_volume(fixed_feat: torch.Tensor, moving_feat: torch.Tensor, radius: int) -> torch.Tensor:
    """Similarity of every fixed voxel's features with the moving features displaced by each window offset.

    Args:
        fixed_feat: ``(B, F, *S)`` features of the fixed image.
        moving_feat: ``(B, F, *S)`` features of the moving image (on the same grid); outside it they count as 0.
        radius: half-width ``r`` of the window, in voxels of this grid.

    Returns:
        ``(B, K, *S)`` with ``K = (2r + 1)^D``: entry ``k`` at ``x`` is ``<fixed(x), moving(x + d_k)>`` (summed over
        ``F``), ``d_k`` the ``k``-th row of :func:`_offsets` (array-axis order, last axis fastest).
    """
    ndim = fixed_feat.dim() - 2
    size = fixed_feat.shape[2:]
    padded = F.pad(moving_feat, [radius, radius] * ndim)
    width = 2 * radius + 1
    count = 1
    for _ in range(ndim):
        count *= width
    scores: list[torch.Tensor] = []
    for k in range(count):
        window = padded
        rest = k
        for axis in range(ndim - 1, -1, -1):  # offset index k in base (2r + 1), last axis fastest
            window = window.narrow(2 + axis, rest % width, size[axis])
            rest = rest // width
        scores.append((fixed_feat * window).sum(1))
    return torch.stack(scores, dim=1)


def soft_argmax_displacement(costs: torch.Tensor, offsets: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted mean displacement of a cost volume.

    Args:
        costs: ``(B, K, *S)`` from :func:`cost_volume` (higher = more similar).
        offsets: ``(K, D)`` the window's displacements (:func:`_offsets` of the radius used for ``costs``).
        beta: inverse temperature (scalar tensor).

    Returns:
        ``(B, D, *S)`` displacement in voxels of the cost volume's grid, channel ``k`` along array axis ``k``.
    """
    weights = torch.softmax(costs * beta, dim=1).flatten(2)  # (B, K, N)
    disp = torch.matmul(offsets.t().unsqueeze(0), weights)  # (B, D, N)
    return disp.reshape([costs.shape[0], offsets.shape[1]] + list(costs.shape[2:]))


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    if x.dim() == 5:
        return F.avg_pool3d(x, factor)
    return F.avg_pool2d(x, factor)


def _box(x: torch.Tensor) -> torch.Tensor:
    """Mean over a 3-voxel-wide neighbourhood (borders: mean of the voxels inside)."""
    if x.dim() == 5:
        return F.avg_pool3d(x, 3, stride=1, padding=1, count_include_pad=False)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _upsample_field(disp: torch.Tensor, size: list[int]) -> torch.Tensor:
    """A displacement field on a finer grid of the same field of view (``align_corners=False``), values scaled to
    its voxels."""
    mode = "trilinear" if disp.dim() == 5 else "bilinear"
    factors = [float(n) / float(o) for n, o in zip(size, disp.shape[2:])]
    out = F.interpolate(disp, size=size, mode=mode, align_corners=False)
    scale = torch.tensor(factors, dtype=disp.dtype, device=disp.device)
    return out * scale.reshape([1, len(size)] + [1] * len(size))


def _warp(feat: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """``feat(x + disp(x))`` sampled linearly, zero outside (``disp`` in voxels, channel ``k`` along axis ``k``).

    The same sampling as :func:`~monai_reg_ext.spatial.warp_image` with ``padding_mode="zeros"``, written with
    ``grid_sample`` alone so that the backbone stays TorchScript-compatible (MONAI's ``ckpt_export`` scripts it).
    """
    size = disp.shape[2:]
    ndim = len(size)
    axes = [torch.arange(n, dtype=disp.dtype, device=disp.device) for n in size]
    grid = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=0).unsqueeze(0) + disp
    norm = [grid[:, k] * (2.0 / max(size[k] - 1, 1)) - 1.0 for k in range(ndim)]
    norm.reverse()  # grid_sample wants (x, y[, z]) = the last array axis first
    return F.grid_sample(feat, torch.stack(norm, dim=-1), mode="bilinear", padding_mode="zeros", align_corners=True)


def _block(spatial_dims: int, cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if spatial_dims == 3 else nn.InstanceNorm2d
    return nn.Sequential(
        conv(cin, cout, 3, padding=1), norm(cout, affine=True), nn.LeakyReLU(0.2),
        conv(cout, cout, 3, padding=1), nn.LeakyReLU(0.2),
    )  # fmt: skip


class CorrelationNet(nn.Module):
    """Coarse-to-fine correlation registration backbone (module docstring): ``(B, 2C, *S) -> (B, D, *S)``.

    Input: the moving and the fixed image concatenated along channels (moving first), each ``C`` channels, on one
    grid ``S`` whose sizes are multiples of 4. Output: the DDF on that grid in voxels, channel ``k`` along array axis
    ``k``, such that ``fixed(x) ~ moving(x + ddf(x))`` (docs/conventions.md). It drops into
    :class:`~monai_reg_ext.networks.RegistrationNet` as a prebuilt ``backbone`` with ``method="ddf"``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the concatenated pair (``2C``).
        features: width of the matched feature vectors.
        channels: encoder widths at full, 1/2 and 1/4 resolution.
        radii: window half-widths on the 1/4 and the 1/2 grid (capture range ``4 r_4 + 2 r_2`` input voxels).
        smoothing: passes of a 3-voxel mean filter on each level's displacement (0: none).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 2,
        features: int = 16,
        channels: Sequence[int] = (8, 16, 32),
        radii: Sequence[int] = (3, 2),
        smoothing: int = 2,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"CorrelationNet: spatial_dims expected 2 or 3, got {spatial_dims}.")
        if in_channels % 2 or in_channels < 2:
            raise ValueError(f"CorrelationNet: in_channels expected an even number (moving + fixed), got {in_channels}")
        if len(channels) != 3 or len(radii) != 2:
            raise ValueError(f"CorrelationNet: expected 3 channels and 2 radii, got {channels}, {radii}.")
        self.spatial_dims = spatial_dims
        self.radii = (int(radii[0]), int(radii[1]))
        self.smoothing = int(smoothing)
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        c1, c2, c4 = (int(c) for c in channels)
        self.enc1 = _block(spatial_dims, in_channels // 2, c1)
        self.enc2 = _block(spatial_dims, c1, c2)
        self.enc4 = _block(spatial_dims, c2, c4)
        self.head2 = conv(c2, features, 1)
        self.head4 = conv(c4, features, 1)
        # inverse temperatures beta = exp(5 p): the factor 5 lets Adam's ~lr-sized steps sharpen the matching quickly
        self.log_beta = nn.Parameter(torch.full((2,), math.log(20.0) / 5.0))
        self.register_buffer("offsets4", _offsets(self.radii[0], spatial_dims), persistent=False)
        self.register_buffer("offsets2", _offsets(self.radii[1], spatial_dims), persistent=False)

    def _features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = self.enc2(_pool(self.enc1(image), 2))
        x4 = self.enc4(_pool(x2, 2))
        return F.normalize(self.head2(x2), dim=1), F.normalize(self.head4(x4), dim=1)

    def _smooth(self, disp: torch.Tensor) -> torch.Tensor:
        for _ in range(self.smoothing):
            disp = _box(disp)
        return disp

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """``(B, 2C, *S)`` (moving first) -> DDF ``(B, D, *S)`` in voxels of ``S``."""
        size = list(pair.shape[2:])
        if pair.dim() != self.spatial_dims + 2 or any(s % 4 != 0 for s in size):
            raise ValueError(
                f"CorrelationNet: expected (B, 2C, *S) with {self.spatial_dims} spatial sizes divisible by 4, "
                f"got {list(pair.shape)}."
            )
        half = pair.shape[1] // 2
        n = pair.shape[0]
        f2, f4 = self._features(torch.cat([pair[:, :half], pair[:, half:]], dim=0))  # one pass for both images
        beta = (5.0 * self.log_beta).exp()
        costs = _box(cost_volume(f4[n:], f4[:n], self.radii[0]))
        disp4 = self._smooth(soft_argmax_displacement(costs, self.offsets4, beta[0]))
        disp2 = _upsample_field(disp4, list(f2.shape[2:]))
        costs = _box(cost_volume(f2[n:], _warp(f2[:n], disp2), self.radii[1]))
        disp2 = self._smooth(disp2 + soft_argmax_displacement(costs, self.offsets2, beta[1]))
        return _upsample_field(disp2, size)
