"""Paired / unpaired / grouped datasets: pair counts, reproducibility, sample contents, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_reg_ext.data import GroupedDataset, PairedDataset, UnpairedDataset
from tests.data.test_fixtures import SHAPE, make_grouped, make_paired, make_unpaired, write_image

SIZE = (8, 8, 8)


# ---------------------------------------------------------------- pair counts (DeepReg formulas)
@pytest.mark.parametrize("n", [2, 5])
def test_unpaired_count_and_no_replacement(tmp_path, n):
    ds = UnpairedDataset(make_unpaired(tmp_path, n, labeled=False), spatial_size=SIZE)
    assert len(ds) == n // 2
    for epoch in range(3):
        ids = [i for p in ds.pairs(epoch) for i in p]
        assert len(ids) == len(set(ids)) == 2 * (n // 2)


def test_paired_count(tmp_path):
    ds = PairedDataset(make_paired(tmp_path, 3), spatial_size=SIZE)
    assert len(ds) == 3
    assert sorted(ds.pairs()) == [(f"case{i}", f"case{i}") for i in range(3)]


SIZES = [2, 3, 4]
N_ALL = sum(SIZES)


@pytest.mark.parametrize(
    "prob, option, expected",
    [
        (1.0, "forward", sum(n * (n - 1) // 2 for n in SIZES)),
        (1.0, "backward", sum(n * (n - 1) // 2 for n in SIZES)),
        (1.0, "unconstrained", sum(n * (n - 1) for n in SIZES)),
        (0.0, "forward", N_ALL * (N_ALL - 1) - sum(n * (n - 1) for n in SIZES)),
    ],
)
def test_grouped_all_pairs_counts(tmp_path, prob, option, expected):
    ds = GroupedDataset(
        make_grouped(tmp_path, SIZES), intra_group_prob=prob, intra_group_option=option, sample_image_in_group=False
    )
    pairs = ds.pairs()
    assert len(ds) == len(pairs) == expected
    assert len(set(pairs)) == expected  # no duplicates
    for m, f in pairs:
        gm, tm = m.split("/")
        gf, tf = f.split("/")
        assert (gm == gf) == (prob == 1.0)
        if option == "forward" and prob == 1.0:
            assert int(tm[1:]) < int(tf[1:])
        if option == "backward":
            assert int(tm[1:]) > int(tf[1:])


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("option", ["forward", "backward", "unconstrained"])
def test_grouped_staged_sampling(tmp_path, prob, option):
    ds = GroupedDataset(make_grouped(tmp_path, SIZES), intra_group_prob=prob, intra_group_option=option, seed=3)
    n_intra = 0
    for epoch in range(8):
        pairs = ds.pairs(epoch)
        assert len(pairs) == len(SIZES)  # one pair per group
        assert sorted(m.split("/")[0] for m, _ in pairs) == [f"g{g}" for g in range(len(SIZES))]
        for m, f in pairs:
            assert m != f
            same = m.split("/")[0] == f.split("/")[0]
            n_intra += same
            if same and option != "unconstrained":
                tm, tf = int(m.split("/")[1][1:]), int(f.split("/")[1][1:])
                assert (tm < tf) == (option == "forward")
    if prob in (0.0, 1.0):
        assert n_intra == (0 if prob == 0 else 8 * len(SIZES))
    else:
        assert 0 < n_intra < 8 * len(SIZES)


def test_grouped_mixing_without_sampling_is_error(tmp_path):
    with pytest.raises(ValueError, match="intra_group_prob"):
        GroupedDataset(make_grouped(tmp_path, SIZES), intra_group_prob=0.5, sample_image_in_group=False)


def test_grouped_intra_needs_two_images(tmp_path):
    with pytest.raises(ValueError, match="g1"):
        GroupedDataset(make_grouped(tmp_path, [2, 1]), intra_group_prob=1.0)


def test_grouped_natural_order(tmp_path):
    for i in (1, 2, 10):
        write_image(tmp_path / "images" / "p" / f"t{i}", np.ones(SHAPE, np.float32))
    ds = GroupedDataset(tmp_path, intra_group_option="forward", sample_image_in_group=False)
    assert sorted(ds.pairs()) == sorted([("p/t1", "p/t2"), ("p/t1", "p/t10"), ("p/t2", "p/t10")])


# ---------------------------------------------------------------- reproducibility
def test_same_seed_same_pairs_and_epochs_differ(tmp_path):
    root = make_unpaired(tmp_path, 8, labeled=False)
    a, b = UnpairedDataset(root, seed=7), UnpairedDataset(root, seed=7)
    assert a.pairs(0) == b.pairs(0) and a.pairs(5) == b.pairs(5)
    assert len({tuple(a.pairs(e)) for e in range(5)}) > 1
    assert UnpairedDataset(root, seed=8).pairs(0) != a.pairs(0)
    a.set_epoch(2)
    assert a.pairs() == b.pairs(2)
    val = UnpairedDataset(root, shuffle=False)
    assert val.pairs(0) == val.pairs(3) == [(f"case{2 * k}", f"case{2 * k + 1}") for k in range(4)]


def test_grouped_reproducible(tmp_path):
    root = make_grouped(tmp_path, SIZES)
    a = GroupedDataset(root, intra_group_prob=0.5, seed=1)
    b = GroupedDataset(root, intra_group_prob=0.5, seed=1)
    assert [a.pairs(e) for e in range(4)] == [b.pairs(e) for e in range(4)]
    assert len({tuple(a.pairs(e)) for e in range(6)}) > 1


# ---------------------------------------------------------------- sample contents and formats
@pytest.mark.parametrize("fmt", ["nifti", "mha", "h5"])
def test_unpaired_sample(tmp_path, fmt):
    ds = UnpairedDataset(make_unpaired(tmp_path, 4, fmt=fmt), spatial_size=SIZE, seed=0)
    assert ds.labeled
    s = ds[0]
    for k in ("moving_image", "fixed_image", "moving_label", "fixed_label"):
        assert isinstance(s[k], MetaTensor)
        assert s[k].shape == (1, *SIZE) and s[k].dtype == torch.float32
        assert 0 <= float(s[k].min()) and float(s[k].max()) <= 1
    assert float(s["moving_image"].max()) == pytest.approx(1.0) and float(s["moving_image"].min()) == 0.0
    assert (s["moving_image_id"], s["fixed_image_id"]) == ds.pairs()[0]
    assert s["pair_index"] == 0 and s["label_index"] == 0
    meta = s["moving_image"].meta
    assert tuple(int(v) for v in meta["spatial_shape"]) == SHAPE
    assert s["moving_image_id"] in str(meta["filename_or_obj"])
    assert meta["affine"].shape == (4, 4)
    if fmt == "nifti":
        np.testing.assert_allclose(np.asarray(meta["original_affine"]), np.diag([1.5, 1.0, 2.0, 1.0]))


def test_paired_h5_and_unlabelled(tmp_path):
    ds = PairedDataset(make_paired(tmp_path, 2, labeled=False, fmt="h5"), spatial_size=SIZE)
    assert not ds.labeled
    s = ds[1]
    assert "moving_label" not in s and "label_index" not in s
    assert s["fixed_image"].shape == (1, *SIZE)


def test_paired_different_sizes_and_labeled_false(tmp_path):
    ds = PairedDataset(
        make_paired(tmp_path, 2), labeled=False, moving_spatial_size=(6, 6, 6), fixed_spatial_size=(8, 6, 4)
    )
    s = ds[0]
    assert s["moving_image"].shape == (1, 6, 6, 6) and s["fixed_image"].shape == (1, 8, 6, 4)


def test_multi_label_one_hot_sample_and_all(tmp_path):
    root = make_unpaired(tmp_path, 4, num_labels=3)
    train = UnpairedDataset(root, spatial_size=SIZE, sample_label="sample", seed=0)
    seen = set()
    for e in range(6):
        train.set_epoch(e)
        s = train[0]
        assert s["moving_label"].shape == (1, *SIZE) and s["fixed_label"].shape == (1, *SIZE)
        seen.add(s["label_index"])
    assert len(seen) > 1 and seen <= {0, 1, 2}
    s = UnpairedDataset(root, spatial_size=SIZE, sample_label="all", shuffle=False)[0]
    assert s["moving_label"].shape == (3, *SIZE) and s["label_index"] == -1
    # one-hot channels are nested masks: label 0 (lowest threshold) contains label 2
    assert bool((s["moving_label"][2] <= s["moving_label"][0] + 1e-6).all())


def test_folder_per_label(tmp_path):
    root = make_unpaired(tmp_path, 2, labeled=False)
    for i in range(2):
        for name in ("organ_a", "organ_b"):
            write_image(root / "labels" / name / f"case{i}", np.zeros(SHAPE, np.float32))
    s = UnpairedDataset(root, spatial_size=SIZE, sample_label="all", shuffle=False)[0]
    assert s["moving_label"].shape == (2, *SIZE)


def test_multiple_dirs_are_combined(tmp_path):
    make_unpaired(tmp_path / "fold0", 3, labeled=False)
    make_unpaired(tmp_path / "fold1", 3, labeled=False, fmt="h5")
    ds = UnpairedDataset([tmp_path / "fold0", tmp_path / "fold1"], spatial_size=SIZE)
    assert len(ds) == 3
    ids = {i for p in ds.pairs() for i in p}
    assert all(i.startswith(("fold0/", "fold1/")) for i in ids)


def test_grouped_h5_sample(tmp_path):
    ds = GroupedDataset(make_grouped(tmp_path, [2, 2], labeled=True, fmt="h5"), spatial_size=SIZE)
    s = ds[0]
    assert s["moving_image_id"].startswith("group-") and s["fixed_image_id"].startswith("group-")
    assert s["moving_image_id"].split("-")[1] == s["fixed_image_id"].split("-")[1]  # ids are the H5 keys
    assert s["moving_label"].shape == (1, *SIZE)


def test_datalists(tmp_path):
    root = make_paired(tmp_path, 2)
    items = [
        {
            "moving_image": f"moving_images/case{i}.nii.gz",
            "fixed_image": f"fixed_images/case{i}.nii.gz",
            "moving_label": f"moving_labels/case{i}.nii.gz",
            "fixed_label": f"fixed_labels/case{i}.nii.gz",
        }
        for i in range(2)
    ]
    (root / "pairs.json").write_text(json.dumps({"training": items, "validation": items[:1]}))
    ds = PairedDataset.from_datalist(root / "pairs.json", spatial_size=SIZE)
    assert len(ds) == 2 and ds.labeled and ds[0]["moving_label"].shape == (1, *SIZE)
    assert len(PairedDataset.from_datalist(root / "pairs.json", key="validation")) == 1
    groups = [{"image": f"moving_images/case{i}.nii.gz", "group": "a" if i < 1 else "b"} for i in range(2)]
    (root / "groups.json").write_text(json.dumps({"training": groups}))
    g = GroupedDataset.from_datalist(root / "groups.json", intra_group_prob=0.0, sample_image_in_group=False)
    assert len(g) == 2 and not g.labeled
    (root / "bad.json").write_text(json.dumps({"training": [{"image": "nope.nii.gz"}, {"image": "x"}]}))
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        UnpairedDataset.from_datalist(root / "bad.json")


def test_dataloader_batches(tmp_path):
    from monai.data import DataLoader

    ds = UnpairedDataset(make_unpaired(tmp_path, 4), spatial_size=SIZE)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["moving_image"].shape == (2, 1, *SIZE) and batch["fixed_label"].shape == (2, 1, *SIZE)
    assert list(batch["moving_image_id"]) == [p[0] for p in ds.pairs()]
