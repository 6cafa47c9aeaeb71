"""Demo data of the ``unpaired_mr_brain`` bundle: the shipped files and the generator script.

The shipped-data tests skip when ``bundles/unpaired_mr_brain/data`` has not been generated; the generator test runs on
a tiny made-up "template" (no nilearn needed).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext import warp_image
from tests.helpers import BUNDLES_DIR, load_bundle_script

BUNDLE = BUNDLES_DIR / "unpaired_mr_brain"
DATA = BUNDLE / "data"

needs_data = pytest.mark.skipif(not (DATA / "manifest.json").is_file(), reason="demo data not generated")


def _load_script():
    return load_bundle_script(BUNDLE, "make_demo_data")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def _warp_onehot(label: np.ndarray, ddf: np.ndarray) -> np.ndarray:
    """Warp a one-hot (X, Y, Z, 2) label with a voxel DDF (X, Y, Z, 3): bilinear on (bg, GM, WM), then argmax."""
    onehot = torch.from_numpy(label.astype(np.float32)).permute(3, 0, 1, 2)
    full = torch.cat([1.0 - onehot.sum(0, keepdim=True), onehot])[None]
    field = torch.from_numpy(ddf.astype(np.float32)).permute(3, 0, 1, 2)[None]
    arg = warp_image(full, field)[0].argmax(0).numpy()
    return np.stack([arg == 1, arg == 2], axis=-1)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


# ---------------------------------------------------------------------------------------------------- shipped data
@needs_data
def test_layout_shapes_dtypes_affine():
    manifest = json.loads((DATA / "manifest.json").read_text())
    params = manifest["parameters"]
    shape = tuple(params["shape"])
    assert shape == (64, 80, 64) and all(s % 8 == 0 for s in shape)
    affine0 = None
    for split in ("train", "val", "test"):
        images = sorted((DATA / split / "images").glob("*.nii.gz"))
        labels = sorted((DATA / split / "labels").glob("*.nii.gz"))
        assert len(images) == params[f"n_{split}"] == {"train": 16, "val": 4, "test": 4}[split]
        assert [p.name for p in images] == [p.name for p in labels]
        for img_path, lab_path in zip(images, labels):
            img, lab = nib.load(img_path), nib.load(lab_path)
            assert img.shape == shape and img.get_data_dtype() == np.uint8
            assert lab.shape == (*shape, 2) and lab.get_data_dtype() == np.uint8
            np.testing.assert_allclose(nib.affines.voxel_sizes(img.affine), [2.5, 2.5, 2.5])
            assert np.allclose(img.affine[:3, :3], np.diag([2.5, 2.5, 2.5]))  # RAS, axis-aligned
            assert np.allclose(img.affine, lab.affine)
            affine0 = img.affine if affine0 is None else affine0
            assert np.allclose(img.affine, affine0)
            data = np.asarray(img.dataobj)
            assert data.min() == 0 and data.max() == 255
            onehot = np.asarray(lab.dataobj)
            assert set(np.unique(onehot)) <= {0, 1} and onehot.sum(-1).max() == 1
            assert onehot[..., 0].sum() > 10000 and onehot[..., 1].sum() > 10000  # GM and WM present
    for name in ("moving", "fixed", "moving_label", "fixed_label"):
        assert (DATA / "example" / f"{name}.nii.gz").is_file()


@needs_data
def test_manifest_hashes_and_size():
    manifest = json.loads((DATA / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert sorted(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) < 8e6


@needs_data
def test_true_ddf_aligns_test_pairs():
    pairs = json.loads((DATA / "test" / "pairs.json").read_text())
    baseline = json.loads((DATA / "test" / "baseline.json").read_text())
    assert len(pairs) == 4
    for k, pair in enumerate(pairs):
        ddf_img = nib.load(DATA / "test" / pair["ddf"])
        assert ddf_img.shape == (64, 80, 64, 3) and ddf_img.get_data_dtype() == np.int16
        assert np.allclose(ddf_img.affine, nib.load(DATA / "test" / pair["fixed"]).affine)
        ddf = ddf_img.get_fdata()  # voxels (scl_slope applied)
        assert 1.0 < np.abs(ddf).max() < 20.0
        mov_lab = np.asarray(nib.load(DATA / "test" / pair["moving_label"]).dataobj) > 0
        fix_lab = np.asarray(nib.load(DATA / "test" / pair["fixed_label"]).dataobj) > 0
        warped = _warp_onehot(mov_lab, ddf)
        for c, key in enumerate(("dice_gm", "dice_wm")):
            before = _dice(mov_lab[..., c], fix_lab[..., c])
            after = _dice(warped[..., c], fix_lab[..., c])
            assert after > 0.85 and after > before + 0.1, (k, key, before, after)
            assert before == pytest.approx(baseline["pairs"][k]["no_registration"][key], abs=1e-3)
            assert after == pytest.approx(baseline["pairs"][k]["true_ddf"][key], abs=0.01)
        mov = np.asarray(nib.load(DATA / "test" / pair["moving"]).dataobj).astype(np.float32) / 255
        fix = np.asarray(nib.load(DATA / "test" / pair["fixed"]).dataobj).astype(np.float32) / 255
        field = torch.from_numpy(ddf.astype(np.float32)).permute(3, 0, 1, 2)[None]
        warped_img = warp_image(torch.from_numpy(mov)[None, None], field)[0, 0].numpy()
        assert 1.0 - _ncc(warped_img, fix) < 0.5 * (1.0 - _ncc(mov, fix))  # NCC 0.95 -> 0.996 on pair 0


# ------------------------------------------------------------------------------------------------------- generator
def _write_fake_source(folder: Path) -> None:
    """A 40^3 1 mm "template": WM ball (r < 8 mm) inside a GM shell (r < 13 mm), uint8 like nilearn's files."""
    g = np.mgrid[:40, :40, :40].astype(np.float64) - 19.5
    r = np.sqrt((g[0] / 1.1) ** 2 + g[1] ** 2 + (g[2] / 0.9) ** 2) + 1.5 * np.sin(g[0] / 3.0)
    wm = np.clip(8.5 - r, 0, 1)
    gm = np.clip(13.5 - r, 0, 1) - wm
    t1 = 0.9 * wm + 0.55 * gm
    affine = np.array([[1.0, 0, 0, -20], [0, 1, 0, -22], [0, 0, 1, -18], [0, 0, 0, 1]])
    mod = _load_script()
    folder.mkdir(parents=True, exist_ok=True)
    for key, vol in (("t1", t1), ("gm", gm), ("wm", wm)):
        nib.save(nib.Nifti1Image(np.round(vol * 255).astype(np.uint8), affine), str(folder / mod.SOURCE_FILES[key]))


