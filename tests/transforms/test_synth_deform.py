"""Deformation families and synthetic pairs (monai_reg_ext.transforms.synth_deform): bounds, folding, seeds, pairs."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from monai_reg_ext import jacobian_determinant, warp_image
from monai_reg_ext.transforms import (
    RandAffineDeformation,
    RandBumpDeformation,
    RandComposeDeformation,
    RandDeformd,
    RandLabelToImage,
    RandLabelToImaged,
    RandShapeLabelMapd,
    RandSlidingDeformation,
    RandSmoothDeformation,
    RandSynthPaird,
    affine_displacement_bound,
    random_affine_ddf,
    random_bump_ddf,
    random_shape_label_map,
    random_sliding_ddf,
)

SIZES = [(32, 28), (20, 18, 16)]


def _families():
    return {
        "affine": RandAffineDeformation(rotate_range=math.pi, scale_range=0.2, shear_range=0.1, translate_range=3.0),
        "smooth": RandSmoothDeformation(max_displacement=(2.0, 4.0), smoothness=(3.0, 6.0)),
        "bump": RandBumpDeformation(num_bumps=(1, 5), radius=(3.0, 6.0), max_displacement=5.0, lipschitz=0.8),
        "sliding": RandSlidingDeformation(max_displacement=4.0, interface_amplitude=2.0),
    }


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["affine", "smooth", "bump", "sliding"])
def test_family_shape_bound_folding_and_seed(name, size):
    t = _families()[name].set_random_state(0)
    for _ in range(4):
        ddf = t(size)
        assert ddf.shape == (len(size), *size) and ddf.dtype == torch.float32
        assert float(ddf.norm(dim=0).max()) <= t.max_displacement(size) + 1e-4
        if t.fold_free:
            assert float(jacobian_determinant(ddf[None]).min()) > 0, f"{name} folds"
    assert torch.equal(_families()[name].set_random_state(7)(size), _families()[name].set_random_state(7)(size))
    again = _families()[name].set_random_state(7)
    assert not torch.equal(again(size), again(size))
    assert t.fold_free is (name != "sliding")


@pytest.mark.parametrize("size", SIZES)
def test_affine_field_is_affine_with_large_rotations(size):
    g = torch.Generator().manual_seed(0)
    ddf = random_affine_ddf(size, rotate_range=math.pi, scale_range=0.3, batch_size=3, generator=g)
    assert ddf.shape == (3, len(size), *size)
    det = jacobian_determinant(ddf)
    assert float(det.min()) > 0 and float((det - det.flatten(1)[:, :1].reshape(3, *[1] * len(size))).abs().max()) < 1e-3
    # second differences vanish: the field is affine
    for axis in range(2, ddf.ndim):
        second = ddf.diff(dim=axis).diff(dim=axis)
        assert float(second.abs().max()) < 1e-3
    rotate_only = RandAffineDeformation(rotate_range=math.pi, scale_range=0.0)
    assert rotate_only.max_displacement(size) == pytest.approx(math.sqrt(sum((n - 1) ** 2 for n in size)), rel=1e-6)
    big = random_affine_ddf(size, rotate_range=math.pi, scale_range=0.0, batch_size=20, generator=g)
    assert float(big.norm(dim=1).max()) > 0.3 * rotate_only.max_displacement(size)  # rotations are large
    zero = random_affine_ddf(size, rotate_range=0.0, scale_range=0.0, generator=g)
    assert float(zero.abs().max()) < 1e-4
    with pytest.raises(ValueError, match="scale_range"):
        random_affine_ddf(size, scale_range=1.0)
    assert affine_displacement_bound(size, 0.0, 0.0, 0.0, 2.0) == pytest.approx(2.0 * math.sqrt(len(size)))


def test_bumps_scale_down_to_the_lipschitz_bound_and_never_fold():
    g = torch.Generator().manual_seed(1)
    ddf = random_bump_ddf((24, 24, 24), num_bumps=8, radius=2.0, max_displacement=10.0, lipschitz=0.9,
                          batch_size=4, generator=g)  # fmt: skip
    assert float(ddf.norm(dim=1).max()) <= 10.0 + 1e-5
    assert float(jacobian_determinant(ddf).min()) > 0
    assert float(random_bump_ddf((16, 16), num_bumps=0, generator=g).abs().max()) == 0.0


def test_sliding_is_tangential_and_discontinuous_at_a_flat_interface():
    g = torch.Generator().manual_seed(2)
    ddf = random_sliding_ddf((32, 32, 32), max_displacement=6.0, interface_amplitude=0.0, transition=0.0,
                             batch_size=4, generator=g)  # fmt: skip
    for u in ddf:
        vectors = u.flatten(1).T
        first = vectors[0]
        other = vectors[(vectors - first).norm(dim=1).argmax()]
        to_either = torch.minimum((vectors - first).norm(dim=1), (vectors - other).norm(dim=1))
        assert float(to_either.max()) < 1e-3  # one rigid translation per side: a discontinuous field
        cos = float(first @ other / (first.norm() * other.norm()))
        assert cos == pytest.approx(-1.0, abs=1e-3)  # both sides move along one tangent, in opposite directions
        assert float((first - other).norm()) <= 6.0 + 1e-4 and float(u.norm(dim=0).max()) <= 6.0 + 1e-4
    smooth = random_sliding_ddf((32, 32, 32), 6.0, interface_amplitude=0.0, transition=2.0, generator=g)
    assert float(jacobian_determinant(smooth).min()) > 0.5  # exactly 1 in the continuum for a flat interface


@pytest.mark.parametrize("size", SIZES)
def test_compose_bound_flags_and_identity(size):
    fams = _families()
    comp = RandComposeDeformation(list(fams.values()), probs=0.5).set_random_state(0)
    assert comp.max_displacement(size) == pytest.approx(sum(f.max_displacement(size) for f in fams.values()))
    assert not comp.fold_free
    for _ in range(3):
        assert float(comp(size).norm(dim=0).max()) <= comp.max_displacement(size) + 1e-3
    safe = RandComposeDeformation([fams["affine"], fams["smooth"], fams["bump"]]).set_random_state(1)
    assert safe.fold_free
    for _ in range(3):
        assert float(jacobian_determinant(safe(size)[None]).min()) > 0
    assert float(RandComposeDeformation(list(fams.values()), probs=0.0)(size).abs().max()) == 0.0
    with pytest.raises(ValueError, match="probs"):
        RandComposeDeformation([fams["bump"]], probs=[0.5, 0.5])


def test_rand_deformd_warps_keys_with_one_field_and_keeps_label_dtype():
    lab = random_shape_label_map((20, 20, 20), 5, 2.0, torch.Generator().manual_seed(0))
    img = lab.float() / 4
    t = RandDeformd(("image", "label"), RandSmoothDeformation(), mode=("nearest", "nearest"), ddf_key="ddf")
    out = t.set_random_state(0)({"image": img, "label": lab})
    assert out["label"].dtype == torch.int64 and out["ddf"].shape == (3, 20, 20, 20)
    assert torch.equal(out["image"] * 4, out["label"].float())  # one field for both keys
    torch.testing.assert_close(out["image"], warp_image(img[None], out["ddf"][None], mode="nearest")[0])
    with pytest.raises(KeyError):
        RandDeformd("x", RandBumpDeformation())({"image": img})
    assert set(RandDeformd("x", RandBumpDeformation(), allow_missing_keys=True)({"image": img})) == {"image"}


@pytest.mark.parametrize("size", SIZES)
def test_synth_pair_fixed_is_the_moving_warped_by_the_true_ddf(size):
    lab = random_shape_label_map(size, 6, 2.0, torch.Generator().manual_seed(1))
    img = RandLabelToImage().set_random_state(0)(lab)
    deform = RandComposeDeformation([RandAffineDeformation(), RandSmoothDeformation(), RandSlidingDeformation()])
    pair = RandSynthPaird(("label", "image"), deform, ("moving_label", "moving_image"), ("fixed_label", "fixed_image"),
                          mode=("nearest", "bilinear")).set_random_state(0)  # fmt: skip
    out = pair({"label": lab, "image": img})
    assert torch.equal(out["moving_label"], lab) and out["ddf"].shape == (len(size), *size)
    assert out["fixed_label"].dtype == torch.int64 and out["fixed_image"].dtype == torch.float32
    ddf = out["ddf"][None]
    assert torch.equal(out["fixed_label"], warp_image(lab[None], ddf, mode="nearest")[0])
    torch.testing.assert_close(out["fixed_image"], warp_image(img[None], ddf)[0])
    assert not torch.equal(out["fixed_label"], lab)


def test_warped_label_map_matches_the_warped_image_regions():
    """SynthMorph path: images synthesised from the pair's label maps are constant on the warped regions (no
    corruption), with the same intensity as the moving image on that label when the contrast is shared."""
    lab = random_shape_label_map((24, 24, 24), 8, 2.5, torch.Generator().manual_seed(3))
    pair = RandSynthPaird("label", RandComposeDeformation([RandAffineDeformation(), RandBumpDeformation()]))
    out = pair.set_random_state(0)({"label": lab})
    clean = {"std_range": 0.0, "blur_sigma": 0.0, "resolution_prob": 0.0, "bias_strength": 0.0, "noise_std": 0.0,
             "gamma_std": 0.0}  # fmt: skip
    images = RandLabelToImaged(("moving_label", "fixed_label"), ("moving_image", "fixed_image"),
                               shared_contrast_prob=1.0, **clean).set_random_state(0)(out)  # fmt: skip
    for v in torch.unique(out["fixed_label"]).tolist():
        fixed_values = images["fixed_image"][out["fixed_label"] == v]
        moving_values = images["moving_image"][out["moving_label"] == v]
        assert float(fixed_values.max() - fixed_values.min()) < 1e-6
        assert float((fixed_values[0] - moving_values[0]).abs()) < 1e-5
    # and warping the moving image (nearest) with the true DDF reproduces the fixed image
    warped = warp_image(images["moving_image"][None], out["ddf"][None], mode="nearest")[0]
    torch.testing.assert_close(warped, images["fixed_image"], atol=1e-5, rtol=0)


def _pipeline(size=(16, 16, 16), labels=6) -> Compose:
    return Compose(
        [
            RandShapeLabelMapd("label", size, num_labels=labels, smoothness=(2.0, 3.0)),
            RandSynthPaird("label", RandComposeDeformation([RandAffineDeformation(), RandSmoothDeformation()])),
            RandLabelToImaged(("moving_label", "fixed_label"), ("moving_image", "fixed_image")),
        ]
    )


def test_pipeline_in_a_dataset_batches_and_is_reproducible():
    def batches(seed):
        ds = Dataset([{} for _ in range(4)], transform=_pipeline().set_random_state(seed))
        return list(DataLoader(ds, batch_size=2, num_workers=0))

    first = batches(0)
    assert first[0]["moving_image"].shape == (2, 1, 16, 16, 16) and first[0]["ddf"].shape == (2, 3, 16, 16, 16)
    assert not torch.equal(first[0]["fixed_image"], first[1]["fixed_image"])
    torch.manual_seed(0)
    a = _pipeline().set_random_state(1)({})
    b = _pipeline().set_random_state(1)({})
    for k in ("label", "moving_image", "fixed_image", "fixed_label", "ddf"):
        assert torch.equal(a[k], b[k]), k
