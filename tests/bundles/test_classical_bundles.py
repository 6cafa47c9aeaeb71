"""The classical (optimisation-based) bundles: their ``run`` entries on the shipped data, and their data scripts.

``classical_ct_headneck_affine`` and ``classical_mr_prostate_nonrigid`` have no network: ``monai.bundle.run`` of their
``inference.json`` registers the shipped pairs with ``monai_reg_ext.optimise.register_by_optimisation``. The runs here
use reduced iteration budgets (overrides by ``#`` paths) so that the module takes well under a minute on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run

from tests.helpers import BUNDLES_DIR, load_bundle_script, parse_bundle_config

CT = BUNDLES_DIR / "classical_ct_headneck_affine"
PROSTATE = BUNDLES_DIR / "classical_mr_prostate_nonrigid"


def _run(bundle: Path, out: Path, **override) -> dict:
    torch.manual_seed(0)
    run(
        run_id="run",
        config_file=str(bundle / "configs" / "inference.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        bundle_root=str(bundle),
        output_dir=str(out),
        **override,
    )
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("bundle", [CT, PROSTATE], ids=lambda b: b.name)
def test_configs_share_the_optimisation(bundle):
    """train.json and inference.json define the same optimisation; evaluate/multi-GPU only override by ``#`` paths."""
    configs = {n: json.loads((bundle / "configs" / f"{n}.json").read_text()) for n in ("train", "inference")}
    for key in ("optimisation", "image_loss", "register", "pairs_file"):
        assert configs["train"][key] == configs["inference"][key], key
    for name in ("evaluate", "multi_gpu_train"):
        parser = parse_bundle_config(bundle, ["train.json", f"{name}.json"])
        assert parser.get_parsed_content("optimisation")["lr"] == configs["train"]["optimisation"]["lr"]
    assert torch.load(bundle / "models" / "model.pt", weights_only=True)


def test_ct_affine_run_recovers_the_affine(tmp_path):
    metrics = _run(CT, tmp_path, **{"optimisation#levels": [4, 2], "optimisation#iterations": [80, 30]})
    assert set(metrics) == {"3d", "2d"}
    for name, m in metrics.items():
        before, after = m["displacement_error_mm_before"]["mean"], m["displacement_error_mm_after"]["mean"]
        assert after < 0.15 * before and after < 1.0, (name, before, after)
        assert m["matrix_max_abs_error_after"] < m["matrix_max_abs_error_before"], name
        assert min(m["dice_after"]) > 0.85 and all(a > b for a, b in zip(m["dice_after"], m["dice_before"])), name
        theta = json.loads((tmp_path / name / "theta.json").read_text())
        ndim = len(m["spatial_shape"])
        assert np.asarray(theta["recovered"]).shape == (ndim, ndim + 1)
        for f in ("warped.nii.gz", "warped_label.nii.gz", "ddf.nii.gz", "loss_curve.json"):
            assert (tmp_path / name / f).is_file(), f


def test_prostate_nonrigid_run_improves_alignment(tmp_path):
    override = {"optimisation#levels": [4, 2], "optimisation#iterations": [60, 30], "pairs": ["pair_00"]}
    m = _run(PROSTATE, tmp_path, **override)["pair_00"]
    assert m["dice_after"] > m["dice_before"] + 0.02
    assert m["displacement_error_mm_after"]["gland"] < 0.7 * m["displacement_error_mm_before"]["gland"]
    assert m["folding_fraction"] < 0.01
    assert m["loss_final"] < m["loss_initial"]
    for f in ("warped.nii.gz", "warped_label.nii.gz", "ddf.nii.gz"):
        assert (tmp_path / "pair_00" / f).is_file(), f


def _fake_head_ct(path: Path, ndim: int) -> None:
    """A tiny fake CT (HU): an ellipsoid 'head' with a bone shell, soft tissue and a dark 'ventricle'."""
    shape = (40, 44, 36) if ndim == 3 else (120, 128)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = sum((g / a) ** 2 for g, a in zip(grid, (0.8, 0.7, 0.75)))
    background = 0.0 if ndim == 3 else -1024.0
    hu = np.where(r < 1, 35.0, background)
    hu = np.where((r > 0.8) & (r < 1) & (ndim == 2), 900.0, hu)
    hu = np.where(sum((g / 0.2) ** 2 for g in grid) < 1, 5.0, hu)
    nib.save(nib.Nifti1Image(hu.astype(np.int16), np.eye(4)), str(path))


def test_ct_data_script_is_deterministic(tmp_path):
    script = load_bundle_script(CT, "make_demo_data")
    _fake_head_ct(tmp_path / "ct.nii.gz", 3)
    _fake_head_ct(tmp_path / "slice.nii.gz", 2)
    args = ["--ct", str(tmp_path / "ct.nii.gz"), "--slice", str(tmp_path / "slice.nii.gz")]
    first = script.main([*args, "--output", str(tmp_path / "a")])
    second = script.main([*args, "--output", str(tmp_path / "b")])
    assert first["sha256"] == second["sha256"] and len(first["sha256"]) == 9
    # the true theta registers the pair: warping the moving labels with it gives back the fixed labels
    from monai_reg_ext import affine_to_ddf, warp_image
    from monai_reg_ext.io import load_image
    from monai_reg_ext.metrics import label_dice

    for pair in json.loads((tmp_path / "a" / "pairs.json").read_text()):
        ndim = len(pair["spatial_shape"])
        fixed, _ = load_image(tmp_path / "a" / pair["fixed_label"], spatial_dims=ndim)
        moving, _ = load_image(tmp_path / "a" / pair["moving_label"], spatial_dims=ndim)
        ddf = affine_to_ddf(torch.as_tensor(pair["true_theta"], dtype=torch.float32)[None], fixed.shape[1:])
        dice = label_dice(warp_image(moving[None], ddf), fixed[None])
        assert float(torch.nanmean(dice)) > 0.85, (pair["name"], dice)


def test_random_affine_matches_deepreg_scale():
    script = load_bundle_script(CT, "make_demo_data")
    theta = script.random_affine_theta((33, 33, 33), 0.2, seed=0)
    assert theta.shape == (3, 4)
    np.testing.assert_allclose(script.invert_theta(script.invert_theta(theta)), theta, atol=1e-12)
    assert np.abs(theta[:, :3] - np.eye(3)).max() < 0.45  # corners moved by at most 0.2 of the half extent
    assert not np.allclose(theta, script.random_affine_theta((33, 33, 33), 0.2, seed=1))


def test_prostate_data_script_is_deterministic(tmp_path):
    script = load_bundle_script(PROSTATE, "make_demo_data")
    args = ["--shape", "24", "24", "16", "--seeds", "3"]
    first = script.main([*args, "--output", str(tmp_path / "a")])
    second = script.main([*args, "--output", str(tmp_path / "b")])
    assert first["sha256"] == second["sha256"] and len(first["sha256"]) == 6
    pair = script.make_pair(3, (24, 24, 16))
    assert pair["moving_label"].sum() > 0 and pair["fixed_label"].sum() > 0
    assert pair["moving"].dtype == np.uint8 and pair["true_ddf"].shape == (3, 24, 24, 16)
    assert np.abs(pair["true_ddf"]).max() > 1.0
