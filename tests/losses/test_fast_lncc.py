"""FastLNCCLoss: MONAI's LNCC value and gradient, the fixed-image cache and its invalidation."""

from __future__ import annotations

import pickle

import pytest
import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss

from monai_reg_ext.losses import FastLNCCLoss
from monai_reg_ext.losses._box import box_sum, valid_box_sum


def _pair(shape, seed=0, background=0.0):
    """Random images inside a box, a flat ``background`` around it; pred correlates with target."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.full(shape, background)
    pred = torch.full(shape, background)
    inner = (slice(None), slice(None)) + tuple(slice(3, s - 4) for s in shape[2:])
    noise = torch.rand(target[inner].shape, generator=gen)
    target[inner] = noise
    pred[inner] = 0.6 * noise + 0.4 * torch.rand(noise.shape, generator=gen)
    return pred, target


CASES = [(k, shape, bg) for k in (5, 7, 9) for shape in [(2, 1, 33, 30), (1, 2, 18, 21, 17)] for bg in (0.0, 0.5)]


@pytest.mark.parametrize("kernel_size, shape, background", CASES)
def test_value_and_gradient_equal_monai(kernel_size, shape, background):
    ndim = len(shape) - 2
    pred, target = _pair(shape, background=background)
    pred_a = pred.clone().requires_grad_(True)
    pred_b = pred.clone().requires_grad_(True)
    ref = LocalNormalizedCrossCorrelationLoss(ndim, kernel_size=kernel_size)(pred_a, target)
    fast = FastLNCCLoss(ndim, kernel_size=kernel_size)(pred_b, target)
    assert fast.item() == pytest.approx(ref.item(), rel=1e-4)
    ref.backward()
    fast.backward()
    scale = pred_a.grad.abs().max()
    assert torch.allclose(pred_b.grad, pred_a.grad, rtol=1e-4, atol=1e-4 * scale.item())


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions_equal_monai(reduction):
    pred, target = _pair((1, 1, 12, 13, 11))
    ref = LocalNormalizedCrossCorrelationLoss(3, kernel_size=5, reduction=reduction)(pred, target)
    fast = FastLNCCLoss(3, kernel_size=5, reduction=reduction)(pred, target)
    assert fast.shape == ref.shape
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_box_sum_adjoints_gradcheck(ndim):
    x = torch.rand(1, 2, *([6] * ndim), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: box_sum(t, 2, ndim), (x,))
    assert torch.autograd.gradcheck(lambda t: valid_box_sum(t, 1, ndim), (x,))


def test_gradcheck_loss():
    pred, target = _pair((1, 1, 9, 10))
    pred = pred.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: FastLNCCLoss(2, kernel_size=3)(p, target.double()), (pred,))


def test_cache_reused_and_invalidated():
    pred, target = _pair((1, 1, 14, 15, 13))
    loss = FastLNCCLoss(3, kernel_size=5)
    calls = []
    compute = loss.target_statistics

    def counting(t):
        calls.append(1)
        return compute(t)

    loss.target_statistics = counting
    first = loss(pred, target)
    assert loss(pred, target).item() == first.item() and len(calls) == 1  # same tensor: reused
    target.mul_(0.5).add_(torch.rand_like(target))  # in-place change bumps _version
    changed = loss(pred, target)
    assert len(calls) == 2
    assert changed.item() == pytest.approx(LocalNormalizedCrossCorrelationLoss(3, 5)(pred, target).item(), rel=1e-4)
    other = target.clone()  # equal values, another tensor: recomputed
    loss(pred, other)
    assert len(calls) == 3
    loss(pred, target.double().float())
    assert len(calls) == 4


def test_no_cache_for_target_needing_grad_or_disabled():
    pred, target = _pair((1, 1, 12, 12))
    target.requires_grad_(True)
    loss = FastLNCCLoss(2, kernel_size=5)
    loss(pred, target).backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()
    assert loss._cache._ref is None
    uncached = FastLNCCLoss(2, kernel_size=5, cache_target=False)
    uncached(pred, target.detach())
    assert uncached._cache._ref is None
    with torch.inference_mode():
        inference_target = target.detach().clone()
    assert torch.isfinite(loss(pred, inference_target))


def test_pickles_with_a_cached_entry():
    pred, target = _pair((1, 1, 12, 12))
    loss = FastLNCCLoss(2)
    value = loss(pred, target)
    restored = pickle.loads(pickle.dumps(loss))
    assert restored(pred, target).item() == pytest.approx(value.item())


def test_shape_errors():
    with pytest.raises(ValueError, match="spatial dims"):
        FastLNCCLoss(3)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="target of shape"):
        FastLNCCLoss(2)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="odd"):
        FastLNCCLoss(2, kernel_size=4)