def test_generator_on_fake_source(tmp_path):
    mod = _load_script()
    src = tmp_path / "src"
    _write_fake_source(src)
    out = tmp_path / "data"
    args = ["--source", str(src), "--output", str(out), "--shape", "16", "16", "16", "--quiet"]
    args += ["--n-train", "2", "--n-val", "1", "--n-test", "3", "--max-displacement", "1.5", "--smoothness", "3"]
    assert mod.main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["shape"] == [16, 16, 16]
    for split, n in (("train", 2), ("val", 1), ("test", 3)):
        assert len(list((out / split / "images").glob("*.nii.gz"))) == n
        assert len(list((out / split / "labels").glob("*.nii.gz"))) == n
    lab = nib.load(out / "train" / "labels" / "subject_000.nii.gz")
    assert lab.shape == (16, 16, 16, 2) and lab.get_data_dtype() == np.uint8
    assert np.asarray(lab.dataobj).sum(-1).max() == 1
    pairs = json.loads((out / "test" / "pairs.json").read_text())
    order = [(p["moving"][-10:-7], p["fixed"][-10:-7]) for p in pairs]
    assert order == [("000", "001"), ("001", "002"), ("002", "000")]
    ddf = nib.load(out / "test" / pairs[0]["ddf"])
    assert ddf.shape == (16, 16, 16, 3) and ddf.get_data_dtype() == np.int16
    assert 0 < np.abs(ddf.get_fdata()).max() < 5
    assert json.loads((out / "test" / "baseline.json").read_text())["summary"]["true_ddf"]["dice_wm"]["mean"] > 0.8
    assert set(manifest["files"]) >= {"example/moving.nii.gz", "example/fixed_label.nii.gz", "test/pairs.json"}

    # determinism: --check regenerates and compares sha256; a changed file is detected
    assert mod.main(["--source", str(src), "--output", str(out), "--check", "--quiet"]) == 0
    (out / "val" / "images" / "subject_000.nii.gz").write_bytes(b"changed")
    assert mod.main(["--source", str(src), "--output", str(out), "--check", "--quiet"]) == 1


def test_source_forms_agree(tmp_path):
    """A wheel-like zip and a folder give the same volumes; a bad source names what it expects."""
    mod = _load_script()
    src = tmp_path / "src"
    _write_fake_source(src)
    wheel = tmp_path / "nilearn-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in mod.SOURCE_FILES.values():
            zf.write(src / name, f"nilearn/datasets/data/{name}")
    vol_a, aff_a, hash_a, _ = mod.load_source(str(src))
    vol_b, aff_b, hash_b, _ = mod.load_source(str(wheel))
    assert hash_a == hash_b and np.allclose(aff_a, aff_b)
    assert all(np.array_equal(vol_a[k], vol_b[k]) for k in ("t1", "gm", "wm"))
    with pytest.raises(ValueError, match="expected a nilearn wheel"):
        mod.load_source(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="does not fit"):
        mod.target_grid(vol_a, aff_a, (8, 8, 8), 2.5)
