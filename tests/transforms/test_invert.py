"""Invertible preprocessing: MONAI's ``Invertd`` maps a prediction on the network grid back to the native grid, and
DDFs are resized / inverted with their values converted (voxels of the grid they live on)."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from monai_reg_ext.spatial import random_smooth_ddf, resize_ddf, warp_image
from monai_reg_ext.transforms import InvertDDFd, ResizeDDF, ResizeDDFd, ResizeLineard, registration_preprocessing

#: stated tolerance of an image round trip native -> network grid -> native (linear interpolation twice, on a smooth
#: image with values in [0, 1]): max and mean absolute error
MAX_ERR, MEAN_ERR = 0.03, 0.005
#: the same with MONAI's default ``Invertd(nearest_interp=True)`` (nearest-neighbour back to the native grid)
NEAREST_MAX_ERR, NEAREST_MEAN_ERR = 0.12, 0.025


def _smooth(shape) -> torch.Tensor:
    """A smooth image ``(1, *shape)`` (low-frequency, so resampling twice loses little)."""
    g = torch.meshgrid(*[torch.linspace(0, 1, s, dtype=torch.float64) for s in shape], indexing="ij")
    out = torch.sin(2.0 * g[0]) + torch.cos(1.5 * g[1]) * (g[-1] if len(shape) == 3 else 1.0)
    return out[None].float()


def _affine(diag, origin) -> torch.Tensor:
    a = torch.eye(4, dtype=torch.float64)
    a[: len(diag), : len(diag)] = torch.diag(torch.tensor(diag, dtype=torch.float64))
    a[: len(origin), 3] = torch.tensor(origin, dtype=torch.float64)
    return a


def _sample(shape, affine) -> dict:
    img = _smooth(shape)
    return {k: MetaTensor(img.clone(), affine=affine.clone()) for k in ("moving_image", "fixed_image")}


CASES = {
    # 3D: flipped axis (LPS-like) reoriented to RAS, resampled to a spacing, resized to the network grid
    "3d_orient_spacing_resize": ((20, 24, 16), ([-1.5, 2.0, 1.0], [10.0, -5.0, 3.0]),
                                 {"spatial_size": (32, 32, 32), "spacing": (1.2, 1.8, 1.1), "orientation": "RAS"}),
    "3d_resize_anti_aliasing": ((24, 20, 18), ([1.0, 1.2, 2.0], [0.0, 0.0, 0.0]),
                                {"spatial_size": (12, 10, 9), "anti_aliasing": True}),
    "3d_pad_crop": ((20, 14, 16), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]),
                    {"spatial_size": (16, 16, 16), "resize_mode": "pad_crop"}),
    "2d_spacing_resize": ((30, 22), ([0.8, 1.3], [4.0, -2.0]), {"spatial_size": (24, 24), "spacing": (1.0, 1.0)}),
    "2d_orient_resize": ((30, 22), ([-0.8, 1.3], [4.0, -2.0]), {"spatial_size": (20, 20), "orientation": "RA"}),
}  # fmt: skip


@pytest.mark.parametrize("nearest_interp", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_invertd_restores_the_native_grid(name, nearest_interp):
    shape, (diag, origin), kwargs = CASES[name]
    affine = _affine(diag, origin)
    pre = registration_preprocessing(**kwargs, load=False, check_labels=False)
    out = pre(_sample(shape, affine))
    assert tuple(out["fixed_image"].shape[1:]) == tuple(kwargs["spatial_size"])
    out["pred"] = out["fixed_image"].clone()  # e.g. the warped moving image, on the network (fixed) grid
    back = Invertd("pred", transform=pre, orig_keys="fixed_image", nearest_interp=nearest_interp)(out)["pred"]
    assert tuple(back.shape) == (1, *shape)
    torch.testing.assert_close(back.affine.double(), affine, atol=1e-5, rtol=0)
    assert not back.applied_operations
    native = _smooth(shape)
    native = (native - native.min()) / (native.max() - native.min())  # the pipeline's min-max scaling
    err = (back.as_tensor() - native).abs()
    if name == "3d_pad_crop":  # padded / cropped: only the kept region comes back, exactly
        err = err[:, 2:18, :, :]
        assert float(err.max()) < 1e-6
    max_err, mean_err = (NEAREST_MAX_ERR, NEAREST_MEAN_ERR) if nearest_interp else (MAX_ERR, MEAN_ERR)
    assert float(err.max()) < max_err and float(err.mean()) < mean_err


@pytest.mark.parametrize(
    ("old", "new", "factor"),
    [((33, 33, 33), (65, 65, 65), 2.0), ((32, 32, 32), (64, 64, 64), 63 / 31), ((17, 9), (33, 5), None)],
)
def test_resize_ddf_analytic(old, new, factor):
    """A constant translation of t voxels stays constant and scales by (new - 1) / (old - 1) per axis (corners
    aligned, docs/conventions.md): 33^3 -> 65^3 doubles it; the inverse gives t back, also through Invertd."""
    dims = len(old)
    t = torch.tensor([1.5, -2.0, 0.25][:dims]).view(dims, *([1] * dims))
    ddf = MetaTensor(t.expand(dims, *old).clone(), affine=torch.eye(4))
    factors = [factor] * dims if factor is not None else [(n - 1) / (o - 1) for n, o in zip(new, old)]
    expected = t * torch.tensor(factors).view(dims, *([1] * dims))
    r = ResizeDDF(new)
    out = r(ddf)
    assert tuple(out.shape) == (dims, *new)
    torch.testing.assert_close(out.as_tensor(), expected.expand(dims, *new), atol=1e-5, rtol=0)
    back = r.inverse(out)
    assert tuple(back.shape) == (dims, *old) and not back.applied_operations
    torch.testing.assert_close(back.as_tensor(), ddf.as_tensor(), atol=1e-5, rtol=0)
    torch.testing.assert_close(back.affine, ddf.affine, atol=1e-6, rtol=0)
    pre = ResizeDDFd("ddf", new)
    d = pre({"ddf": ddf})
    d["pred"] = d["ddf"] * 1.0  # a prediction on the resized grid
    back = Invertd("pred", transform=pre, orig_keys="ddf")(d)["pred"]
    torch.testing.assert_close(back.as_tensor(), ddf.as_tensor(), atol=1e-5, rtol=0)


def test_resize_ddf_matches_spatial_resize_ddf():
    ddf = random_smooth_ddf((12, 10, 8), 2.0, 3.0, seed=0)[0]
    out = ResizeDDF((20, 7, 9))(ddf)
    torch.testing.assert_close(out.as_tensor(), resize_ddf(ddf[None], (20, 7, 9))[0], atol=1e-6, rtol=0)


def _world_pipeline():
    shape, (diag, origin), kwargs = CASES["3d_orient_spacing_resize"]
    affine = _affine(diag, origin)
    pre = registration_preprocessing(**kwargs, load=False, check_labels=False)
    return shape, affine, pre, pre(_sample(shape, affine))


def test_invert_ddf_analytic():
    """Reoriented, resampled and resized: a constant network-grid DDF comes back constant in native voxels, with the
    flipped axis negated and each axis scaled by its voxel-size ratio: d_native = R_native^-1 R_net d."""
    shape, affine, pre, out = _world_pipeline()
    t = torch.tensor([1.0, -2.0, 0.5])
    out["ddf"] = t.view(3, 1, 1, 1).expand(3, 32, 32, 32).clone()
    back = InvertDDFd("ddf", transform=pre, orig_keys="fixed_image")(out)["ddf"]
    assert tuple(back.shape) == (3, *shape)
    torch.testing.assert_close(back.affine.double(), affine, atol=1e-5, rtol=0)
    r_net = out["fixed_image"].affine[:3, :3].double()
    expected = torch.linalg.inv(affine[:3, :3]) @ r_net @ t.double()
    # by hand: axis 0 flipped (-1.5 mm native, +1.5 mm after RAS), each network axis spans the same field of view
    spans = [(s - 1) * abs(a) for s, a in zip(shape, [1.5, 2.0, 1.0])]  # the native field of view (mm)
    by_hand = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) * t.double() * torch.tensor(spans) / 31
    by_hand /= torch.tensor([1.5, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(expected, by_hand, atol=5e-2, rtol=0)  # Spacingd rounds the grid to whole voxels
    torch.testing.assert_close(back.as_tensor(), expected.float().view(3, 1, 1, 1).expand_as(back), atol=1e-4, rtol=0)


def test_invert_ddf_matches_resize_ddf_for_a_resize():
    """Resize-only preprocessing: InvertDDFd is resize_ddf back to the native shape."""
    shape = (20, 16, 12)
    pre = registration_preprocessing((12, 10, 8), load=False, check_labels=False)
    out = pre(_sample(shape, _affine([1.2, 0.9, 2.0], [0.0, 0.0, 0.0])))
    ddf = random_smooth_ddf((12, 10, 8), 2.0, 3.0, seed=1)[0]
    out["ddf"] = ddf.clone()
    back = InvertDDFd("ddf", transform=pre, orig_keys="fixed_image")(out)["ddf"]
    torch.testing.assert_close(back.as_tensor(), resize_ddf(ddf[None], shape)[0], atol=1e-5, rtol=0)


def test_inverted_ddf_warps_the_native_image_like_the_inverted_warp():
    """End to end: warping on the network grid then Invertd ~ warping the native moving image with InvertDDFd's DDF."""
    shape, affine, pre, out = _world_pipeline()
    ddf = random_smooth_ddf((32, 32, 32), 2.0, 6.0, seed=2)
    out["pred"] = MetaTensor(warp_image(out["moving_image"].as_tensor()[None], ddf)[0])
    out["ddf"], out["ddf_values_unchanged"] = ddf[0], MetaTensor(ddf[0].clone())
    inv = Compose(
        [
            Invertd(["pred", "ddf_values_unchanged"], transform=pre, orig_keys="fixed_image", nearest_interp=False),
            InvertDDFd("ddf", transform=pre, orig_keys="fixed_image"),
        ]
    )(out)
    native = _smooth(shape)
    native = (native - native.min()) / (native.max() - native.min())
    direct = warp_image(native[None], inv["ddf"].as_tensor()[None])[0]
    err = (inv["pred"].as_tensor() - direct).abs()
    assert float(err.max()) < MAX_ERR and float(err.mean()) < MEAN_ERR
    # Invertd alone moves the DDF back to the native grid but keeps network-grid values: clearly worse
    wrong = warp_image(native[None], inv["ddf_values_unchanged"].as_tensor()[None])[0]
    assert float((inv["pred"].as_tensor() - wrong).abs().mean()) > 2 * float(err.mean())


def test_resize_lineard_records_and_inverts():
    """ResizeLineard pushes one operation per key (also when the shape already fits) and pops it on inverse."""
    x = MetaTensor(_smooth((8, 8, 8)), affine=torch.eye(4))
    t = ResizeLineard(("a", "b"), (8, 8, 8))
    d = t({"a": x, "b": MetaTensor(_smooth((6, 6, 6)), affine=torch.eye(4))})
    assert [len(d[k].applied_operations) for k in "ab"] == [1, 1]
    torch.testing.assert_close(d["a"].as_tensor(), x.as_tensor())
    back = t.inverse(d)
    assert back["b"].shape == (1, 6, 6, 6) and not back["b"].applied_operations
