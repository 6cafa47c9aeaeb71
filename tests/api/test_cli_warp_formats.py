"""``monai-reg warp`` with displacement fields written by SimpleITK (``sitkVectorFloat64``, as its
``DisplacementFieldTransform`` holds them) in ``.nii.gz`` / ``.mha`` / ``.nrrd``, 2-D and 3-D, against ``sitk.Resample``
with that transform; outputs in every writable format; a one-line error for another suffix (issue 19, item 1)."""

from __future__ import annotations

import numpy as np
import pytest

from monai_reg_ext.cli import main
from tests.io.test_file_formats import oblique_affine

sitk = pytest.importorskip("SimpleITK")


def sitk_image(array_xyz: np.ndarray, affine_ras: np.ndarray, vector: bool = False):
    """A SimpleITK image of an ``(x, y[, z][, D])`` array on the grid of a RAS affine (geometry in ITK's LPS)."""
    from monai_reg_ext.io import itk_geometry_from_affine

    ndim = affine_ras.shape[0] - 1
    order = (*range(ndim - 1, -1, -1), ndim) if vector else tuple(range(ndim - 1, -1, -1))
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(order)), isVector=vector)
    spacing, origin, direction = itk_geometry_from_affine(affine_ras)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(direction.flatten().tolist())
    return image


def sitk_case(ndim: int):
    """A smooth moving image and a ``DisplacementFieldTransform`` (float64, up to 3 mm, LPS) on one oblique grid."""
    shape = (24, 20, 16)[:ndim]
    affine = oblique_affine(ndim)
    g = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    moving = np.sin(g[0] / 4) + np.cos(g[1] / 5) + (np.sin(g[2] / 3 + 0.5) if ndim == 3 else 0)
    disp = np.stack([3.0 * np.sin(g[(k + 1) % ndim] / 6 + k) for k in range(ndim)], -1)  # (x, y[, z], D) mm
    field = sitk_image(disp, affine, vector=True)
    assert field.GetPixelID() == sitk.sitkVectorFloat64
    transform = sitk.DisplacementFieldTransform(sitk.Image(field))
    return sitk_image(moving.astype(np.float32), affine), field, transform


@pytest.mark.parametrize("ndim, ddf_suffix, out_suffix", [(3, ".nii.gz", ".mha"), (3, ".mha", ".nrrd"),
                                                          (2, ".nrrd", ".nii.gz"), (2, ".nii.gz", ".mha")])  # fmt: skip
def test_warp_with_simpleitk_field_matches_sitk_resample(tmp_path, ndim, ddf_suffix, out_suffix):
    moving, field, transform = sitk_case(ndim)
    sitk.WriteImage(moving, str(tmp_path / "moving.nii.gz"))
    sitk.WriteImage(field, str(tmp_path / f"ddf{ddf_suffix}"))
    out = tmp_path / f"warped{out_suffix}"
    main(["warp", "--image", str(tmp_path / "moving.nii.gz"), "--ddf", str(tmp_path / f"ddf{ddf_suffix}"),
          "--output", str(out)])  # fmt: skip
    ref = sitk.Resample(moving, moving, transform, sitk.sitkLinear, float("nan"), sitk.sitkFloat32)
    ref_arr = sitk.GetArrayFromImage(ref)
    ours = sitk.ReadImage(str(out))
    np.testing.assert_allclose(ours.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.GetDirection(), ref.GetDirection(), atol=1e-5)
    inside = np.isfinite(ref_arr)  # sitk leaves points mapped outside the image NaN
    assert inside.mean() > 0.6
    np.testing.assert_allclose(sitk.GetArrayFromImage(ours)[inside], ref_arr[inside], atol=2e-4)


def test_warp_output_suffix_error(tmp_path, capsys):
    moving, field, _ = sitk_case(2)
    sitk.WriteImage(moving, str(tmp_path / "moving.nii.gz"))
    sitk.WriteImage(field, str(tmp_path / "ddf.mha"))
    with pytest.raises(SystemExit) as exit_info:
        main(["warp", "--image", str(tmp_path / "moving.nii.gz"), "--ddf", str(tmp_path / "ddf.mha"),
              "--output", str(tmp_path / "warped.png")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "'.png'" in err and ".nii, .nii.gz, .mha, .nrrd" in err
    assert not (tmp_path / "warped.png").exists()
