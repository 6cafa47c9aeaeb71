from __future__ import annotations

import hashlib
from pathlib import Path

from monai_reg_ext.data.manifest import compare_file_hashes, sha256_file


def test_sha256_and_three_way_comparison(tmp_path, capsys):
    (tmp_path / "a.bin").write_bytes(b"abc")
    h = sha256_file(tmp_path / "a.bin")
    assert h == hashlib.sha256(b"abc").hexdigest()
    assert compare_file_hashes({"a.bin": h}, {"a.bin": h}, tmp_path)
    assert "check: OK" in capsys.readouterr().out
    assert not compare_file_hashes({"a.bin": h}, {"a.bin": "other"}, tmp_path)  # regeneration differs
    assert not compare_file_hashes({"a.bin": h, "b.bin": h}, {"a.bin": h, "b.bin": h}, tmp_path)  # b missing on disk
    (tmp_path / "a.bin").write_bytes(b"changed")
    assert not compare_file_hashes({"a.bin": h}, {"a.bin": h}, tmp_path, verbose=False)  # edited on disk
    assert "MISMATCH a.bin" in capsys.readouterr().out


def test_save_nifti_gz_is_byte_identical_and_keeps_affine(tmp_path):
    import nibabel as nib
    import numpy as np

    from monai_reg_ext.data.manifest import nifti_image, save_nifti_gz

    affine = np.array([[0, 0, -2.5, 10], [1.5, 0, 0, -3], [0, 2.0, 0, 7], [0, 0, 0, 1]], dtype=float)
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_nifti_gz(nifti_image(data, affine, "synthetic test " + "x" * 100), tmp_path / "a" / "one.nii.gz")
    save_nifti_gz(nifti_image(data, affine, "synthetic test " + "x" * 100), tmp_path / "two.nii.gz")
    assert sha256_file(tmp_path / "a" / "one.nii.gz") == sha256_file(tmp_path / "two.nii.gz")
    img = nib.load(tmp_path / "two.nii.gz")
    assert np.allclose(img.affine, affine) and np.array_equal(np.asarray(img.dataobj), data)
    assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
    assert img.header["descrip"].tobytes().startswith(b"synthetic test")


def test_check_regeneration(tmp_path):
    import json

    import pytest

    from monai_reg_ext.data.manifest import check_regeneration, package_version

    def generate(folder, params):
        path = Path(folder) / "f.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"value {params['value']}")
        return {"parameters": dict(params), "files": {"f.txt": sha256_file(path)}}

    out = tmp_path / "data"
    manifest = generate(out, {"value": 3})
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert check_regeneration(out, generate, verbose=False)
    (out / "f.txt").write_text("edited by hand")
    assert not check_regeneration(out, generate, verbose=False)
    with pytest.raises(ValueError, match="no manifest"):
        check_regeneration(tmp_path / "nowhere", generate)
    assert package_version("numpy") != "unknown" and package_version("no_such_module_xyz") == "unknown"


def test_write_manifest_lists_every_file_but_itself(tmp_path):
    import json

    from monai_reg_ext.data.manifest import write_manifest

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"bb")
    (tmp_path / "a.bin").write_bytes(b"a")
    written = write_manifest(tmp_path, {"parameters": {"seed": 1}})
    assert list(written["files"]) == ["a.bin", "sub/b.bin"] and written["total_bytes"] == 3
    assert written["files"]["sub/b.bin"] == hashlib.sha256(b"bb").hexdigest()
    assert json.loads((tmp_path / "manifest.json").read_text()) == written
    assert "manifest.json" not in write_manifest(tmp_path, {"parameters": {}})["files"]
