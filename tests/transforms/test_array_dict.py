"""Array and dictionary versions of each transform: same results for the same seed, MONAI's ``keys`` /
``allow_missing_keys`` behaviour, and reproducible random draws under ``set_random_state``."""

from __future__ import annotations

import inspect

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

import monai_reg_ext.transforms as T
from monai_reg_ext.spatial import random_smooth_ddf, warp_image
from monai_reg_ext.transforms import (
    CheckLabel,
    CheckLabeld,
    InvertDDFd,
    LoadRegistrationImage,
    LoadRegistrationImaged,
    RandBumpDeformation,
    RandDeform,
    RandDeformd,
    RandRegistrationAffine,
    RandRegistrationAffined,
    RandRegistrationIntensity,
    RandRegistrationIntensityd,
    RandRelabel,
    RandRelabeld,
    RandShapeLabelMap,
    RandShapeLabelMapd,
    RandSmoothDeform,
    RandSmoothDeformd,
    ResizeDDF,
    ResizeDDFd,
    ResizeLinear,
    ResizeLineard,
    WarpImage,
    WarpImaged,
)

SHAPE = (12, 10, 8)


def _image(seed: int = 0, shape=SHAPE) -> MetaTensor:
    g = torch.Generator().manual_seed(seed)
    return MetaTensor(torch.rand((1, *shape), generator=g), affine=torch.eye(4))


#: name -> (array transform, dictionary transform on keys ("a", "b"), how the array transform handles ("a", "b"))
RANDOM_PAIRS = {
    "affine": (
        lambda: RandRegistrationAffine(prob=0.7, rotate_range=0.3, scale_range=0.2, translate_range=1.0),
        lambda: RandRegistrationAffined(("a", "b"), prob=0.7, rotate_range=0.3, scale_range=0.2, translate_range=1.0),
        "shared",
    ),
    "smooth": (
        lambda: RandSmoothDeform(prob=0.7, max_displacement=(1.0, 3.0), smoothness=3.0),
        lambda: RandSmoothDeformd(("a", "b"), prob=0.7, max_displacement=(1.0, 3.0), smoothness=3.0),
        "shared",
    ),
    "deform": (
        lambda: RandDeform(RandBumpDeformation(max_displacement=2.0, radius=(2.0, 4.0))),
        lambda: RandDeformd(("a", "b"), RandBumpDeformation(max_displacement=2.0, radius=(2.0, 4.0))),
        "shared",
    ),
    "intensity": (
        lambda: RandRegistrationIntensity(prob=0.7),
        lambda: RandRegistrationIntensityd(("a", "b"), prob=0.7),
        "per_key",
    ),
}


@pytest.mark.parametrize("name", list(RANDOM_PAIRS))
@pytest.mark.parametrize("seed", [0, 3])
def test_random_array_and_dict_agree(name, seed):
    """The dict transform wraps the array one and shares its random state: same seed, same outputs."""
    make_array, make_dict, mode = RANDOM_PAIRS[name]
    a, b = _image(1), _image(2)
    out = make_dict().set_random_state(seed)({"a": a, "b": b})
    array = make_array().set_random_state(seed)
    if mode == "shared":  # one draw for all keys: the second key re-applies it
        ref_a, ref_b = array(a), array(b, randomize=False)
    else:  # one draw per key
        ref_a, ref_b = array(a), array(b)
    torch.testing.assert_close(out["a"].as_tensor(), torch.as_tensor(ref_a).float(), atol=0, rtol=0)
    torch.testing.assert_close(out["b"].as_tensor(), torch.as_tensor(ref_b).float(), atol=0, rtol=0)


