"""Tests of scripts/compare_registration.py on a tiny synthetic pair with a known constant-translation true DDF."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (24, 24, 24)
SPACING = 2.0
SHIFT = np.array([1.5, -1.0, 0.5])  # true pull DDF in voxels: fixed(x) = moving(x + SHIFT)
AFFINE = np.array([[SPACING, 0, 0, -23.0], [0, SPACING, 0, -20.0], [0, 0, SPACING, -25.0], [0, 0, 0, 1.0]])
TINY_CONFIG = {
    "spatial_size": [16, 16, 16],
    "network_def": {
        "_target_": "monai_reg_ext.networks.RegistrationNet",
        "backbone": "localnet",
        "method": "ddf",
        "spatial_dims": 3,
        "backbone_kwargs": {"num_channel_initial": 4, "extract_levels": [0, 1, 2]},
    },
}


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_registration", ROOT / "scripts" / "compare_registration.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_registration"] = module
    spec.loader.exec_module(module)
    return module


cr = _load_script()


def _installed(module: str, dist: str) -> bool:
    """Whether ``module`` can be found and its distribution ``dist`` is installed (without importing it: ITK's lazy
    loading of the elastix module alone takes 10-15 s)."""
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _blob(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic ellipsoid 'brain' sampled at voxel positions ``points`` (3, *S): image, GM shell, WM core."""
    c = np.array([11.5, 11.5, 11.5])[:, None, None, None]
    r = np.sqrt((((points - c) / np.array([7.0, 6.0, 6.5])[:, None, None, None]) ** 2).sum(0))
    image = np.clip(1.2 - r, 0, 1) * 200 + 20 * (r < 1)
    wm = r < 0.6
    gm = (r >= 0.6) & (r < 1.0)
    return image, gm, wm


def _write_pair(folder: Path) -> Path:
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in SHAPE], indexing="ij"))
    mov, mgm, mwm = _blob(grid)
    fix, fgm, fwm = _blob(grid + SHIFT[:, None, None, None])
    for sub in ("images", "labels", "true_ddf"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(mov.astype(np.float32), AFFINE), folder / "images" / "mov.nii.gz")
    nib.save(nib.Nifti1Image(fix.astype(np.float32), AFFINE), folder / "images" / "fix.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([mgm, mwm], -1).astype(np.uint8), AFFINE), folder / "labels" / "mov.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([fgm, fwm], -1).astype(np.uint8), AFFINE), folder / "labels" / "fix.nii.gz")
    ddf = np.broadcast_to(SHIFT, (*SHAPE, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(ddf, AFFINE), folder / "true_ddf" / "pair_00.nii.gz")
    entry = {
        "moving": "images/mov.nii.gz",
        "fixed": "images/fix.nii.gz",
        "moving_label": "labels/mov.nii.gz",
        "fixed_label": "labels/fix.nii.gz",
        "ddf": "true_ddf/pair_00.nii.gz",
    }
    path = folder / "pairs.json"
    path.write_text(json.dumps([entry]))
    return path


def _write_bundle(folder: Path) -> Path:
    from monai.bundle import ConfigParser

    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps(TINY_CONFIG))
    parser = ConfigParser(TINY_CONFIG)
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def", instantiate=True)
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder


@pytest.fixture()
def pair_file(tmp_path):
    return _write_pair(tmp_path / "data")


def test_none_true_and_network(tmp_path, pair_file, monkeypatch):
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # restored after the test
    bundle = _write_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    res = cr.main(str(pair_file), bundle=str(bundle), methods="none,network", output=str(out), threads=1)
    assert res["methods"] == ["none", "network", "true_ddf"]
    rows = {r["method"]: r for r in res["pairs"]}
    # identity: the error is the true translation, |SHIFT| voxels of 2 mm, everywhere in the brain
    assert rows["none"]["error_mm"] == pytest.approx(float(np.linalg.norm(SHIFT)) * SPACING, abs=1e-5)
    assert rows["none"]["folding_pct"] == 0.0 and rows["none"]["sdlogj"] == pytest.approx(0.0, abs=1e-6)
    assert rows["true_ddf"]["error_mm"] == pytest.approx(0.0, abs=1e-6)
    # a constant shift has Jacobian 1: no folding, SDlogJ 0; the true DDF beats no registration
    assert rows["true_ddf"]["sdlogj"] == pytest.approx(0.0, abs=1e-5)
    assert rows["true_ddf"]["dice_gm"] > rows["none"]["dice_gm"]
    assert rows["true_ddf"]["dice_wm"] > 0.9
    for r in res["pairs"]:
        for k in ("dice_gm", "dice_wm"):
            assert 0.0 <= r[k] <= 1.0
        assert np.isfinite(r["error_mm"])
    assert rows["network"]["seconds"] > 0 and "network_seconds" in rows["network"]
    assert res["summary"]["none"]["dice_gm"]["n"] == 1
    for name in ("results.json", "results.csv", "results.md", "error_maps.png"):
        assert (out / name).is_file(), name
    table = (out / "results.md").read_text()
    assert table.startswith("| method | s/pair | Dice GM") and "| network |" in table
    assert json.loads((out / "results.json").read_text())["environment"]["torch_threads"] == 1


