"""FixedMaskedLoss / mask_to_fixed and the masked metric output transform: outside the fixed FOV nothing counts."""

from __future__ import annotations

import pytest
import torch

from monai_reg_ext.losses import FixedMaskedLoss, LocalNormalizedCrossCorrelationLoss, SumSquaredDifferenceLoss
from monai_reg_ext.metrics import registration_output_transform


@pytest.mark.parametrize("dims", [2, 3])
def test_outside_fov_differences_do_not_count(dims):
    torch.manual_seed(0)
    fixed = torch.rand(2, 1, *([10] * dims)) + 0.1
    fixed[(slice(None), slice(None), slice(0, 5))] = 0.0  # half the grid outside the field of view
    pred = fixed.clone()
    pred[(slice(None), slice(None), slice(0, 5))] = torch.rand_like(pred[(slice(None), slice(None), slice(0, 5))])
    masked = FixedMaskedLoss(SumSquaredDifferenceLoss())
    assert masked(pred, fixed).item() == 0.0
    assert SumSquaredDifferenceLoss()(pred, fixed).item() > 0.01
    # inside the FOV a difference counts exactly as SSD over all voxels
    pred_in = fixed.clone()
    pred_in[(slice(None), slice(None), slice(5, 10))] += 0.5
    expected = (0.5**2) * 0.5  # half the voxels differ by 0.5
    assert masked(pred_in, fixed).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_is_zero_outside_fov_and_lncc_finite():
    fixed = torch.rand(1, 1, 12, 12)
    fixed[..., :6] = 0.0
    pred = torch.rand(1, 1, 12, 12, requires_grad=True)
    loss = FixedMaskedLoss(LocalNormalizedCrossCorrelationLoss(spatial_dims=2, kernel_size=3))(pred, fixed)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(pred.grad[..., :6] == 0) and pred.grad[..., 6:].abs().sum() > 0


def test_shape_error_and_metric_transform():
    with pytest.raises(ValueError, match="one shape"):
        FixedMaskedLoss(SumSquaredDifferenceLoss())(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    fixed = torch.tensor([[[[0.0, 0.5], [0.0, 0.7]]]])
    pred = torch.tensor([[[[0.9, 0.1], [0.9, 0.2]]]])
    out = {"pred": {"pred_fixed_image": pred}, "label": {"fixed_image": fixed}}
    p, t = registration_output_transform("pred_fixed_image", "fixed_image", mask_above=0.0)(out)
    assert torch.equal(p, torch.tensor([[[[0.0, 0.1], [0.0, 0.2]]]])) and t is fixed
    ps, _ = registration_output_transform("pred_fixed_image", "fixed_image", mask_above=0.0)([out, out])
    assert len(ps) == 2 and torch.equal(ps[1], p)
    p, _ = registration_output_transform("pred_fixed_image", "fixed_image")(out)
    assert p is pred


@pytest.mark.parametrize("dims", [2, 3])
def test_outside_displacement_loss_analytic(dims):
    from monai_reg_ext.losses import OutsideFixedDisplacementLoss

    size = (6,) * dims
    fixed = torch.zeros((2, 1, *size))
    fixed[:, :, :3] = 1.0  # inside the field of view: the first half along axis 0
    ddf = torch.zeros((2, dims, *size))
    ddf[0, 0, 3:] = 2.0  # item 0: a 2-voxel shift outside -> |ddf|^2 = 4
    ddf[1, 0, :3] = 5.0  # item 1: moves only inside -> 0
    loss = OutsideFixedDisplacementLoss(threshold=0.0)(ddf, fixed)
    assert loss.shape == (2,)
    assert loss.tolist() == pytest.approx([4.0, 0.0])
    assert OutsideFixedDisplacementLoss()(ddf, torch.ones_like(fixed)).tolist() == [0.0, 0.0]  # no outside voxel
    ddf.requires_grad_(True)
    OutsideFixedDisplacementLoss()(ddf, fixed).sum().backward()
    assert ddf.grad[:, :, :3].abs().max() == 0 and ddf.grad[0, 0, 3:].abs().min() > 0
    with pytest.raises(ValueError, match="same B and S"):
        OutsideFixedDisplacementLoss()(ddf, fixed[:, :, :5])


def test_registration_loss_outside_fov_term():
    from monai_reg_ext.losses import OutsideFixedDisplacementLoss, RegistrationLoss

    fixed = torch.zeros((1, 1, 4, 4, 4))
    fixed[:, :, :2] = 1.0
    ddf = torch.zeros((1, 3, 4, 4, 4))
    ddf[:, 1, 2:] = 1.0
    loss = RegistrationLoss(
        SumSquaredDifferenceLoss(), outside_fov=OutsideFixedDisplacementLoss(), weights={"outside_fov": 0.5}
    )
    assert loss.active == ("image", "outside_fov")
    terms = loss.terms({"pred_fixed_image": fixed, "ddf": ddf}, {"fixed_image": fixed})
    assert terms["outside_fov"].item() == pytest.approx(0.5) and terms["image"].item() == 0.0
