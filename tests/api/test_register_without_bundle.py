"""``register`` / ``monai-reg register`` without a bundle: the optimisation pipeline, its files and its errors."""

from __future__ import annotations

import subprocess
import sys

import itk
import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext import register
from monai_reg_ext.cli import main
from monai_reg_ext.io import load_itk_affine
from monai_reg_ext.spatial import affine_to_ddf, compose_ddf
from tests.optimise.phantoms import blobs, grid_affine, grid_world, render, world_transform


@pytest.fixture
def affine_pair(tmp_path):
    """Fixed and moving NIfTI of one phantom under a known world affine (moving on its own oblique grid)."""
    spec = blobs(seed=5)
    a_fix = grid_affine((2.0, 2.0, 2.0), (-35.0, -35.0, -35.0))
    a_mov = grid_affine((2.2, 2.0, 2.4), (-40.0, -38.0, -40.0), rotation_deg=4.0)
    world = world_transform(7.0, (5.0, -4.0, 3.0), 1.05)
    inv = np.linalg.inv(world)
    wm = grid_world((36, 36, 32), a_mov).reshape(3, -1)
    moving = render((inv[:3, :3] @ wm + inv[:3, 3:]).reshape(3, 36, 36, 32), spec)
    fixed = render(grid_world((36, 36, 36), a_fix), spec)
    paths = {}
    for name, arr, aff in (("moving", moving, a_mov), ("fixed", fixed, a_fix)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr.astype(np.float32), aff), paths[name])
        lab = (arr > 0.4).astype(np.uint8)
        paths[f"{name}_label"] = tmp_path / f"{name}_label.nii.gz"
        nib.save(nib.Nifti1Image(lab, aff), paths[f"{name}_label"])
    return paths, a_fix


def test_register_without_bundle_improves_dice_and_writes_affine(affine_pair, tmp_path):
    paths, a_fix = affine_pair
    result = register(
        paths["moving"], paths["fixed"], moving_label=paths["moving_label"], fixed_label=paths["fixed_label"],
        inverse=True, device="cpu",
    )  # fmt: skip
    m = result.metrics
    assert m["dice_label0_after"] > m["dice_label0_before"] + 0.2 and m["dice_label0_after"] > 0.85
    assert m["folding_fraction"] == 0.0
    assert m["inverse_consistency_voxels"] < 0.1
    assert result.theta is not None and result.theta.shape == (3, 4)
    files = result.save(tmp_path / "out")
    assert {"affine", "inverse_ddf", "ddf", "warped_image", "warped_label"} <= set(files)
    theta = load_itk_affine(files["affine"], a_fix)
    np.testing.assert_allclose(np.asarray(theta), result.theta.numpy(), atol=1e-4)
    # the DDF includes the affine part: the deformable residual is small next to it
    residual = result.ddf - affine_to_ddf(result.theta[None], result.ddf.shape[1:])[0]
    assert float(residual.abs().mean()) < float(result.ddf.abs().mean())
    # inverse: compose(forward, inverse) is ~ identity inside the image
    both = compose_ddf(result.ddf[None], result.inverse_ddf[None])[0][:, 6:-6, 6:-6, 6:-6]
    assert float(both.norm(dim=0).mean()) < 0.1


def test_cli_without_bundle_and_itk_applies_the_ddf(affine_pair, tmp_path):
    paths, _ = affine_pair
    out = tmp_path / "cli"
    main(["register", "--moving", str(paths["moving"]), "--fixed", str(paths["fixed"]), "--output", str(out),
          "--stages", "affine", "--nofigure", "--quiet", "--threads", "1"])  # fmt: skip
    assert (out / "affine.tfm").is_file() and not (out / "registration.png").exists()
    # ITK warps the moving image (on its own grid) with the written DDF onto the fixed grid: same result
    image = itk.imread(str(paths["moving"]), itk.F)
    fixed = itk.imread(str(paths["fixed"]), itk.F)
    field = itk.imread(str(out / "ddf.nii.gz"))
    warper = itk.WarpImageFilter[type(image), type(image), type(field)].New()
    warper.SetInput(image)
    warper.SetDisplacementField(field)
    warper.SetOutputParametersFromImage(fixed)
    warper.SetEdgePaddingValue(float("nan"))
    warper.Update()
    ref = itk.array_from_image(warper.GetOutput()).transpose(2, 1, 0)
    ours = np.asarray(nib.load(str(out / "warped_moving.nii.gz")).dataobj)
    inside = np.isfinite(ref)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours[inside], ref[inside], atol=2e-3)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "monai_reg_ext", *map(str, args)], capture_output=True, text=True)


