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


def test_split_maker_start_baseline_example_and_finish(tmp_path, capsys):
    import json

    import pytest

    from monai_reg_ext.demo.manifest import (
        baseline_summary,
        copy_example,
        finish_maker,
        split_parameters,
        start_split_maker,
        write_test_pairs,
    )

    defaults = {"shape": [8, 8, 8], **split_parameters((2, 0, 1), (10, 20, 30))}
    assert list(defaults) == ["shape", "n_train", "n_val", "n_test", "seed_train", "seed_val", "seed_test"]
    p, say = start_split_maker(defaults, {"shape": (8.0, 9, 10)}, {"train": 1, "test": 1}, verbose=False)
    assert p["shape"] == [8, 9, 10] and say("not printed") is None
    with pytest.raises(ValueError, match=r"need n_train >= 1, n_test >= 2; got 2, 1"):
        start_split_maker(defaults, None, {"train": 1, "test": 2})

    pairs = [{"moving": "images/a.nii.gz", "fixed": "points/b.json"}]
    rows = [{"none": {"x": 1.0, "y": 2.0}}, {"none": {"x": 3.0, "y": 2.0}}]
    assert baseline_summary(rows, ["none"]) == {
        "none": {"x": {"mean": 2.0, "std": 1.0}, "y": {"mean": 2.0, "std": 0.0}}
    }
    test = tmp_path / "out" / "test"
    (test / "images").mkdir(parents=True)
    (test / "points").mkdir()
    (test / "images" / "a.nii.gz").write_bytes(b"a")
    (test / "points" / "b.json").write_bytes(b"b")
    summary = write_test_pairs(test, pairs, rows, ["none"], "two rows")
    baseline = json.loads((test / "baseline.json").read_text())
    assert baseline == {"description": "two rows", "summary": summary, "pairs": rows}
    assert json.loads((test / "pairs.json").read_text()) == pairs
    copy_example(test, pairs[0], ("moving", "fixed"), tmp_path / "out" / "example")
    assert (tmp_path / "out" / "example" / "moving.nii.gz").read_bytes() == b"a"
    assert (tmp_path / "out" / "example" / "fixed.json").read_bytes() == b"b"

    (tmp_path / "out" / "other.txt").write_text("not listed")
    manifest = finish_maker(tmp_path / "out", {"generator": "g"}, ("test", "example"), ("numpy",), print, summary)
    assert list(manifest) == ["generator", "versions", "files"] and "other.txt" not in manifest["files"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    out = capsys.readouterr().out
    assert "none: x 2.0000 +- 1.0000" in out and f"wrote {len(manifest['files'])} files" in out


def test_source_maker_main_and_synthetic_entry_points(tmp_path):
    import json

    from monai_reg_ext.demo.manifest import (
        check_source_regeneration,
        source_maker_main,
        synthetic_entry_points,
        write_synthetic_manifest,
    )

    calls = []

    def generate(source, output, params=None, verbose=True):
        calls.append((source, str(output), params, verbose))
        return {"files": {}}

    def check(source, output, verbose=True):
        return check_source_regeneration(generate, source, output, verbose)

    defaults = {"shape": [8, 8, 8], "spacing": 2.0, "window": [-1.0, 1.0], "n_train": 3}
    options = {"shape": "grid size", "spacing": None, "n_train": None}

    def run(*argv: str) -> int:
        return source_maker_main("Doc.", tmp_path, "the source", generate, check, defaults, options, argv=list(argv))

    assert run("--source", "s", "--shape", "8", "9", "10", "--n-train", "4", "--quiet") == 0
    assert calls[-1] == ("s", str(tmp_path), {"shape": [8, 9, 10], "spacing": 2.0, "n_train": 4}, False)
    write_synthetic_manifest(tmp_path, "g", {"a": 1}, ("numpy",), lambda rel: False)  # parameters, no files
    assert run("--source", "s", "--check") == 0 and calls[-1] == ("s", calls[-1][1], {"a": 1}, False)

    def synthetic(output, params=None, verbose=True):
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / "x.bin").write_bytes(b"x")
        return write_synthetic_manifest(output, "g", {**defaults, **(params or {})}, ("numpy",), lambda r: True)

    check_synthetic, main = synthetic_entry_points("Doc.", tmp_path / "data", synthetic, defaults, ("n_train",))
    assert main(["--n-train", "5", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["parameters"]["n_train"] == 5 and "x.bin" in manifest["files"]
    assert check_synthetic(tmp_path / "data", verbose=False) and main(["--check", "--quiet"]) == 0
