"""The paired_mrus_brain bundle: demo-data generator (on a made-up template), brain-shift model, landmarks, the
EASY-RESECT loader (on a fake copy of its layout), shipped weights and train / evaluate / inference smoke runs.

Shipped-data tests skip when ``bundles/paired_mrus_brain/data`` has not been generated.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.demo.mni_template import MNI_FILES
from monai_reg_ext.io import read_landmarks
from monai_reg_ext.metrics import landmark_tre
from tests.helpers import (
    BUNDLES_DIR,
    check_shipped_weights,
    load_bundle_script,
    run_bundle_smoke,
    run_two_process_training,
)

BUNDLE = BUNDLES_DIR / "paired_mrus_brain"
DATA = BUNDLE / "data"

needs_data = pytest.mark.skipif(not (DATA / "manifest.json").is_file(), reason="demo data not generated")


@pytest.fixture(scope="module")
def gen():
    return load_bundle_script(BUNDLE, "make_demo_data")


# ------------------------------------------------------------------------------------------------ brain-shift model
def test_brain_shift_profile_is_exact(gen):
    """d(x) = A g(x) u in voxels: A at the opening, A e^-1/2 one depth sigma below or one radius sigma aside."""
    centre, u, sp = np.array([10.0, 12.0, 20.0]), np.array([0.0, 0.6, 0.8]), 2.0
    amp, rad, dep = 8.0, 20.0, 30.0
    side = np.array([1.0, 0.0, 0.0])  # orthogonal to u
    pts = np.stack([centre, centre - (dep / sp) * u, centre + (rad / sp) * side, centre + (5.0 / sp) * u], axis=1)
    d = gen.brain_shift_ddf(pts, centre, u, sp, amp, rad, dep)
    np.testing.assert_allclose(d[:, 0], amp / sp * u, atol=1e-12)
    np.testing.assert_allclose(d[:, 1], amp / sp * np.exp(-0.5) * u, atol=1e-12)
    np.testing.assert_allclose(d[:, 2], amp / sp * np.exp(-0.5) * u, atol=1e-12)
    np.testing.assert_allclose(d[:, 3], amp / sp * u, atol=1e-12)  # above the surface: no decay with height
    # smooth and invertible on a grid: Jacobian determinant of x + d(x) stays positive
    from monai_reg_ext import jacobian_determinant

    grid = np.stack(np.meshgrid(*[np.arange(24.0)] * 3, indexing="ij"))
    field = torch.from_numpy(gen.brain_shift_ddf(grid, centre, u, sp, 12.0, 20.0, 30.0))[None]
    assert float(jacobian_determinant(field).min()) > 0.5


def test_invert_at_points_solves_y_plus_d_of_y(gen):
    from monai_reg_ext.metrics import sample_ddf
    from monai_reg_ext.spatial import random_smooth_ddf

    ddf = random_smooth_ddf((16, 16, 16), 2.0, 4.0, seed=3, dtype=torch.float64)
    targets = np.array([[5.0, 6.5, 7.0], [8.2, 9.0, 3.3], [10.0, 10.0, 10.0]])
    y = gen.invert_at_points(ddf, targets)
    np.testing.assert_allclose(y + sample_ddf(ddf, torch.from_numpy(y)).numpy(), targets, atol=1e-6)


def test_echogenicity_from_tissue_classes(gen):
    probs = {
        "gm": np.array([1.0, 0.0, 0.0, 0.0]),
        "wm": np.array([0.0, 1.0, 0.0, 0.0]),
        "icv": np.array([1, 1, 1, 0.0]),
    }
    values = {"outside": 0.0, "csf": 0.03, "gm": 0.25, "wm": 0.6}
    np.testing.assert_allclose(gen.echogenicity(probs, values, np.ones(4)), [0.25, 0.6, 0.03, 0.0])


def test_craniotomy_lies_on_the_brain_surface(gen):
    grid = np.stack(np.meshgrid(*[np.arange(32)] * 3, indexing="ij"))
    ball = ((grid - 15.5) ** 2).sum(0) < 10.0**2
    point, u = gen.craniotomy(ball, 90.0, 0.0)
    np.testing.assert_allclose(u, [0, 0, 1], atol=1e-12)
    assert 9.0 <= point[2] - 15.5 <= 10.0 and abs(point[0] - 15.5) < 0.5


# ------------------------------------------------------------------------------------- generator on a fake template
def _fake_template(folder: Path) -> Path:
    """A 48^3 1 mm "brain": ball r 16 with a WM core, GM shell and three bright cubes (corners = landmarks)."""
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.arange(48)] * 3, indexing="ij"))
    r = np.sqrt(((grid - 23.5) ** 2).sum(0))
    wm, gm = (r < 9).astype(float), ((r >= 9) & (r < 16)).astype(float)
    t1 = 0.8 * wm + 0.5 * gm
    for c in ((18, 20, 26), (28, 22, 28), (22, 29, 30)):
        sl = tuple(slice(a, a + 4) for a in c)
        t1[sl], gm[sl], wm[sl] = 1.0, 0.0, 1.0
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -24.0
    for key, vol in {"t1": t1, "gm": gm, "wm": wm}.items():
        nib.save(nib.Nifti1Image(np.round(vol * 255).astype(np.uint8), affine), str(folder / MNI_FILES[key]))
    return folder


#: generator parameters of a tiny data set: one case per split on a 24^3 grid of 2 mm
TINY = dict(
    shape=[24, 24, 24],
    spacing=2.0,
    n_train=1,
    n_val=1,
    n_test=1,
    landmark_separation_mm=3.0,
    landmark_min_per_case=1,
    subject_max_displacement=1.0,
    subject_smoothness=4.0,
    shift_radius_mm=[15.0, 20.0],
    shift_depth_mm=[20.0, 30.0],
    craniotomy_elevation_deg=[60.0, 80.0],
    us_depth_mm=60.0,
)


@pytest.fixture(scope="module")
def tiny_generated(gen, tmp_path_factory):
    root = tmp_path_factory.mktemp("paired_mrus_gen")
    src = _fake_template(root / "src")
    out = root / "data"
    manifest = gen.generate(str(src), out, TINY, verbose=False)
    return src, out, manifest


def test_generator_layout_and_ultrasound_fov(tiny_generated):
    _, out, manifest = tiny_generated
    for split in ("train", "val", "test"):
        mov = nib.load(str(out / split / "moving_images" / "case_000.nii.gz"))
        fix = nib.load(str(out / split / "fixed_images" / "case_000.nii.gz"))
        assert mov.shape == fix.shape == (24, 24, 24)
        assert mov.get_data_dtype() == fix.get_data_dtype() == np.uint8
        np.testing.assert_allclose(mov.affine, fix.affine)
        assert np.allclose(np.diag(mov.affine)[:3], 2.0)
    fov = np.asarray(nib.load(str(out / "test" / "fov" / "case_000.nii.gz")).dataobj) > 0
    us = np.asarray(nib.load(str(out / "test" / "fixed_images" / "case_000.nii.gz")).dataobj)
    assert 0 < fov.mean() < 1
    assert not us[~fov].any(), "the ultrasound must be zero outside its field of view"
    assert us[fov].mean() > 5
    assert set(manifest["files"]) >= {"test/pairs.json", "test/baseline.json", "example/fixed_landmarks.json"}


def test_generator_true_ddf_moves_landmarks_exactly(tiny_generated):
    """The stored true DDF carries each fixed landmark onto its moving landmark; a zero DDF gives their distance."""
    _, out, _ = tiny_generated
    pair = json.loads((out / "test" / "pairs.json").read_text())[0]
    ddf_img = nib.load(str(out / "test" / pair["ddf"]))
    ddf = torch.from_numpy(np.asarray(ddf_img.dataobj, dtype=np.float64)).permute(3, 0, 1, 2)[None]
    affine = ddf_img.affine
    fixed = read_landmarks(out / "test" / pair["fixed_landmarks"], affine=affine, spatial_shape=(24, 24, 24))
    moving = read_landmarks(out / "test" / pair["moving_landmarks"], affine=affine, spatial_shape=(24, 24, 24))
    true = landmark_tre(moving, fixed, ddf, fixed_affine=affine)
    zero = landmark_tre(moving, fixed, torch.zeros_like(ddf), fixed_affine=affine)
    assert float(true.max()) < 0.1  # int16 quantisation (0.05 voxel) and linear interpolation only
    np.testing.assert_allclose(zero.numpy(), np.linalg.norm((fixed - moving) * 2.0, axis=1), atol=1e-9)
    baseline = json.loads((out / "test" / "baseline.json").read_text())["pairs"][0]
    assert baseline["no_registration"]["tre_mm"] == pytest.approx(float(zero.mean()), abs=1e-3)
    assert float(zero.max()) > 0.5, "the brain shift should move the landmarks in the cone"


def test_generator_check_detects_changes(gen, tiny_generated, tmp_path):
    src, out, _ = tiny_generated
    copy = tmp_path / "data"
    shutil.copytree(out, copy)
    assert gen.check(str(src), copy, verbose=False)
    target = copy / "test" / "fixed_images" / "case_000.nii.gz"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    assert not gen.check(str(src), copy, verbose=False)


def test_generator_rejects_bad_parameters(gen, tmp_path):
    with pytest.raises(ValueError, match="unknown parameters"):
        gen.generate(None, tmp_path, {"shape_mm": 3}, verbose=False)
    with pytest.raises(ValueError, match="shape must be"):
        gen.generate(None, tmp_path, {"shape": [4, 4]}, verbose=False)


# ---------------------------------------------------------------------------------------------------- shipped data
@needs_data
def test_shipped_test_pairs_landmarks_and_fov():
    pairs = json.loads((DATA / "test" / "pairs.json").read_text())
    baseline = json.loads((DATA / "test" / "baseline.json").read_text())["pairs"]
    assert len(pairs) == len(baseline) >= 4
    for pair, base in zip(pairs, baseline):
        fix_img = nib.load(str(DATA / "test" / pair["fixed"]))
        shape, affine = fix_img.shape, fix_img.affine
        us = np.asarray(fix_img.dataobj)
        fov = np.asarray(nib.load(str(DATA / "test" / pair["fov"])).dataobj) > 0
        assert not us[~fov].any()
        ddf = torch.from_numpy(np.asarray(nib.load(str(DATA / "test" / pair["ddf"])).dataobj, np.float64))
        ddf = ddf.permute(3, 0, 1, 2)[None]
        fixed = read_landmarks(DATA / "test" / pair["fixed_landmarks"], affine=affine, spatial_shape=shape)
        moving = read_landmarks(DATA / "test" / pair["moving_landmarks"], affine=affine, spatial_shape=shape)
        assert 5 <= len(fixed) <= 20
        assert fov[tuple(np.round(fixed).astype(int).T)].all(), "fixed landmarks lie in the ultrasound cone"
        assert float(landmark_tre(moving, fixed, ddf, fixed_affine=affine).max()) < 0.15
        zero = landmark_tre(moving, fixed, torch.zeros_like(ddf), fixed_affine=affine)
        assert base["no_registration"]["tre_mm"] == pytest.approx(float(zero.mean()), abs=1e-3)


@needs_data
def test_shipped_data_size_and_manifest():
    manifest = json.loads((DATA / "manifest.json").read_text())
    total = sum((DATA / f).stat().st_size for f in manifest["files"])
    assert total < 8e6
    assert all((DATA / f).is_file() for f in manifest["files"])


# ------------------------------------------------------------------------------------------------------ EASY-RESECT
def _linear(shape, affine):
    """Image values = 2 x + 3 y - z + 100 of the world coordinates (mm): trilinear resampling is exact."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    return (2 * world[0] + 3 * world[1] - world[2] + 100).reshape(shape).astype(np.float32)