def test_cli_errors_exit_2_with_one_line(affine_pair, tmp_path):
    paths, a_fix = affine_pair
    far = a_fix.copy()
    far[:3, 3] += 10_000.0  # 10 m away, and a single slice
    thin = tmp_path / "thin.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((36, 36, 1), np.float32), a_fix), thin)
    for moving, expected in ((thin, "at least 8 voxels"), (paths["moving"], "similarity")):
        extra = ("--similarity", "cosine") if expected == "similarity" else ()
        res = _run("register", "--moving", moving, "--fixed", paths["fixed"], "--output", tmp_path / "o", *extra)
        assert res.returncode == 2, res.stderr
        assert expected in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not (tmp_path / "o").exists()


def test_no_overlap_in_world_space_is_refused(affine_pair):
    paths, a_fix = affine_pair
    img = nib.load(str(paths["moving"]))
    far = img.affine.copy()
    far[:3, 3] += 10_000.0
    moving = torch.as_tensor(np.asarray(img.dataobj))
    from monai.data import MetaTensor

    with pytest.raises(ValueError, match="do not overlap"):
        register(MetaTensor(moving, affine=torch.as_tensor(far)), paths["fixed"], initialisation="none")


def test_bundle_between_pipeline_stages(affine_pair, tiny_bundle):
    """With a bundle, ``stages`` puts the affine stage before the network and a deformable refinement after it."""
    paths, _ = affine_pair
    labels = {"moving_label": paths["moving_label"], "fixed_label": paths["fixed_label"]}
    alone = register(paths["moving"], paths["fixed"], bundle=tiny_bundle, device="cpu", **labels)
    staged = register(
        paths["moving"], paths["fixed"], bundle=tiny_bundle, device="cpu", stages="affine,deformable", **labels
    )
    assert alone.theta is None and staged.theta is not None
    assert {"affine_seconds", "deformable_seconds"} <= set(staged.metrics)
    assert staged.metrics["dice_label0_after"] > max(alone.metrics["dice_label0_after"], 0.85)
    with pytest.raises(ValueError, match="subset"):
        register(paths["moving"], paths["fixed"], bundle=tiny_bundle, device="cpu", stages="rigid")


@pytest.mark.parametrize("scale", [1, 255])
def test_integer_label_maps(affine_pair, tmp_path, scale):
    """Label maps 0..K (and 0/255 masks) are accepted: Dice per label value, the warped label keeps the values."""
    paths, _ = affine_pair
    for name in ("moving", "fixed"):
        img = nib.load(str(paths[name]))
        arr = np.asarray(img.dataobj)
        lab = ((arr > 0.25).astype(np.int16) + (arr > 0.5)) * scale if scale == 1 else (arr > 0.4) * scale
        nib.save(nib.Nifti1Image(lab.astype(np.int16), img.affine), tmp_path / f"{name}_map.nii.gz")
    result = register(
        paths["moving"], paths["fixed"], moving_label=tmp_path / "moving_map.nii.gz",
        fixed_label=tmp_path / "fixed_map.nii.gz", stages="affine", device="cpu",
    )  # fmt: skip
    values = (1, 2) if scale == 1 else (255,)
    for v in values:
        assert result.metrics[f"dice_label{v}_after"] > result.metrics[f"dice_label{v}_before"]
    assert set(torch.unique(result.warped_label).tolist()) <= {0, *values}
    files = result.save(tmp_path / f"out{scale}", figure=False)
    saved = np.asarray(nib.load(str(files["warped_label"])).dataobj)
    assert set(np.unique(saved).tolist()) == {0, *values}


def test_non_integer_label_outside_unit_range_names_the_file(affine_pair, tmp_path):
    paths, _ = affine_pair
    img = nib.load(str(paths["moving"]))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 3.7, img.affine), tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match="bad.nii.gz.*integer label map"):
        register(paths["moving"], paths["fixed"], moving_label=tmp_path / "bad.nii.gz", stages="affine")


