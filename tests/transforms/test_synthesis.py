"""Synthetic label maps and images (transforms.synthesis): shapes, dtypes, seeds, label/image consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_reg_ext.transforms import (
    RandLabelToImage,
    RandLabelToImaged,
    RandRelabel,
    RandRelabeld,
    RandShapeLabelMap,
    RandShapeLabelMapd,
    random_shape_label_map,
)

SIZES = [(24, 20), (16, 18, 14)]
#: every corruption off: the image is an affine map of the per-label means
CLEAN = {"std_range": 0.0, "blur_sigma": 0.0, "resolution_prob": 0.0, "bias_strength": 0.0, "noise_std": 0.0,
         "gamma_std": 0.0}  # fmt: skip


def _values_per_label(image: torch.Tensor, label: torch.Tensor) -> dict[int, torch.Tensor]:
    return {int(v): image[label == v] for v in torch.unique(label)}


@pytest.mark.parametrize("size", SIZES)
def test_random_shape_label_map_shape_dtype_and_labels(size):
    lab = random_shape_label_map(size, num_labels=6, smoothness=2.0, generator=torch.Generator().manual_seed(0))
    assert lab.shape == (1, *size) and lab.dtype == torch.int64
    assert lab.min() >= 0 and lab.max() <= 5 and len(torch.unique(lab)) >= 4
    with pytest.raises(ValueError, match="num_labels"):
        random_shape_label_map(size, num_labels=1)
    with pytest.raises(ValueError, match="smoothness"):
        random_shape_label_map(size, smoothness=0)


def test_shape_label_map_smoothness_sets_the_shape_size():
    g = torch.Generator().manual_seed(0)
    fine, coarse = (random_shape_label_map((48, 48), 8, s, generator=g) for s in (1.5, 6.0))

    def boundary(x):  # fraction of neighbouring voxels with different labels
        return float((x[:, 1:] != x[:, :-1]).float().mean())

    assert boundary(coarse) < 0.5 * boundary(fine)


@pytest.mark.parametrize("size", SIZES)
def test_rand_shape_label_map_reproducible_under_a_seed(size):
    a = RandShapeLabelMap(size, 8, (2.0, 4.0)).set_random_state(3)
    b = RandShapeLabelMap(size, 8, (2.0, 4.0)).set_random_state(3)
    first, second = a(), a()
    assert torch.equal(first, b()) and torch.equal(second, b())
    assert not torch.equal(first, second)
    assert a((10, 12)).shape == (1, 10, 12)


def test_rand_shape_label_mapd_writes_independent_keys_without_mutating_input():
    t = RandShapeLabelMapd(("a", "b"), (16, 16, 16), num_labels=5).set_random_state(0)
    data: dict = {}
    out = t(data)
    assert data == {} and set(out) == {"a", "b"}
    assert out["a"].shape == (1, 16, 16, 16) and not torch.equal(out["a"], out["b"])
    again = RandShapeLabelMapd(("a", "b"), (16, 16, 16), num_labels=5).set_random_state(0)({})
    assert torch.equal(again["a"], out["a"]) and torch.equal(again["b"], out["b"])


def _real_like_map(size=(12, 10, 8), labels=6) -> torch.Tensor:
    lab = torch.zeros((1, *size), dtype=torch.long)
    for v in range(1, labels + 1):
        lab[0, v : v + 2] = v  # slabs: labels 1..6, background elsewhere
    return lab


def test_relabel_is_a_function_of_the_input_labels_and_keeps_background():
    lab = _real_like_map()
    t = RandRelabel(drop_prob=0.3, merge_prob=0.4).set_random_state(1)
    for _ in range(5):
        out = t(lab)
        assert out.shape == lab.shape and out.dtype == torch.int64
        assert torch.all(out[lab == 0] == 0)
        for v in range(1, 7):  # each old label maps to one new label
            assert len(torch.unique(out[lab == v])) == 1
        kept = sorted(set(torch.unique(out).tolist()) - {0})
        assert kept == list(range(1, len(kept) + 1))  # consecutive values


def test_relabel_drop_merge_shuffle_and_max_labels():
    lab = _real_like_map()
    assert torch.equal(RandRelabel(0.0, 0.0, shuffle=False)(lab), lab)
    assert int(RandRelabel(drop_prob=1.0)(lab).max()) == 0
    merged = RandRelabel(drop_prob=0.0, merge_prob=1.0).set_random_state(0)(lab)
    assert 1 <= len(torch.unique(merged)) - 1 < 6
    capped = RandRelabel(0.0, 0.0, max_labels=4).set_random_state(0)(lab)
    assert int(capped.max()) <= 3 and torch.all(capped[lab > 0] > 0)
    shuffled = [RandRelabel(0.0, 0.0).set_random_state(s)(lab) for s in range(4)]
    assert any(not torch.equal(s, lab) for s in shuffled)
    with pytest.raises(ValueError, match="drop_prob"):
        RandRelabel(drop_prob=1.5)


def test_relabel_accepts_one_hot_and_meta_tensors_and_dict_version():
    lab = _real_like_map(labels=3)
    one_hot = torch.stack([(lab[0] == v).float() for v in (1, 2, 3)])
    assert torch.equal(RandRelabel(0.0, 0.0, shuffle=False)(one_hot), lab)
    meta = MetaTensor(lab, affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    out = RandRelabel().set_random_state(0)(meta)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, meta.affine)
    d = RandRelabeld(("a", "b"), 0.0, 0.0).set_random_state(0)({"a": lab, "b": lab})
    assert d["a"].shape == lab.shape and d["b"].shape == lab.shape
    with pytest.raises(KeyError):
        RandRelabeld("c")({"a": lab})
    assert set(RandRelabeld("c", allow_missing_keys=True)({"a": lab})) == {"a"}


@pytest.mark.parametrize("size", SIZES)
def test_label_to_image_shape_range_and_reproducibility(size):
    lab = random_shape_label_map(size, 6, 2.0, torch.Generator().manual_seed(1))
    a, b = RandLabelToImage().set_random_state(5), RandLabelToImage().set_random_state(5)
    img = a(lab)
    assert img.shape == (1, *size) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and float(img.max() - img.min()) > 0.5
    assert torch.equal(img, b(lab)) and not torch.equal(a(lab), img)


@pytest.mark.parametrize("size", SIZES)
def test_label_to_image_is_constant_per_label_without_corruption(size):
    lab = random_shape_label_map(size, 6, 2.0, torch.Generator().manual_seed(2))
    t = RandLabelToImage(**CLEAN).set_random_state(0)
    means, stds = t.draw_contrast(6)
    img = t(lab, contrast=(means, stds))
    per_label = _values_per_label(img[0], lab[0])
    for v, values in per_label.items():
        assert float(values.max() - values.min()) < 1e-6, f"label {v} is not constant"
    # the image is an affine (increasing) map of the drawn means
    present = sorted(per_label)
    order_img = np.argsort([float(per_label[v][0]) for v in present])
    assert list(order_img) == list(np.argsort(means[present]))


def test_label_to_image_corruptions_change_the_image_but_keep_the_label_structure():
    lab = random_shape_label_map((32, 32, 32), 6, 3.0, torch.Generator().manual_seed(3))
    contrast = (np.linspace(0.0, 1.0, 6), np.zeros(6))
    clean = RandLabelToImage(**CLEAN).set_random_state(0)(lab, contrast=contrast)
    noisy = RandLabelToImage(std_range=0.05, blur_sigma=1.0, resolution_prob=1.0, bias_strength=0.3, noise_std=0.05,
                             gamma_std=0.2).set_random_state(0)(lab, contrast=contrast)  # fmt: skip
    assert float((noisy - clean).abs().mean()) > 0.01
    # the per-label mean intensities keep their order: the regions stay recognisable
    means = [float(noisy[lab == v].mean()) for v in range(6)]
    assert np.corrcoef(means, np.arange(6))[0, 1] > 0.9
    with pytest.raises(ValueError, match="contrast"):
        RandLabelToImage()(lab, contrast=(np.zeros(2), np.zeros(2)))


def test_label_to_imaged_independent_or_shared_contrast():
    lab = random_shape_label_map((20, 20, 20), 8, 2.0, torch.Generator().manual_seed(4))
    data = {"moving_label": lab, "fixed_label": lab.clone()}
    keys, image_keys = ("moving_label", "fixed_label"), ("moving_image", "fixed_image")
    multi = RandLabelToImaged(keys, image_keys, **CLEAN).set_random_state(0)(data)
    assert set(multi) == set(keys) | set(image_keys) and set(data) == set(keys)
    assert not torch.allclose(multi["moving_image"], multi["fixed_image"], atol=1e-3)  # multi-modal
    mono = RandLabelToImaged(keys, image_keys, shared_contrast_prob=1.0, **CLEAN).set_random_state(0)(data)
    torch.testing.assert_close(mono["moving_image"], mono["fixed_image"])  # same contrast, same label map
    again = RandLabelToImaged(keys, image_keys, **CLEAN).set_random_state(0)(data)
    assert torch.equal(again["fixed_image"], multi["fixed_image"])
    with pytest.raises(KeyError):
        RandLabelToImaged(keys, image_keys)({"moving_label": lab})
    only = RandLabelToImaged(keys, image_keys, allow_missing_keys=True)({"moving_label": lab})
    assert "moving_image" in only and "fixed_image" not in only
    with pytest.raises(ValueError, match="image_keys"):
        RandLabelToImaged(keys, ("x",))
