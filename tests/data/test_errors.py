"""Bad input raises a clear error naming the file or key and what was expected; nothing is silently dropped."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from monai_reg_ext.data import GroupedDataset, PairedDataset, UnpairedDataset
from tests.data.test_fixtures import SHAPE, blob, make_paired, make_unpaired, write_image

SIZE = (8, 8, 8)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UnpairedDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="images"):
        UnpairedDataset(tmp_path)  # exists but has no images/ nor images.h5


def test_no_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no image files.*images"):
        UnpairedDataset(tmp_path)


def test_labeled_true_without_labels(tmp_path):
    root = make_unpaired(tmp_path, 2, labeled=False)
    with pytest.raises(FileNotFoundError, match="labels"):
        UnpairedDataset(root, labeled=True)


def test_label_count_mismatch(tmp_path):
    root = make_unpaired(tmp_path, 3)
    os.remove(root / "labels" / "case1.nii.gz")
    with pytest.raises(ValueError, match=r"labels.*missing 1.*case1"):
        UnpairedDataset(root)


def test_paired_moving_fixed_mismatch(tmp_path):
    root = make_paired(tmp_path, 3, labeled=False)
    os.remove(root / "fixed_images" / "case2.nii.gz")
    with pytest.raises(ValueError, match=r"fixed_images.*case2"):
        PairedDataset(root)


def test_paired_only_one_label_folder(tmp_path):
    root = make_paired(tmp_path, 2)
    for f in (root / "fixed_labels").iterdir():
        f.unlink()
    (root / "fixed_labels").rmdir()
    with pytest.raises(FileNotFoundError, match="fixed_labels"):
        PairedDataset(root)


def test_label_shape_mismatch(tmp_path):
    root = make_unpaired(tmp_path, 2)
    bad = write_image(root / "labels" / "case0", np.zeros((5, 5, 5), np.float32))
    ds = UnpairedDataset(root, spatial_size=SIZE, shuffle=False)
    with pytest.raises(ValueError, match=rf"{bad.name}.*spatial shape \(5, 5, 5\)"):
        ds[0]


def test_label_values_outside_unit_interval(tmp_path):
    root = make_unpaired(tmp_path, 2)
    bad = write_image(root / "labels" / "case1", (blob() > 0.5).astype(np.float32) * 3)
    ds = UnpairedDataset(root, spatial_size=SIZE, shuffle=False)
    with pytest.raises(ValueError, match=rf"{bad.name}.*\[0, 1\].*one-hot"):
        ds[0]


def test_truncated_nifti(tmp_path):
    root = make_unpaired(tmp_path, 2, labeled=False)
    path = root / "images" / "case0.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = UnpairedDataset(root, spatial_size=SIZE, shuffle=False)
    with pytest.raises(ValueError, match="case0.nii.gz"):
        ds[0]


def test_unreadable_mha(tmp_path):
    root = make_unpaired(tmp_path, 2, labeled=False)
    (root / "images" / "case2.mha").write_text("garbage")
    ds = UnpairedDataset(root, spatial_size=SIZE, shuffle=False, labeled=False)
    assert len(ds.entries) == 3  # the bad file is not dropped
    ds.entries = ds.entries[1:]  # serve (case1, case2)
    with pytest.raises(ValueError, match="case2.mha"):
        ds[0]


def test_truncated_h5(tmp_path):
    root = make_unpaired(tmp_path, 2, labeled=False, fmt="h5")
    path = root / "images.h5"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="images.h5"):
        UnpairedDataset(root)


def test_unknown_h5_key(tmp_path):
    root = make_unpaired(tmp_path, 2, fmt="h5")
    with h5py.File(root / "labels.h5", "a") as f:
        f["intruder"] = np.zeros(SHAPE, np.float32)
    with pytest.raises(ValueError, match=r"labels.h5.*intruder"):
        UnpairedDataset(root)
    (root / "list.json").write_text(
        json.dumps({"training": [{"image": "images.h5::case0"}, {"image": "images.h5::nokey"}]})
    )
    ds = UnpairedDataset.from_datalist(root / "list.json", spatial_size=SIZE, shuffle=False)
    with pytest.raises(ValueError, match=r"unknown H5 key 'nokey'.*images.h5"):
        ds[0]


def test_bad_grouped_h5_key(tmp_path):
    with h5py.File(tmp_path / "images.h5", "w") as f:
        f["case0"] = np.zeros(SHAPE, np.float32)
    with pytest.raises(ValueError, match=r"case0.*group-<group>-<image>"):
        GroupedDataset(tmp_path)


def test_grouped_image_outside_group(tmp_path):
    write_image(tmp_path / "images" / "loose", blob())
    with pytest.raises(ValueError, match="loose.*images/<group>/<image>"):
        GroupedDataset(tmp_path)


def test_bad_options(tmp_path):
    root = make_unpaired(tmp_path, 2)
    with pytest.raises(ValueError, match="sample_label"):
        UnpairedDataset(root, sample_label="one")
    with pytest.raises(ValueError, match="format"):
        UnpairedDataset(root, format="dicom")
    with pytest.raises(ValueError, match="at least 2 images"):
        UnpairedDataset(make_unpaired(tmp_path / "one", 1))