def test_save_is_atomic_and_never_mixes_runs(affine_pair, tmp_path, monkeypatch):
    paths, _ = affine_pair
    first = register(paths["moving"], paths["fixed"], stages="affine", device="cpu")
    out = tmp_path / "set"
    first.save(out, figure=False)
    assert (out / "affine.tfm").is_file()
    second = register(paths["moving"], paths["fixed"], stages="affine", device="cpu")
    second.theta = None  # a run without an affine part: the earlier affine.tfm must not stay beside its outputs
    second.save(out, overwrite=True, figure=False)
    assert not (out / "affine.tfm").exists() and (out / "ddf.nii.gz").is_file()
    before = sorted(p.name for p in out.iterdir())
    import monai_reg_ext.io as io

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_ddf", broken)
    with pytest.raises(OSError, match="disk full"):
        first.save(tmp_path / "fresh", figure=False)
    assert not (tmp_path / "fresh").exists()  # nothing half-written, no temporary folder, no empty folder left
    with pytest.raises(OSError):
        first.save(out, overwrite=True, figure=False)
    assert sorted(p.name for p in out.iterdir()) == before  # the earlier set is intact


def test_sheared_fixed_grid_is_refused_before_writing(affine_pair, tmp_path):
    paths, a_fix = affine_pair
    sheared = a_fix.copy()
    sheared[0, 2] = 0.35  # gantry tilt: the slice axis leans
    img = nib.load(str(paths["fixed"]))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), sheared), tmp_path / "tilted.nii.gz")
    with pytest.raises(ValueError, match=r"fixed .*tilted\.nii\.gz.*not orthogonal.*gantry"):
        register(paths["moving"], tmp_path / "tilted.nii.gz", stages="affine", device="cpu")  # before registering
    result = register(paths["moving"], paths["fixed"], stages="affine", device="cpu")
    result.fixed.affine = torch.as_tensor(sheared)  # the check when saving stays, for results made otherwise
    with pytest.raises(ValueError, match="not orthogonal.*gantry"):
        result.save(tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("device, match", [("gpu0", "not a device name"), ("cuda", "not available")])
def test_bad_device_is_one_clear_error(affine_pair, device, match):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    paths, _ = affine_pair
    with pytest.raises(ValueError, match=match):
        register(paths["moving"], paths["fixed"], device=device)


def test_refinement_schedule_from_the_bundle_config(affine_pair, tiny_bundle):
    """``registration_refinement`` in the inference config replaces the default refinement schedule; bad entries
    name the config."""
    import json

    from monai_reg_ext.api.register import NETWORK_REFINEMENT, refinement_schedule
    from monai_reg_ext.bundle import load_bundle

    assert refinement_schedule(load_bundle(tiny_bundle, device="cpu")) == NETWORK_REFINEMENT
    cfg_path = tiny_bundle / "configs" / "inference.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["registration_refinement"] = {"levels": [2], "iterations": [7]}
    cfg_path.write_text(json.dumps(cfg))
    model = load_bundle(tiny_bundle, device="cpu")
    assert refinement_schedule(model) == {"levels": (2,), "iterations": (7,)}
    paths, _ = affine_pair
    staged = register(paths["moving"], paths["fixed"], bundle=model, device="cpu", stages="deformable")
    assert 0 < staged.metrics["deformable_seconds"]
    cfg["registration_refinement"] = {"levels": [2, 1], "iterations": [7]}
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="registration_refinement"):
        refinement_schedule(load_bundle(tiny_bundle, device="cpu"))
    for lr, expected in ((0.2, 0.2), ([0.1, 0.3], (0.1, 0.3)), ([0.25], 0.25)):
        cfg["registration_refinement"] = {"levels": [2, 1], "iterations": [7, 3], "lr": lr}
        cfg_path.write_text(json.dumps(cfg))
        assert refinement_schedule(load_bundle(tiny_bundle, device="cpu"))["lr"] == expected
    for lr in (-0.1, 0, [0.1, 0.2, 0.3], "fast", True):
        cfg["registration_refinement"] = {"levels": [2, 1], "iterations": [7, 3], "lr": lr}
        cfg_path.write_text(json.dumps(cfg))
        with pytest.raises(ValueError, match="'lr' must be a number > 0"):
            refinement_schedule(load_bundle(tiny_bundle, device="cpu"))
