"""NIfTI DDFs written with nibabel (issue 22: no ITK on the default ``register`` path) are the files ITK's writer made:
the same voxels, header layout and geometry for ITK, SimpleITK and monai-reg; and a default ``.nii.gz`` register loads
none of ITK's compiled modules."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.io import ddf as ddf_module
from monai_reg_ext.io import load_ddf, save_ddf, save_image
from tests.helpers import REPO_ROOT, make_tiny_bundle
from tests.io.test_file_formats import oblique_affine, smooth_ddf

itk = pytest.importorskip("itk")
sitk = pytest.importorskip("SimpleITK")


def left_handed(ndim: int) -> np.ndarray:
    """:func:`oblique_affine` with its first voxel axis reversed (negative determinant: qfac -1 in 3-D)."""
    a = oblique_affine(ndim)
    a[:ndim, 0] *= -1
    return a


def diagonal(ndim: int) -> np.ndarray:
    a = np.diag([2.0, 3.0, 4.0, 1.0][-ndim - 1 :])
    a[:ndim, ndim] = 5.0
    return a


def itk_written(path: Path, ddf: torch.Tensor, affine: np.ndarray) -> Path:
    """The DDF file ITK's writer makes (what ``save_ddf`` wrote for ``.nii.gz`` before issue 22)."""
    d = torch.as_tensor(ddf, dtype=torch.float64)
    ddf_module._write_itk_field(path, ddf_module._lps_mm_field(d, torch.as_tensor(affine)), affine)
    return path


def raw(path: Path) -> bytes:
    return gzip.open(path).read() if path.name.endswith(".gz") else path.read_bytes()


CASES = [
    pytest.param((9, 8, 7), make, suffix, id=f"3d-{make.__name__}-{suffix}")
    for make in (oblique_affine, left_handed, diagonal)
    for suffix in (".nii.gz", ".nii")
] + [pytest.param((9, 8), make, ".nii.gz", id=f"2d-{make.__name__}") for make in (oblique_affine, left_handed)]