TAG = """MNI Tag Point File
Volumes = 2;
% Volume: Case{n}-MRI.mnc
% Volume: Case{n}-US-before.mnc

Points =
 1.5 2.0 3.0 2.5 2.0 2.0 "1"
 -3.0 4.0 0.5 -2.0 4.5 0.0 "2"
 0.0 0.0 0.0 0.5 -0.5 1.0 "3";
"""


def _fake_resect(root: Path, cases=(1, 2, 3, 4, 12)) -> Path:
    mr_affine = np.array([[1.0, 0, 0, -10], [0, 1.0, 0, -10], [0, 0, 1.0, -10], [0, 0, 0, 1]])
    us_affine = np.array([[0.0, -0.8, 0, 6], [0.8, 0, 0, -6], [0, 0, 0.8, -6], [0, 0, 0, 1]])
    for n in cases:
        d = root / "EASY-RESECT" / "NIFTI" / f"Case{n}"
        d.mkdir(parents=True)
        nib.save(nib.Nifti1Image(_linear((21, 21, 21), mr_affine), mr_affine), str(d / f"Case{n}-T1.nii"))
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), mr_affine), str(d / f"Case{n}-FLAIR.nii"))
        us = np.zeros((16, 16, 16), np.float32)
        us[2:14, 2:14, 2:14] = 1.0 + n
        nib.save(nib.Nifti1Image(us, us_affine), str(d / f"Case{n}-US-before.nii"))
        (d / f"Case{n}-MRI-beforeUS.tag").write_text(TAG.format(n=n))
    return root


