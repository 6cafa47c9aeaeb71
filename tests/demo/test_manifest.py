from __future__ import annotations

import hashlib
from pathlib import Path

from monai_reg_ext.demo.manifest import compare_file_hashes, sha256_file


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

    from monai_reg_ext.demo.manifest import nifti_image, save_nifti_gz

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

    from monai_reg_ext.demo.manifest import check_regeneration, package_version

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

    from monai_reg_ext.demo.manifest import write_manifest

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"bb")
    (tmp_path / "a.bin").write_bytes(b"a")
    written = write_manifest(tmp_path, {"parameters": {"seed": 1}})
    assert list(written["files"]) == ["a.bin", "sub/b.bin"] and written["total_bytes"] == 3
    assert written["files"]["sub/b.bin"] == hashlib.sha256(b"bb").hexdigest()
    assert json.loads((tmp_path / "manifest.json").read_text()) == written
    assert "manifest.json" not in write_manifest(tmp_path, {"parameters": {}})["files"]


def test_file_hashes_json_and_folder_helpers(tmp_path):
    import json

    from monai_reg_ext.demo.manifest import clear_outputs, file_hashes, folder_bytes, write_json

    (tmp_path / "part0" / "x").mkdir(parents=True)
    (tmp_path / "part0" / "x" / "b.bin").write_bytes(b"bb")
    (tmp_path / "keep.txt").write_bytes(b"k")
    write_json(tmp_path / "manifest.json", {"a": [1]}, indent=1)
    assert (tmp_path / "manifest.json").read_text() == json.dumps({"a": [1]}, indent=1) + "\n"
    assert list(file_hashes(tmp_path)) == ["keep.txt", "part0/x/b.bin"]
    assert "manifest.json" in file_hashes(tmp_path, exclude_manifest=False)
    assert list(file_hashes(tmp_path, lambda rel: rel.parts[0].startswith("part"))) == ["part0/x/b.bin"]
    assert folder_bytes(tmp_path / "part0") == 2
    clear_outputs(tmp_path, ("part0", "manifest.json", "absent"))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["keep.txt"]
    clear_outputs(tmp_path / "new", ())
    assert (tmp_path / "new").is_dir()


def test_parameter_grid_and_statistics_helpers():
    import numpy as np
    import pytest

    from monai_reg_ext.demo.manifest import (
        binary_dice,
        centred_affine,
        check_grid_shape,
        mean_std,
        merge_parameters,
        nifti_image,
        package_versions,
    )

    assert merge_parameters({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    assert merge_parameters({"a": 1}, None) == {"a": 1}
    with pytest.raises(ValueError, match="unknown parameters"):
        merge_parameters({"a": 1}, {"c": 1})
    assert check_grid_shape((8.0, 9, 10)) == [8, 9, 10]
    with pytest.raises(ValueError, match="3 sizes >= 8"):
        check_grid_shape([8, 7, 8])
    aff = centred_affine([3, 5, 1], [2.0, 1.0, 4.0])
    assert np.allclose(aff @ [1, 2, 0, 1], [0, 0, 0, 1]) and np.allclose(np.diag(aff), [2, 1, 4, 1])
    assert np.array_equal(centred_affine([3, 3, 3], 2.0), centred_affine([3, 3, 3], [2.0, 2.0, 2.0]))
    a, b = np.array([1, 1, 0], bool), np.array([1, 0, 0], bool)
    empty = np.zeros(3, bool)
    assert binary_dice(a, b) == pytest.approx(2 / 3) and binary_dice(empty, empty) == 1.0
    assert np.isnan(binary_dice(empty, empty, empty=float("nan")))
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": 1.0}
    assert list(package_versions("numpy", "no_such_module_xyz").values())[1] == "unknown"
    assert int(nifti_image(np.zeros((2, 2, 2), np.uint8), np.eye(4), units=None).header["xyzt_units"]) == 0
    assert nifti_image(np.zeros((2, 2, 2), np.uint8), np.eye(4)).header.get_xyzt_units()[0] == "mm"


def test_synthetic_maker_main(tmp_path, capsys):
    from monai_reg_ext.demo.manifest import synthetic_maker_main

    calls = []

    def generate(output, params, verbose=True):
        calls.append(("generate", output, params, verbose))

    def check(output, verbose=True):
        calls.append(("check", output, verbose))
        return output == "good"

    doc = "Make demo data.\n\nMore text."
    defaults, keys = {"seed": 1, "n_cases": 2}, ("seed", "n_cases")

    def run(*argv: str) -> int:
        return synthetic_maker_main(doc, tmp_path, generate, check, defaults, keys, list(argv))

    assert run() == 0 and calls[-1] == ("generate", str(tmp_path), {"seed": 1, "n_cases": 2}, True)
    assert run("--output", "x", "--n-cases", "5", "--quiet") == 0
    assert calls[-1] == ("generate", "x", {"seed": 1, "n_cases": 5}, False)
    assert run("--check", "--output", "good") == 0 and run("--check", "--output", "bad") == 1
    assert calls[-1] == ("check", "bad", True)
