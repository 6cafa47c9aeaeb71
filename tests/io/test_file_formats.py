"""DDF and image files in the formats ITK, SimpleITK, ANTs and 3D Slicer users exchange: float32 and float64 vector
fields (SimpleITK's ``DisplacementFieldTransform`` uses ``sitkVectorFloat64``), ``.nii`` / ``.nii.gz`` / ``.mha`` /
``.nrrd``, 2-D and 3-D (issue 19, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext.io import OUTPUT_SUFFIXES, load_ddf, load_image, save_ddf, save_image

itk = pytest.importorskip("itk")
sitk = pytest.importorskip("SimpleITK")

SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")


def oblique_affine(ndim: int) -> np.ndarray:
    """A rotated, axis-permuted, anisotropic RAS voxel-to-world affine with an offset origin."""
    if ndim == 3:
        th = 0.3
        rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
        lin = rot @ np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]]) @ np.diag([1.5, 0.8, 2.5])
        offset = [12.0, -30.0, 7.0]
    else:
        th = -0.4
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        lin = rot @ np.array([[0, -1.0], [1, 0]]) @ np.diag([2.0, 0.7])
        offset = [4.0, 7.0]
    a = np.eye(ndim + 1)
    a[:ndim, :ndim], a[:ndim, ndim] = lin, offset
    return a


def smooth_ddf(shape: tuple[int, ...]) -> torch.Tensor:
    """A smooth ``(D, *shape)`` DDF in voxels (up to about 1.5 voxels)."""
    g = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    comps = [1.5 * np.sin(g[1] / 3 + 0.2), -1.2 * np.cos(g[0] / 4)]
    if len(shape) == 3:
        comps.append(0.8 * np.sin(g[0] / 5 + g[2] / 3))
    return torch.tensor(np.stack(comps), dtype=torch.float32)


def sitk_displacement_field(itk_file, out_file) -> None:
    """Read a float32 field with SimpleITK, make it the ``sitkVectorFloat64`` image of a ``DisplacementFieldTransform``
    and write that transform's field to ``out_file`` (the type SimpleITK users write)."""
    image = sitk.Cast(sitk.ReadImage(str(itk_file)), sitk.sitkVectorFloat64)
    transform = sitk.DisplacementFieldTransform(image)
    field = transform.GetDisplacementField()
    assert field.GetPixelID() == sitk.sitkVectorFloat64
    sitk.WriteImage(field, str(out_file))


@pytest.mark.parametrize("shape", [(9, 8, 7), (9, 8)], ids=["3d", "2d"])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_simpleitk_float64_field_reads_as_the_itk_float32_field(tmp_path, shape, suffix):
    ndim = len(shape)
    affine = oblique_affine(ndim)
    ddf = smooth_ddf(shape)
    reference = save_ddf(tmp_path / "reference.nii.gz", ddf, affine)  # ITK-written float32 vectors
    ref, ref_affine = load_ddf(reference)
    torch.testing.assert_close(ref, ddf, atol=1e-5, rtol=0)
    sitk_file = tmp_path / f"sitk{suffix}"
    sitk_displacement_field(reference, sitk_file)
    out, out_affine = load_ddf(sitk_file)
    assert out.dtype == torch.float32 and out.shape == ddf.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out_affine.numpy(), ref_affine.numpy(), atol=1e-6)
    # the same field written by ITK (float32) in this format reads back the same
    itk_file = save_ddf(tmp_path / f"itk{suffix}", ddf, affine)
    torch.testing.assert_close(load_ddf(itk_file)[0], ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(load_ddf(itk_file)[1].numpy(), affine, atol=1e-6)


def test_itk_writes_identical_geometry_in_every_format(tmp_path):
    """save_ddf gives the same ITK field (vectors, spacing, origin, direction) in every output format."""
    ddf, affine = smooth_ddf((6, 5, 4)), oblique_affine(3)
    fields = [itk.imread(str(save_ddf(tmp_path / f"d{s}", ddf, affine))) for s in SUFFIXES]
    for f in fields[1:]:
        np.testing.assert_allclose(itk.array_from_image(f), itk.array_from_image(fields[0]), atol=1e-6)
        np.testing.assert_allclose(np.asarray(f.GetSpacing()), np.asarray(fields[0].GetSpacing()), atol=1e-6)
        np.testing.assert_allclose(np.asarray(f.GetOrigin()), np.asarray(fields[0].GetOrigin()), atol=1e-6)
        np.testing.assert_allclose(
            itk.array_from_matrix(f.GetDirection()), itk.array_from_matrix(fields[0].GetDirection()), atol=1e-6
        )


def test_load_ddf_rejects_scalar_and_non_vector_files(tmp_path):
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkFloat64), str(tmp_path / "scalar.mha"))
    with pytest.raises(ValueError, match="scalar.mha.*1-component double"):
        load_ddf(tmp_path / "scalar.mha")
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat64, 2), str(tmp_path / "two.nrrd"))
    with pytest.raises(ValueError, match="two.nrrd"):
        load_ddf(tmp_path / "two.nrrd")
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="x.png"):
        load_ddf(tmp_path / "x.png")