def test_default_groups_draw_in_turn_like_the_array():
    """Moving then fixed group: the same two draws as two array calls (image and label share one)."""
    s = {"moving_image": _image(1), "moving_label": _image(2), "fixed_image": _image(3), "fixed_label": _image(4)}
    out = RandRegistrationAffined(rotate_range=0.3).set_random_state(7)(s)
    array = RandRegistrationAffine(rotate_range=0.3).set_random_state(7)
    for group in ("moving", "fixed"):
        img = array(s[f"{group}_image"])
        lab = array(s[f"{group}_label"], randomize=False).clamp(0, 1)
        torch.testing.assert_close(out[f"{group}_image"].as_tensor(), img.as_tensor(), atol=0, rtol=0)
        torch.testing.assert_close(out[f"{group}_label"].as_tensor(), lab.as_tensor(), atol=0, rtol=0)


def test_smooth_deform_draws_as_before():
    """RandSmoothDeformd kept its random stream (prob, magnitude, seed per group): same outputs for a seed."""
    s = {"moving_image": _image(1), "fixed_image": _image(2)}
    out = RandSmoothDeformd(max_displacement=(1.0, 3.0), smoothness=3.0).set_random_state(5)(s)
    r = np.random.RandomState(5)
    for key in ("moving_image", "fixed_image"):
        assert r.rand() < 1.0
        magnitude, seed = r.uniform(1.0, 3.0), int(r.randint(2**32))
        ddf = random_smooth_ddf(SHAPE, magnitude, 3.0, seed=seed, diffeomorphic=True)
        ref = warp_image(s[key].as_tensor()[None], ddf, mode="bilinear", padding_mode="border")[0]
        torch.testing.assert_close(out[key].as_tensor(), ref, atol=0, rtol=0)


def test_synthesis_array_and_dict_agree():
    lab = torch.randint(0, 5, (1, *SHAPE))
    d = RandRelabeld(("a",), drop_prob=0.3, merge_prob=0.3).set_random_state(2)({"a": lab})
    assert torch.equal(d["a"], RandRelabel(drop_prob=0.3, merge_prob=0.3).set_random_state(2)(lab))
    d = RandShapeLabelMapd(("a",), SHAPE, num_labels=4).set_random_state(4)({})
    assert torch.equal(d["a"], RandShapeLabelMap(SHAPE, num_labels=4).set_random_state(4)())


def _nifti(tmp_path, name: str, shape=SHAPE) -> str:
    path = str(tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random(shape).astype(np.float32), np.eye(4)), path)
    return path


def test_deterministic_array_and_dict_agree(tmp_path):
    img, lab = _image(1), (_image(2) > 0.5).float()
    ddf = 0.5 * torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    cases = [
        (ResizeLinear((6, 5, 4))(img), ResizeLineard("a", (6, 5, 4))({"a": img})["a"]),
        (ResizeDDF((6, 5, 4))(ddf), ResizeDDFd("a", (6, 5, 4))({"a": ddf})["a"]),
        (WarpImage(mode="nearest")(img, ddf), WarpImaged("a", mode="nearest")({"a": img, "ddf": ddf})["a"]),
    ]
    for ref, out in cases:
        torch.testing.assert_close(torch.as_tensor(out), torch.as_tensor(ref), atol=0, rtol=0)
    path = _nifti(tmp_path, "img")
    loaded = LoadRegistrationImage()(path)
    assert torch.equal(loaded, LoadRegistrationImaged("a")({"a": path})["a"]) and loaded.shape == (1, *SHAPE)
    assert CheckLabel()(lab, img) is lab and CheckLabeld("l", "i")({"l": lab, "i": img})["l"] is lab
    with pytest.raises(ValueError, match="label values must lie in"):
        CheckLabel()(lab * 2, img)
    with pytest.raises(ValueError, match="'l' file .* expected the same shape"):
        CheckLabeld("l", "i")({"l": lab, "i": _image(3, (4, 4, 4))})


