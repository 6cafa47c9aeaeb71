"""The NIfTI header check of load_input (io.inputs.check_affine) starts ITK only when the header leaves a doubt: a
header whose sform and qform are both set and equal is read alike by nibabel, MONAI and ITK (issue 22: ITK's first
header read costs about 2 s in a fresh process)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from monai_reg_ext.io import images, inputs


def _nifti(path, sform_code: int, qform_code: int, qform_shift: float = 0.0):
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = (-10.0, 4.0, 7.0)
    img = nib.Nifti1Image(np.random.default_rng(0).random((6, 7, 8), dtype=np.float32), affine)
    qform = affine.copy()
    qform[0, 3] += qform_shift
    img.set_qform(qform, code=qform_code)
    img.set_sform(affine, code=sform_code)
    nib.save(img, str(path))
    return path


@pytest.fixture
def itk_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = images.itk_header_affine

    def counted(path):
        calls.append(str(path))
        return original(path)

    monkeypatch.setattr(images, "itk_header_affine", counted)
    return calls


def test_agreeing_sform_and_qform_need_no_itk(tmp_path, itk_calls):
    img = inputs.load_input(_nifti(tmp_path / "a.nii.gz", 1, 1), "fixed", 3)
    assert itk_calls == [] and np.allclose(np.asarray(img.affine)[0, 3], -10.0)


def test_other_headers_are_still_checked_with_itk(tmp_path, itk_calls):
    inputs.load_input(_nifti(tmp_path / "s.nii.gz", 1, 0), "fixed", 3)  # sform alone
    assert len(itk_calls) == 1
    with pytest.raises(ValueError, match="ambiguous NIfTI header"):
        inputs.load_input(_nifti(tmp_path / "d.nii.gz", 2, 1, qform_shift=5.0), "fixed", 3)
    assert len(itk_calls) == 2