@pytest.mark.parametrize("ndim, channels", [(3, 1), (3, 2), (2, 1), (2, 3)])
@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_save_image_itk_formats_round_trip(tmp_path, ndim, channels, suffix):
    """``.mha`` / ``.nrrd`` images keep the array, channels and affine, and have the NIfTI file's ITK geometry."""
    rng = np.random.default_rng(0)
    shape = (7, 6, 5)[:ndim]
    arr = rng.random((channels, *shape)).astype(np.float32)
    affine = oblique_affine(ndim)
    path = save_image(tmp_path / f"img{suffix}", arr, affine)
    out, out_affine = load_image(path)
    np.testing.assert_allclose(out.numpy(), arr, atol=1e-6)
    np.testing.assert_allclose(out_affine.numpy(), affine, atol=1e-5)
    if channels == 1:  # ITK sees the same grid as in the NIfTI file
        a, b = itk.imread(str(path)), itk.imread(str(save_image(tmp_path / "img.nii.gz", arr, affine)))
        np.testing.assert_allclose(np.asarray(a.GetOrigin()), np.asarray(b.GetOrigin()), atol=1e-5)
        np.testing.assert_allclose(np.asarray(a.GetSpacing()), np.asarray(b.GetSpacing()), atol=1e-5)
        np.testing.assert_allclose(
            itk.array_from_matrix(a.GetDirection()), itk.array_from_matrix(b.GetDirection()), atol=1e-5
        )
    with pytest.raises(FileExistsError, match=f"img{suffix}"):
        save_image(path, arr, affine)


def test_save_image_itk_label_types(tmp_path):
    """Integer labels keep their values (int64 and bool written as types ITK wraps)."""
    labels = np.arange(60).reshape(5, 4, 3) % 4
    for name, arr in (("int64", labels.astype(np.int64)), ("bool", labels > 1), ("uint8", labels.astype(np.uint8))):
        out, _ = load_image(save_image(tmp_path / f"{name}.nrrd", arr, np.eye(4)), dtype=None)
        np.testing.assert_array_equal(out[0].numpy(), np.asarray(arr, dtype=np.int64))


@pytest.mark.parametrize("name", ["out.png", "out.nii.zip", "out", "out.mhd"])
def test_unsupported_suffix_is_named(tmp_path, name):
    for write in (save_image, save_ddf):
        with pytest.raises(ValueError, match="cannot write a .*" + ", ".join(OUTPUT_SUFFIXES).replace(".", r"\.")):
            write(tmp_path / name, torch.zeros(3, 4, 4, 4), np.eye(4))
    assert not list(tmp_path.iterdir())