@pytest.mark.parametrize("shape, make_affine, suffix", CASES)
def test_nibabel_ddf_is_the_itk_written_file(tmp_path, shape, make_affine, suffix):
    """Same voxel bytes and header (dims, intent, units, pixdim, qform) as ITK's file; the sform agrees to float32
    rounding (ITK wrote it back from the quaternion; signed zeros may differ); ITK, SimpleITK and load_ddf read the
    same field and geometry."""
    ndim = len(shape)
    affine, ddf = make_affine(ndim), smooth_ddf(shape)
    ours = save_ddf(tmp_path / f"nib{suffix}", ddf, affine)
    theirs = itk_written(tmp_path / f"itk{suffix}", ddf, affine)
    assert raw(ours)[352:] == raw(theirs)[352:]  # the voxels, byte for byte (no extension in either)
    h_ours, h_theirs = nib.load(str(ours)).header, nib.load(str(theirs)).header
    assert h_ours["dim"].tolist() == h_theirs["dim"].tolist() == [5, *shape, *([1] * (3 - ndim)), 1, ndim, 1, 1]
    assert int(h_ours["intent_code"]) == 1007 and h_ours.get_data_dtype() == np.float32
    for key in ("intent_code", "datatype", "bitpix", "xyzt_units", "qform_code", "sform_code", "regular"):
        assert h_ours[key] == h_theirs[key], key
    np.testing.assert_array_equal(h_ours["pixdim"], h_theirs["pixdim"])
    # the qform (quaternion b, c, d may change sign together for a rotation by 180 degrees: the same matrix)
    np.testing.assert_allclose(h_ours.get_qform(), h_theirs.get_qform(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h_ours.get_sform(), h_theirs.get_sform(), rtol=1e-6, atol=1e-6)
    assert np.abs(h_ours.get_sform()[:ndim, :ndim] - affine[:ndim, :ndim]).max() < 1e-6  # the fixed affine itself

    a, b = itk.imread(str(ours)), itk.imread(str(theirs))
    np.testing.assert_array_equal(itk.array_from_image(a), itk.array_from_image(b))
    assert a.GetImageDimension() == b.GetImageDimension() == ndim
    for get in (lambda f: np.asarray(f.GetSpacing()), lambda f: np.asarray(f.GetOrigin())):
        np.testing.assert_allclose(get(a), get(b), atol=1e-6)
    np.testing.assert_allclose(
        itk.array_from_matrix(a.GetDirection()), itk.array_from_matrix(b.GetDirection()), atol=1e-6
    )

    s, t = sitk.ReadImage(str(ours)), sitk.ReadImage(str(theirs))
    assert s.GetPixelID() == t.GetPixelID() == sitk.sitkVectorFloat32 and s.GetDimension() == ndim
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s), sitk.GetArrayFromImage(t))
    for get in (sitk.Image.GetSpacing, sitk.Image.GetOrigin, sitk.Image.GetDirection):
        np.testing.assert_allclose(get(s), get(t), atol=1e-6)
    sitk.DisplacementFieldTransform(sitk.Cast(s, sitk.sitkVectorFloat64))  # SimpleITK takes it as a displacement field

    (d_ours, a_ours), (d_theirs, a_theirs) = load_ddf(ours), load_ddf(theirs)
    torch.testing.assert_close(d_ours, d_theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(d_ours, ddf, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a_ours.numpy(), a_theirs.numpy(), atol=1e-6)
    np.testing.assert_allclose(a_ours.numpy(), affine, atol=1e-5)


def test_nifti_ddf_and_image_carry_the_fixed_affine(tmp_path):
    """The DDF and the warped image written by nibabel hold the fixed image's affine (same sform, qform and codes)."""
    affine, ddf = oblique_affine(3), smooth_ddf((9, 8, 7))
    img = nib.load(str(save_image(tmp_path / "warped.nii.gz", np.zeros((1, 9, 8, 7), np.float32), affine)))
    field = nib.load(str(save_ddf(tmp_path / "ddf.nii.gz", ddf, affine)))
    for h in (img.header, field.header):
        np.testing.assert_allclose(h.get_sform(), affine, atol=1e-6)
        np.testing.assert_allclose(h.get_qform(), affine, atol=1e-5)
        assert int(h["sform_code"]) == int(h["qform_code"]) == 1
    np.testing.assert_array_equal(img.header.get_sform(), field.header.get_sform())


def test_sheared_grid_falls_back_to_the_itk_writer(tmp_path):
    """A sheared affine (which a NIfTI qform cannot hold) is written as before, by ITK."""
    affine = oblique_affine(3)
    affine[0, 1] += 0.3
    ddf = smooth_ddf((6, 5, 4))
    ours = save_ddf(tmp_path / "ddf.nii.gz", ddf, affine)
    theirs = itk_written(tmp_path / "itk.nii.gz", ddf, affine)
    assert raw(ours) == raw(theirs)


CHILD = """
import json, sys
from monai_reg_ext.cli import main
args = json.loads(sys.argv[1])
main(args)
loaded = lambda: sorted(m for m in sys.modules if m.startswith("itk.") and m.endswith("Python"))
before = loaded()
from monai_reg_ext.io import save_ddf
import torch, numpy as np
save_ddf(args[3] + "/control.mha", torch.zeros(3, 4, 4, 4), np.eye(4))  # control: ITK's modules do show up here
print(json.dumps({"register": before, "after_mha": len(loaded())}))
"""


def test_default_register_does_not_load_itk(tmp_path):
    """A cold ``monai-reg register`` of a NIfTI pair (sform = qform) writing ``.nii.gz`` outputs loads none of ITK's
    compiled modules (MONAI imports the lazy ``itk`` package itself, at no cost; loading ITK costs seconds)."""
    bundle = make_tiny_bundle(tmp_path / "bundle", random_output=True)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (20, 18, 14)], indexing="ij"))
    affine = np.diag([1.5, 1.2, 2.0, 1.0])
    files = []
    for name, shift in (("moving", 0.1), ("fixed", 0.0)):
        image = np.exp(-(((grid - shift) ** 2).sum(0)) * 3).astype(np.float32)
        files.append(str(save_image(tmp_path / f"{name}.nii.gz", image, affine)))
    out = tmp_path / "out"
    args = ["register", *files, str(out), "--bundle", str(bundle), "--device", "cpu", "--threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                         cwd=REPO_ROOT, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert found["register"] == [], f"ITK modules loaded by a default register: {found['register'][:5]}"
    assert found["after_mha"] > 0  # the check sees ITK when it is loaded
    assert (out / "ddf.nii.gz").is_file() and (out / "warped_moving.nii.gz").is_file()
    field, field_affine = load_ddf(out / "ddf.nii.gz")
    assert field.shape == (3, 20, 18, 14)
    np.testing.assert_allclose(field_affine.numpy(), affine, atol=1e-6)
