"""monai_reg_ext.evaluation.methods and peers: method tables, networks, optional peers skipped cleanly."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import pytest
import torch

from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.evaluation import peers
from monai_reg_ext.spatial import warp_image

from .conftest import BLOB_SHAPE, SHIFT


def _installed(module: str, dist: str) -> bool:
    """Whether ``module`` can be found and ``dist`` is installed, without importing it (ITK's elastix module alone
    takes 10-15 s to load)."""
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def blob(blob_pairs) -> ev.Pair:
    return ev.load_pair(ev.read_pairs(blob_pairs)[0])


def test_select_methods_names_and_errors(tiny_bundle):
    model = load_bundle(tiny_bundle)
    methods, skipped = ev.select_methods(["none", "true_ddf", "network", "network:a+io3"], {"a": model}, log=None)
    assert list(methods) == ["none", "true_ddf", "network", "network:a+io3"] and skipped == {}
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        ev.select_methods(["foo"])
    with pytest.raises(ValueError, match="expected a network among"):
        ev.select_methods(["network:b"], {"a": model})


def test_a_missing_peer_is_skipped_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(peers, "peer_available", lambda name: (False, "ModuleNotFoundError: No module named 'ants'"))
    notes = []
    methods, skipped = ev.select_methods(["none", "ants_syn"], log=notes.append)
    assert list(methods) == ["none"] and skipped == {"ants_syn": "ModuleNotFoundError: No module named 'ants'"}
    assert notes == [
        "note: skipping ants_syn: its package is not importable (ModuleNotFoundError: No module named 'ants')."
    ]


def test_peer_available_reports_an_unimportable_package(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_greedy(name, *args, **kwargs):
        if name == "picsl_greedy":
            raise ImportError("picsl_greedy is not installed")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_greedy)
    assert ev.peer_available("greedy") == (False, "ImportError: picsl_greedy is not installed")
    with pytest.raises(ValueError, match="unknown peer"):
        ev.peer_available("flirt")


def test_network_register_and_true_ddf_methods(tiny_bundle, blob):
    model = load_bundle(tiny_bundle)
    out = ev.register_bundle(model)(blob)
    assert out.ddf.shape == (1, 3, *BLOB_SHAPE) and out.seconds > 0 and "network_seconds" in out.extras
    assert out.warped_image.shape == (1, 1, *BLOB_SHAPE)
    small = ev.Pair("s", torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16))
    net_out = ev.network(model)(small)
    assert net_out.ddf.shape == (1, 3, 16, 16, 16) and net_out.warped_image.shape == (1, 1, 16, 16, 16)
    truth = ev.true_ddf()(blob)
    np.testing.assert_allclose(truth.ddf[0, :, 0, 0, 0].numpy(), SHIFT) and np.isnan(truth.seconds)
    blob.true_ddf = None
    with pytest.raises(ValueError, match="needs a true DDF"):
        ev.true_ddf()(blob)


def test_optimisation_method_reduces_the_error(blob):
    out = ev.optimisation(transform="affine", levels=(2, 1), iterations=(20, 10))(blob)
    scores = ev.score_pair(blob, out, [ev.ddf_error("label")])
    assert out.ddf.shape == (1, 3, *BLOB_SHAPE) and scores["error_mm"] < float(np.linalg.norm(SHIFT)) * 2.0


def _expected_voxel_shift(direction, spacing, t_mm) -> np.ndarray:
    return np.linalg.solve(np.asarray(direction) @ np.diag(spacing), np.asarray(t_mm, dtype=np.float64))


@pytest.mark.skipif(not _installed("ants", "antspyx"), reason="antspyx not installed (optional peer)")
def test_ants_coordinate_trick(blob_pairs, tmp_path):
    import ants

    root = blob_pairs.parent
    fixed = ants.image_read(str(root / "fix.nii.gz"), pixeltype="float")
    moving = ants.image_read(str(root / "mov.nii.gz"), pixeltype="float")
    for t_mm in ((0.0, 0.0, 0.0), (3.0, -2.0, 5.0)):  # identity, then a translation (ANTs physical frame, LPS)
        tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3, translation=t_mm)
        path = str(tmp_path / "tx.mat")
        ants.write_transform(tx, path)
        ddf = peers.ants_ddf_from_transforms(fixed, moving, [path])
        expected = _expected_voxel_shift(fixed.direction, fixed.spacing, t_mm)
        np.testing.assert_allclose(ddf, np.broadcast_to(expected[:, None, None, None], ddf.shape), atol=1e-4)
        warped = ants.apply_transforms(fixed, moving, [path], interpolator="linear").numpy()
        ours = warp_image(torch.as_tensor(moving.numpy())[None, None], torch.as_tensor(ddf).float()[None])
        interior = (slice(4, -4),) * 3
        np.testing.assert_allclose(ours[0, 0].numpy()[interior], warped[interior], atol=1e-3)
    # the NIfTI (RAS) -> ANTs (LPS) flip: +x mm in LPS is -x in RAS, i.e. towards lower i on this grid
    assert expected[0] == pytest.approx(-3.0 / 2.0) and expected[2] == pytest.approx(5.0 / 2.0)


@pytest.mark.skipif(not _installed("picsl_greedy", "picsl_greedy"), reason="picsl-greedy not installed (optional peer)")
def test_greedy_coordinate_trick(blob_pairs, tmp_path):
    """A greedy RAS-physical translation matrix applied through the coordinate images gives the analytic DDF."""
    root = blob_pairs.parent
    pair = ev.load_pair(ev.read_pairs(blob_pairs)[0])
    t_mm = np.array([3.0, -2.0, 5.0])  # greedy's matrices map fixed to moving points in RAS mm
    mat = np.eye(4)
    mat[:3, 3] = t_mm
    np.savetxt(tmp_path / "t.mat", mat)
    ddf = peers.greedy_ddf_from_transforms(
        str(root / "fix.nii.gz"), pair.spatial_shape, pair.moving_affine, [str(tmp_path / "t.mat")]
    )
    expected = np.linalg.solve(pair.fixed_affine[:3, :3], t_mm)
    inner = (slice(None), slice(3, -3), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(ddf[inner], np.broadcast_to(expected[:, None, None, None], ddf.shape)[inner], atol=1e-3)


@pytest.mark.slow  # loading ITK's elastix module takes 10-15 s on a shared 2-core CPU; the trick itself < 0.1 s
@pytest.mark.skipif(not _installed("itk", "itk-elastix"), reason="itk-elastix not installed (optional peer)")
def test_elastix_coordinate_trick(blob_pairs):
    import itk

    moving = itk.imread(str(blob_pairs.parent / "mov.nii.gz"), itk.F)
    origin, spacing, direction = peers.itk_geometry(moving)
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
        ddf = peers.elastix_ddf_from_parameters(moving, params)
        expected = _expected_voxel_shift(direction, spacing, t_mm)
        np.testing.assert_allclose(ddf, np.broadcast_to(expected[:, None, None, None], ddf.shape), atol=1e-4)


def test_register_pipeline_method(blob):
    """Bundle-free ``register`` as a method: its own defaults through ``register``, schedule options through its
    steps; both recover the blob's translation; ``pipeline[:similarity]`` names build it."""
    inside = blob.fixed_label[0].amax(0) > 0.5
    shift = torch.as_tensor(SHIFT, dtype=torch.float32).view(3, 1, 1, 1)
    out = ev.register_pipeline(stages="affine")(blob)
    assert out.ddf.shape == (1, 3, *BLOB_SHAPE) and out.warped_image.shape == (1, 1, *BLOB_SHAPE)
    assert out.seconds > 0 and {"cpu_seconds", "initial_seconds", "affine_seconds"} <= set(out.extras)
    assert float((out.ddf[0] - shift).norm(dim=0)[inside].mean()) < 0.5
    staged = ev.register_pipeline(stages="affine", affine_levels=(2, 1), affine_iterations=(30, 10))(blob)
    assert staged.extras["affine_iterations"] <= 40 and "deformable_iterations" not in staged.extras
    assert float((staged.ddf[0] - shift).norm(dim=0)[inside].mean()) < 0.5
    methods, skipped = ev.select_methods(["none", "pipeline", "pipeline:mi"], log=None)
    assert list(methods) == ["none", "pipeline", "pipeline:mi"] and skipped == {}
    blob.spec = None
    with pytest.raises(ValueError, match="needs the pair's files"):
        ev.register_pipeline()(blob)