def _dict_transforms():
    """Each dictionary transform on keys ("a", "b"), for a sample that only holds "a" (and the helpers)."""
    deform = RandBumpDeformation(max_displacement=1.0, radius=2.0)
    pre = Compose([ResizeLineard(("img", "b"), (6, 5, 4), allow_missing_keys=True)])
    return {
        "LoadRegistrationImaged": LoadRegistrationImaged(("a", "b")),
        "CheckLabeld": CheckLabeld(("a", "b"), ("img", "img")),
        "ResizeLineard": ResizeLineard(("a", "b"), (6, 5, 4)),
        "ResizeDDFd": ResizeDDFd(("a", "b"), (6, 5, 4)),
        "WarpImaged": WarpImaged(("a", "b")),
        "RandRegistrationAffined": RandRegistrationAffined(("a", "b")),
        "RandSmoothDeformd": RandSmoothDeformd(("a", "b"), smoothness=3.0),
        "RandRegistrationIntensityd": RandRegistrationIntensityd(("a", "b")),
        "RandDeformd": RandDeformd(("a", "b"), deform),
        "RandRelabeld": RandRelabeld(("a", "b")),
        "RandLabelToImaged": T.RandLabelToImaged(("a", "b"), ("ia", "ib")),
        "InvertDDFd": InvertDDFd(("a", "b"), pre, orig_keys=("img", "img")),
        "_pre": pre,
    }


def _sample_with_a(name: str, pre) -> dict:
    img = _image(1)
    if name == "InvertDDFd":
        return {"img": pre({"img": img})["img"], "a": torch.zeros(3, 6, 5, 4)}
    a = {"ResizeDDFd": torch.zeros(3, *SHAPE), "RandRelabeld": torch.randint(0, 3, (1, *SHAPE))}.get(name, img)
    a = torch.randint(0, 3, (1, *SHAPE)) if name == "RandLabelToImaged" else a
    return {"a": a, "img": img, "ddf": torch.zeros(3, *SHAPE)}


@pytest.mark.parametrize("name", [n for n in _dict_transforms() if not n.startswith("_")])
def test_allow_missing_keys(name):
    """MONAI's rule: a missing key raises ``KeyError`` unless ``allow_missing_keys=True``, then it is skipped."""
    transforms = _dict_transforms()
    t, pre = transforms[name], transforms["_pre"]
    assert inspect.signature(type(t)).parameters["allow_missing_keys"].default in (False, None)
    assert t.allow_missing_keys is False
    with pytest.raises(KeyError):
        t(_sample_with_a(name, pre))
    t.allow_missing_keys = True
    if hasattr(t, "invert"):
        t.invert.allow_missing_keys = True
    out = t(_sample_with_a(name, pre))
    assert "a" in out and "b" not in out


def test_default_registration_keys_skip_absent_labels():
    """Without ``keys``, the registration transforms treat the labels as optional (unlabelled samples)."""
    s = {"moving_image": _image(1), "fixed_image": _image(2)}
    for t in (
        RandRegistrationAffined(),
        RandSmoothDeformd(smoothness=3.0),
        RandRegistrationIntensityd(),
        CheckLabeld(),
        LoadRegistrationImaged(),
    ):
        assert t.allow_missing_keys is True
        assert set(t(dict(s))) == set(s)


@pytest.mark.parametrize("name", list(RANDOM_PAIRS))
def test_set_random_state_is_deterministic(name):
    make_array, make_dict, _ = RANDOM_PAIRS[name]
    a = _image(1)
    for make, call in ((make_array, lambda t: t(a)), (make_dict, lambda t: t({"a": a, "b": a})["a"])):
        t = make()
        first, again, other = (torch.as_tensor(call(t.set_random_state(s))) for s in (11, 11, 12))
        assert torch.equal(first, again)
        second = torch.as_tensor(call(t))  # the stream goes on: a new draw
        assert not (torch.equal(first, other) and torch.equal(first, second))


def test_registration_affine_is_invertible():
    """The array affine is MONAI's RandAffine: its inverse restores the grid (and, in the interior, the image)."""
    img = _image(1)
    t = RandRegistrationAffine(rotate_range=0.2).set_random_state(0)
    out = t(img)
    back = t.inverse(out)
    assert back.shape == img.shape and not back.applied_operations
    torch.testing.assert_close(back.affine, img.affine)