def test_read_tag_file_and_errors(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_easy_resect")
    path = tmp_path / "a.tag"
    path.write_text(TAG.format(n=1))
    mr, us = prep.read_tag_file(path)
    np.testing.assert_array_equal(mr, [[1.5, 2.0, 3.0], [-3.0, 4.0, 0.5], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(us, [[2.5, 2.0, 2.0], [-2.0, 4.5, 0.0], [0.5, -0.5, 1.0]])
    path.write_text("MNI Tag Point File\nVolumes = 2;\n")
    with pytest.raises(ValueError, match="Points ="):
        prep.read_tag_file(path)
    path.write_text("Volumes = 2;\nPoints =\n 1 2 3 4 5;\n")
    with pytest.raises(ValueError, match="fewer than 6 numbers"):
        prep.read_tag_file(path)
    path.write_text("Volumes = 1;\nPoints =\n 1 2 3;\n")
    with pytest.raises(ValueError, match="Volumes = 2"):
        prep.read_tag_file(path)


def test_prepare_easy_resect_on_a_fake_copy(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_easy_resect")
    src = _fake_resect(tmp_path / "src")
    archive = tmp_path / "EASY-RESECT.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f.relative_to(src))
    out = tmp_path / "out"
    splits = prep.prepare(archive, out, spacing=2.0, margin=2.0, n_val=2)
    assert splits == {"test": [1], "val": [2, 3], "train": [4, 12]}  # round(0.25 * 5) = 1 test case
    pairs = json.loads((out / "val" / "pairs.json").read_text())
    assert [p["moving"] for p in pairs] == ["moving_images/case02.nii.gz", "moving_images/case03.nii.gz"]
    mov = nib.load(str(out / "train" / "moving_images" / "case12.nii.gz"))
    fix = nib.load(str(out / "train" / "fixed_images" / "case12.nii.gz"))
    np.testing.assert_allclose(mov.affine, fix.affine)
    assert np.allclose(np.diag(mov.affine)[:3], 2.0)
    # the MR resampled in world coordinates equals the linear function wherever the grid is inside the MR
    expected = _linear(mov.shape, mov.affine)
    inside = np.asarray(mov.dataobj) != 0
    assert inside.mean() > 0.5
    np.testing.assert_allclose(np.asarray(mov.dataobj)[inside], expected[inside], atol=1e-3)
    assert np.asarray(fix.dataobj).max() == pytest.approx(13.0)
    pts = json.loads((out / "test" / "moving_landmarks" / "case01.json").read_text())
    assert pts == {"space": "physical", "points": [[1.5, 2.0, 3.0], [-3.0, 4.0, 0.5], [0.0, 0.0, 0.0]]}
    fixed_pts = json.loads((out / "test" / "fixed_landmarks" / "case01.json").read_text())["points"]
    assert fixed_pts[0] == [2.5, 2.0, 2.0]
    # the paired dataset reads the result
    from monai_reg_ext.data import PairedDataset

    ds = PairedDataset(str(out / "train"), labeled=False, spatial_size=(16, 16, 16), shuffle=False)
    assert len(ds) == 2 and ds[0]["moving_image"].shape == (1, 16, 16, 16)
    # DeepReg's direction swaps the roles
    prep.prepare(src, tmp_path / "swapped", spacing=2.0, margin=2.0, n_val=2, us_to_mr=True)
    swapped = json.loads((tmp_path / "swapped" / "test" / "moving_landmarks" / "case01.json").read_text())
    assert swapped["points"][0] == [2.5, 2.0, 2.0]


def test_prepare_easy_resect_errors(tmp_path):
    prep = load_bundle_script(BUNDLE, "prepare_easy_resect")
    with pytest.raises(ValueError, match="--source"):
        prep.prepare(tmp_path / "missing.zip", tmp_path / "out")
    src = _fake_resect(tmp_path / "src", cases=(1,))
    (src / "EASY-RESECT" / "NIFTI" / "Case1" / "Case1-MRI-beforeUS.tag").unlink()
    with pytest.raises(ValueError, match="no complete case"):
        prep.prepare(src, tmp_path / "out")


# --------------------------------------------------------------------------------------------- metadata and network
def test_shipped_weights_load_safely():
    check_shipped_weights(BUNDLE, (40, 48, 40))


@needs_data
def test_evaluate_script_metrics_on_one_held_out_pair():
    """The script's metrics before registration equal the generator's baseline; the network's TRE is finite."""
    ev = load_bundle_script(BUNDLE, "evaluate")
    from monai_reg_ext import evaluation
    from monai_reg_ext.bundle import load_bundle

    pair = evaluation.load_pair(evaluation.read_pairs(DATA / "test" / "pairs.json")[0])
    methods = {"none": evaluation.identity(), "network": evaluation.register_bundle(load_bundle(BUNDLE))}
    rows = evaluation.evaluate_pairs([pair], methods, ev.METRICS, log=None)
    before, after = rows["none"][0], rows["network"][0]
    base = json.loads((DATA / "test" / "baseline.json").read_text())["pairs"][0]["no_registration"]
    assert before["tre_mm"] == pytest.approx(base["tre_mm"], abs=1e-3)
    assert before["dice_gm_fov"] == pytest.approx(base["dice_gm_fov"], abs=1e-3)
    assert np.isfinite(after["tre_mm"]) and 0 <= after["folding_fraction"] <= 1 and pair.spatial_shape == (56, 64, 56)


# ------------------------------------------------------------------------------------------------------- smoke runs
@pytest.fixture(scope="module")
def tiny_data(tiny_generated, tmp_path_factory):
    """The fake-template data set (1 train, 1 val, 1 test case) plus a second training case."""
    _, out, _ = tiny_generated
    root = tmp_path_factory.mktemp("paired_mrus_tiny")
    shutil.copytree(out, root, dirs_exist_ok=True)
    for sub in ("moving_images", "fixed_images"):
        shutil.copy(root / "train" / sub / "case_000.nii.gz", root / "train" / sub / "case_001.nii.gz")
    return root


def test_train_evaluate_inference_smoke(tiny_data, tmp_path):
    size = {"spatial_size": [16, 16, 16]}
    pairs = tiny_data / "test" / "pairs.json"
    smoke = run_bundle_smoke(BUNDLE, tiny_data, tmp_path, pairs, size, {**size, "eval_split": "test"})
    assert (tmp_path / "runs" / "best_model.pt").is_file() and "val_lncc" in smoke.metrics


@pytest.mark.slow
def test_two_process_training_on_cpu(tiny_data, tmp_path):
    """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
    overrides = {"spatial_size": [16, 16, 16], "max_epochs": 1}
    run_two_process_training(BUNDLE, ["train.json"], tiny_data, tmp_path / "runs", **overrides)
