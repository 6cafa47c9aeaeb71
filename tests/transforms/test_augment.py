"""Paired augmentation: labels stay aligned with their images; moving and fixed groups are independent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from monai_reg_ext.transforms import (
    RandRegistrationAffined,
    RandRegistrationIntensityd,
    RandSmoothDeformd,
    registration_preprocessing,
)
from tests.data.test_fixtures import blob


def _sample(shape=(16, 16, 16), soft=False):
    """Images with labels drawn from themselves: ``image > 0.5``, or the image itself (``soft``)."""
    out = {}
    for i, group in enumerate(("moving", "fixed")):
        img = torch.from_numpy(blob(shape, seed=i))[None]
        out[f"{group}_image"] = MetaTensor(img, affine=torch.eye(4))
        out[f"{group}_label"] = MetaTensor(img.clone() if soft else (img > 0.5).float(), affine=torch.eye(4))
    return out


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


AUGMENTS = {
    "affine": lambda: RandRegistrationAffined(rotate_range=0.3, scale_range=0.2, translate_range=2.0),
    "smooth": lambda: RandSmoothDeformd(max_displacement=3.0, smoothness=3.0),
    "both": lambda: Compose(
        [
            RandRegistrationAffined(rotate_range=0.3, scale_range=0.2),
            RandSmoothDeformd(max_displacement=3.0, smoothness=3.0),
        ]
    ),
}


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_labels_stay_aligned(name):
    aug = AUGMENTS[name]()
    aug.set_random_state(seed=0)
    s = _sample()
    out = aug(s)
    for g in ("moving", "fixed"):
        img, lab = out[f"{g}_image"], out[f"{g}_label"]
        assert img.shape == s[f"{g}_image"].shape and lab.shape == s[f"{g}_label"].shape
        assert 0 <= float(lab.min()) and float(lab.max()) <= 1  # bilinear keeps labels in [0, 1]
        assert not torch.allclose(img, s[f"{g}_image"])  # something happened
        # a sub-voxel boundary shift on a 16^3 blob costs a few Dice points; a misaligned transform costs far more
        assert _dice(lab > 0.5, img > 0.5) > 0.85
        other = out["fixed_image" if g == "moving" else "moving_image"]
        assert _dice(lab > 0.5, other > 0.5) < 0.5
    # a soft label equal to its image must stay equal to it: same transform, same interpolation
    soft = aug.set_random_state(seed=0)(_sample(soft=True))
    for g in ("moving", "fixed"):
        torch.testing.assert_close(soft[f"{g}_label"], soft[f"{g}_image"].clamp(0, 1), atol=1e-5, rtol=0)


def test_groups_get_independent_transforms():
    s = _sample()
    s["fixed_image"], s["fixed_label"] = s["moving_image"].clone(), s["moving_label"].clone()
    for aug in (RandRegistrationAffined(rotate_range=0.3), RandSmoothDeformd(max_displacement=3.0, smoothness=3.0)):
        out = aug.set_random_state(seed=1)(s)
        assert not torch.allclose(out["moving_image"], out["fixed_image"], atol=1e-3)


def test_reproducible_with_seed_and_unlabelled():
    s = {k: v for k, v in _sample().items() if k.endswith("image")}
    pipe = Compose([RandRegistrationAffined(), RandSmoothDeformd(max_displacement=2.0, smoothness=3.0)])
    a = pipe.set_random_state(seed=5)(s)
    b = pipe.set_random_state(seed=5)(s)
    c = pipe.set_random_state(seed=6)(s)
    assert set(a) == {"moving_image", "fixed_image"}
    assert torch.equal(a["moving_image"], b["moving_image"]) and not torch.equal(a["moving_image"], c["moving_image"])


def test_intensity_independent_and_in_range():
    s = _sample()
    s["fixed_image"] = s["moving_image"].clone()
    out = RandRegistrationIntensityd().set_random_state(seed=0)(s)
    for k in ("moving_image", "fixed_image"):
        assert 0 <= float(out[k].min()) and float(out[k].max()) <= 1 and isinstance(out[k], MetaTensor)
    assert not torch.allclose(out["moving_image"], out["fixed_image"])
    assert torch.equal(out["moving_label"], s["moving_label"])


def test_full_pipeline_from_files(tmp_path):
    from monai_reg_ext.data import UnpairedDataset
    from tests.data.test_fixtures import make_unpaired

    pipe = Compose(
        [
            registration_preprocessing((16, 16, 16)),
            RandRegistrationAffined(),
            RandSmoothDeformd(max_displacement=2.0, smoothness=3.0),
            RandRegistrationIntensityd(),
        ]
    )
    ds = UnpairedDataset(make_unpaired(tmp_path, 2), transform=pipe)
    s = ds[0]
    assert s["moving_image"].shape == (1, 16, 16, 16) and s["moving_label"].shape == (1, 16, 16, 16)
    assert np.isfinite(s["moving_image"].numpy()).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_displacement"):
        RandSmoothDeformd(max_displacement=(3.0, 1.0))
    with pytest.raises(ValueError, match="prob"):
        RandRegistrationAffined(prob=2.0)