def test_load_pair_rejects_different_grids(pair_file):
    img = nib.load(pair_file.parent / "images" / "mov.nii.gz")
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted), pair_file.parent / "images" / "mov.nii.gz")
    entry = json.loads(pair_file.read_text())[0]
    with pytest.raises(ValueError, match="share one grid"):
        cr.load_pair(entry, pair_file.parent)


def test_unknown_method(pair_file, tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        cr.main(str(pair_file), methods="none,foo", output=str(tmp_path / "o"), threads=1)


def _expected_voxel_shift(direction, spacing, t_mm) -> np.ndarray:
    return np.linalg.solve(np.asarray(direction) @ np.diag(spacing), np.asarray(t_mm, dtype=np.float64))


@pytest.mark.skipif(not _installed("ants", "antspyx"), reason="antspyx not installed (optional peer)")
def test_ants_coordinate_trick(pair_file, tmp_path):
    import ants

    root = pair_file.parent
    fixed = ants.image_read(str(root / "images" / "fix.nii.gz"), pixeltype="float")
    moving = ants.image_read(str(root / "images" / "mov.nii.gz"), pixeltype="float")
    for t_mm in ((0.0, 0.0, 0.0), (3.0, -2.0, 5.0)):  # identity, then a translation (ANTs physical frame, LPS)
        tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3, translation=t_mm)
        path = str(tmp_path / "tx.mat")
        ants.write_transform(tx, path)
        ddf = cr.ants_ddf_from_transforms(fixed, moving, [path])
        expected = _expected_voxel_shift(fixed.direction, fixed.spacing, t_mm)
        np.testing.assert_allclose(ddf, np.broadcast_to(expected[:, None, None, None], ddf.shape), atol=1e-4)
        # frame-free check: ANTs' own resampling equals warp_image with the extracted DDF
        warped = ants.apply_transforms(fixed, moving, [path], interpolator="linear").numpy()
        ours = cr.warp_image(torch.as_tensor(moving.numpy())[None, None], torch.as_tensor(ddf).float()[None])
        interior = (slice(4, -4),) * 3
        np.testing.assert_allclose(ours[0, 0].numpy()[interior], warped[interior], atol=1e-3)
    # the NIfTI (RAS) -> ANTs (LPS) flip: +x mm in LPS is -x in RAS, i.e. towards lower i on this grid
    assert expected[0] == pytest.approx(-3.0 / SPACING) and expected[2] == pytest.approx(5.0 / SPACING)


@pytest.mark.slow  # loading ITK's elastix module takes 10-15 s on a shared 2-core CPU; the trick itself < 0.1 s
@pytest.mark.skipif(not _installed("itk", "itk-elastix"), reason="itk-elastix not installed (optional peer)")
def test_elastix_coordinate_trick(pair_file):
    import itk

    moving = itk.imread(str(pair_file.parent / "images" / "mov.nii.gz"), itk.F)
    origin, spacing, direction = cr._itk_geometry(moving)
    for t_mm in ((0.0, 0.0, 0.0), (3.0, -2.0, 5.0)):
        params = itk.ParameterObject.New()
        params.AddParameterMap(
            {
                "Transform": ["TranslationTransform"],
                "NumberOfParameters": ["3"],
                "TransformParameters": [str(v) for v in t_mm],
                "InitialTransformParameterFileName": ["NoInitialTransform"],
                "HowToCombineTransforms": ["Compose"],
                "FixedImageDimension": ["3"],
                "MovingImageDimension": ["3"],
                "FixedInternalImagePixelType": ["float"],
                "MovingInternalImagePixelType": ["float"],
                "Size": [str(int(s)) for s in itk.size(moving)],
                "Index": ["0", "0", "0"],
                "Spacing": [str(v) for v in spacing],
                "Origin": [str(v) for v in origin],
                "Direction": [str(v) for v in direction.T.ravel()],
                "UseDirectionCosines": ["true"],
                "ResampleInterpolator": ["FinalBSplineInterpolator"],
                "FinalBSplineInterpolationOrder": ["3"],
                "Resampler": ["DefaultResampler"],
                "DefaultPixelValue": ["0"],
                "ResultImageFormat": ["nii"],
                "ResultImagePixelType": ["short"],
            }
        )
        ddf = cr.elastix_ddf_from_parameters(moving, params)
        expected = _expected_voxel_shift(direction, spacing, t_mm)
        np.testing.assert_allclose(ddf, np.broadcast_to(expected[:, None, None, None], ddf.shape), atol=1e-4)


def test_missing_peer_is_skipped(pair_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    monkeypatch.setattr(cr, "_peer_available", lambda method: (False, "ModuleNotFoundError: no module"))
    res = cr.main(str(pair_file), methods="none,ants_syn", output=str(tmp_path / "o"), threads=1, figure=False)
    assert res["methods"] == ["none", "true_ddf"] and "ants_syn" in res["skipped"]
    assert "note: skipping ants_syn" in capsys.readouterr().out
