"""NormalizedGradientFieldLoss and the similarity_loss factory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import GlobalMutualInformationLoss

from monai_reg_ext.losses import (
    SIMILARITY_NAMES,
    FastLNCCLoss,
    MINDSSCLoss,
    NormalizedGradientFieldLoss,
    SumSquaredDifferenceLoss,
    similarity_loss,
)


def _smooth_image(ndim: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    noise = torch.rand(1, 1, *([size] * ndim), generator=torch.Generator().manual_seed(seed))
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    return pool(pool(noise, 5, 1, 2), 3, 1, 1)


@pytest.mark.parametrize("ndim", [2, 3])
def test_ngf_minimal_for_same_image_and_contrast_inversion(ndim):
    img = _smooth_image(ndim)
    loss = NormalizedGradientFieldLoss(ndim, eps=1e-3)
    same = loss(img, img).item()
    assert same == pytest.approx(0.0, abs=1e-6)
    assert loss(img, 1.0 - img).item() == pytest.approx(same, abs=1e-6)
    assert loss(1.0 - img, img).item() == pytest.approx(same, abs=1e-6)
    shifted = loss(torch.roll(img, 2, dims=2), img).item()
    other = loss(_smooth_image(ndim, seed=1), img).item()
    assert 0.0 <= same < shifted <= 1.0 and same < other <= 1.0


@pytest.mark.parametrize("ndim", [2, 3])
def test_ngf_gradient(ndim):
    target = _smooth_image(ndim, size=8).double()
    pred = _smooth_image(ndim, size=8, seed=2).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: NormalizedGradientFieldLoss(ndim, eps=0.01)(p, target), (pred,))


def test_ngf_errors():
    with pytest.raises(ValueError, match="spatial dims"):
        NormalizedGradientFieldLoss(3)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="eps"):
        NormalizedGradientFieldLoss(2, eps=0.0)


@pytest.mark.parametrize(
    "name, cls",
    [("lncc", FastLNCCLoss), ("MI", GlobalMutualInformationLoss), ("mind", MINDSSCLoss),
     ("ngf", NormalizedGradientFieldLoss), ("ssd", SumSquaredDifferenceLoss)],
)  # fmt: skip
@pytest.mark.parametrize("ndim", [2, 3])
def test_similarity_loss_factory(name, cls, ndim):
    loss = similarity_loss(name, ndim)
    assert isinstance(loss, cls)
    img = _smooth_image(ndim, size=12)
    pred = torch.roll(img, 1, dims=2).requires_grad_(True)
    value = loss(pred, img)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and torch.isfinite(pred.grad).all()
    assert loss(img, img).item() < value.item()


def test_similarity_loss_defaults_and_errors():
    assert set(SIMILARITY_NAMES) == {"lncc", "mi", "mind", "ngf", "ssd"}
    assert similarity_loss("lncc", 3).kernel_size == 7
    assert similarity_loss("lncc", 3, kernel_size=9).kernel_size == 9
    mi = similarity_loss("mi", 3)
    assert mi.kernel_type == "b-spline" and mi.num_bins == 32
    with pytest.raises(ValueError, match="lncc, mi, mind, ngf, ssd"):
        similarity_loss("ncc", 3)
    with pytest.raises(ValueError, match="spatial_dims"):
        similarity_loss("lncc", 4)
