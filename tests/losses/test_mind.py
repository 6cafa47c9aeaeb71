"""MIND-SSC: equals the reference implementation, contrast invariance, minimum at the true shift, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_reg_ext import warp_image
from monai_reg_ext.losses import MINDSSCLoss, mind_ssc
from monai_reg_ext.losses.mind import mind_ssc_pairs


def _reference_mindssc(img: torch.Tensor, radius: int = 2, dilation: int = 2) -> torch.Tensor:
    """The Learn2Reg baselines' ``MINDSSC`` (3D, convolution-based), ported to the CPU."""
    kernel_size = radius * 2 + 1
    six = torch.tensor([[0, 1, 1], [1, 1, 0], [1, 0, 1], [1, 1, 2], [2, 1, 1], [1, 2, 1]]).long()
    dist = ((six[:, None, :] - six[None, :, :]) ** 2).sum(-1)
    x, y = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    mask = (x > y).reshape(-1) & (dist == 2).reshape(-1)
    idx1 = six.unsqueeze(1).repeat(1, 6, 1).view(-1, 3)[mask, :]
    idx2 = six.unsqueeze(0).repeat(6, 1, 1).view(-1, 3)[mask, :]
    shift1 = torch.zeros(12, 1, 3, 3, 3)
    shift1.view(-1)[torch.arange(12) * 27 + idx1[:, 0] * 9 + idx1[:, 1] * 3 + idx1[:, 2]] = 1
    shift2 = torch.zeros(12, 1, 3, 3, 3)
    shift2.view(-1)[torch.arange(12) * 27 + idx2[:, 0] * 9 + idx2[:, 1] * 3 + idx2[:, 2]] = 1
    pad1, pad2 = torch.nn.ReplicationPad3d(dilation), torch.nn.ReplicationPad3d(radius)
    diff = F.conv3d(pad1(img), shift1, dilation=dilation) - F.conv3d(pad1(img), shift2, dilation=dilation)
    ssd = F.avg_pool3d(pad2(diff**2), kernel_size, stride=1)
    mind = ssd - torch.min(ssd, 1, keepdim=True)[0]
    var = torch.mean(mind, 1, keepdim=True)
    var = torch.clamp(var, var.mean().item() * 0.001, var.mean().item() * 1000)
    mind = torch.exp(-mind / var)
    return mind[:, torch.tensor([6, 8, 1, 11, 2, 10, 0, 7, 9, 4, 5, 3]).long()]


def _phantom(ndim: int, size: int = 36) -> torch.Tensor:
    """Piecewise constant: background 0, a block of 0.35, a ball of 0.8, farther apart than a descriptor's reach."""
    img = torch.zeros((1, 1) + (size,) * ndim)
    img[(0, 0) + (slice(3, 11),) * ndim] = 0.35
    grid = torch.stack(torch.meshgrid(*[torch.arange(size)] * ndim, indexing="ij"))
    img[0, 0][((grid - 26) ** 2).sum(0) <= 36] = 0.8
    return img


@pytest.mark.parametrize("radius, dilation", [(2, 2), (1, 3)])
def test_equals_reference_implementation(radius, dilation):
    img = torch.rand(1, 1, 14, 16, 12, generator=torch.Generator().manual_seed(0))
    ours = mind_ssc(img, radius, dilation)
    assert ours.shape == (1, 12, 14, 16, 12)
    assert torch.allclose(ours, _reference_mindssc(img, radius, dilation), atol=1e-4)


def test_pairs():
    assert len(mind_ssc_pairs(3)) == 12 and len(mind_ssc_pairs(2)) == 4
    for ndim in (2, 3):
        for a, b in mind_ssc_pairs(ndim):
            assert sum(abs(v) for v in a) == 1 and sum(abs(v) for v in b) == 1
            assert sum((u - v) ** 2 for u, v in zip(a, b)) == 2


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("remap", [lambda x: 1 - x, lambda x: (x - 0.5) ** 2, lambda x: 3 * x + 7])
def test_contrast_invariance_on_piecewise_constant_image(ndim, remap):
    img = _phantom(ndim)
    ref = mind_ssc(img)
    assert ref.shape[1] == (12 if ndim == 3 else 4)
    assert (ref < 0.9).any()  # the phantom has edges the descriptor sees
    assert (mind_ssc(remap(img)) - ref).abs().max() < 1e-4


@pytest.mark.parametrize("ndim", [2, 3])
def test_loss_minimal_at_true_shift_with_inverted_contrast(ndim):
    fixed = F.avg_pool2d(_phantom(2), 3, 1, 1) if ndim == 2 else F.avg_pool3d(_phantom(3), 3, 1, 1)
    shift = (2, -1, 1)[:ndim]
    moving = 1.0 - torch.roll(fixed, shifts=shift, dims=tuple(range(2, 2 + ndim)))  # moving(x) = 1 - fixed(x - s)
    loss = MINDSSCLoss(ndim)

    def at(s):
        ddf = torch.tensor(s, dtype=torch.float32).view(1, ndim, *([1] * ndim)).expand(1, ndim, *fixed.shape[2:])
        return loss(warp_image(moving, ddf.contiguous()), fixed).item()

    assert at(shift) < 1e-2 * at((0,) * ndim)
    if ndim == 2:  # the true shift is the minimum over a window of integer shifts
        others = [at((i, j)) for i in range(-1, 4) for j in range(-3, 2) if (i, j) != shift]
        assert at(shift) < min(others)


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradient_finite_and_gradcheck(ndim):
    fixed = _phantom(ndim, 16)
    pred = F.avg_pool2d(fixed, 3, 1, 1) if ndim == 2 else F.avg_pool3d(fixed, 3, 1, 1)
    pred = pred.roll(1, 2).requires_grad_(True)
    MINDSSCLoss(ndim)(pred, 1 - fixed).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    constant = torch.full_like(fixed, 0.3).requires_grad_(True)
    MINDSSCLoss(ndim)(constant, fixed).backward()
    assert torch.isfinite(constant.grad).all()
    small = torch.rand(1, 1, *([6] * ndim), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.rand_like(small)
    assert torch.autograd.gradcheck(
        lambda p: MINDSSCLoss(ndim, radius=1, dilation=1)(p, target), (small.requires_grad_(),)
    )


def test_target_cache():
    pred, target = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)
    loss = MINDSSCLoss(2)
    first = loss(pred, target)
    assert loss._cache._ref() is target
    target.mul_(2.0).pow_(2)
    assert loss(pred, target).item() == pytest.approx(MINDSSCLoss(2, cache_target=False)(pred, target).item())
    assert loss(pred, target).item() != first.item()


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W"):
        mind_ssc(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="spatial dims"):
        MINDSSCLoss(3)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="target of shape"):
        MINDSSCLoss(2)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
