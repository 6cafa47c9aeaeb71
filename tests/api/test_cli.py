from __future__ import annotations

import subprocess
import sys

import itk
import nibabel as nib
import numpy as np
import pytest

from monai_reg_ext.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "monai_reg_ext", *map(str, args)], capture_output=True, text=True)


def test_register_then_warp_matches_itk(tiny_bundle, pair_files, tmp_path):
    out = tmp_path / "out"
    main(["register", "--bundle", str(tiny_bundle), "--moving", str(pair_files["fixed"]), "--fixed",
          str(pair_files["fixed"]), "--output", str(out), "--device", "cpu", "--figure", "False"])  # fmt: skip
    warped_path = tmp_path / "warped.nii.gz"
    main(["warp", "--image", str(pair_files["fixed"]), "--ddf", str(out / "ddf.nii.gz"), "--output", str(warped_path)])
    ours = np.asarray(nib.load(str(warped_path)).dataobj)
    np.testing.assert_allclose(ours, np.asarray(nib.load(str(out / "warped_moving.nii.gz")).dataobj), atol=1e-5)
    # ITK applies the same file: output(x) = input(x + d(x)) in physical space
    image = itk.imread(str(pair_files["fixed"]), itk.F)
    field = itk.imread(str(out / "ddf.nii.gz"))
    warper = itk.WarpImageFilter[type(image), type(image), type(field)].New()
    warper.SetInput(image)
    warper.SetDisplacementField(field)
    warper.SetOutputParametersFromImage(image)
    warper.SetEdgePaddingValue(float("nan"))
    warper.Update()
    ref = itk.array_from_image(warper.GetOutput()).transpose(2, 1, 0)  # ITK (z, y, x) -> (x, y, z)
    inside = np.isfinite(ref)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours[inside], ref[inside], atol=1e-3)


def test_cli_user_errors_exit_2_without_traceback(tiny_bundle, pair_files, tmp_path):
    res = run_cli("register", "--bundle", tiny_bundle, "--moving", tmp_path / "missing.nii.gz", "--fixed",
                  pair_files["fixed"], "--output", tmp_path / "o")  # fmt: skip
    assert res.returncode == 2
    assert "missing.nii.gz" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()
    (tmp_path / "w.nii.gz").write_bytes(b"user data")
    res = run_cli(
        "warp", "--image", pair_files["fixed"], "--ddf", pair_files["fixed"], "--output", tmp_path / "w.nii.gz"
    )
    assert res.returncode == 2 and "overwrite" in res.stderr
    assert (tmp_path / "w.nii.gz").read_bytes() == b"user data"


@pytest.mark.parametrize("command", ["train", "register"])
def test_help(command):
    res = run_cli(command, "--help")
    assert res.returncode == 0, res.stderr
    assert "monai-reg" in res.stdout + res.stderr


def test_register_and_predict_with_other_weights(tiny_bundle, pair_files, tmp_path):
    """--weights picks another weights file of the same network; a missing one is a one-line user error."""
    import json

    import torch

    state = torch.load(tiny_bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    zero = {k: torch.zeros_like(v) for k, v in state.items()}  # every layer 0: the DDF is exactly 0
    torch.save(zero, tmp_path / "zero.pt")
    common = ["--moving", str(pair_files["moving"]), "--fixed", str(pair_files["fixed"]), "--device", "cpu",
              "--figure", "False"]  # fmt: skip
    main(["register", "--bundle", str(tiny_bundle), *common, "--output", str(tmp_path / "default")])
    main(["register", "--bundle", str(tiny_bundle), *common, "--output", str(tmp_path / "zero"),
          "--weights", str(tmp_path / "zero.pt")])  # fmt: skip
    ddf_default = np.asarray(nib.load(str(tmp_path / "default" / "ddf.nii.gz")).dataobj)
    ddf_zero = np.asarray(nib.load(str(tmp_path / "zero" / "ddf.nii.gz")).dataobj)
    assert np.abs(ddf_default).max() > 1e-3 and np.abs(ddf_zero).max() == 0.0
    (tmp_path / "pairs.json").write_text(
        json.dumps([{"moving": str(pair_files["moving"]), "fixed": str(pair_files["fixed"])}])
    )
    main(["predict", "--bundle", str(tiny_bundle), "--pairs", str(tmp_path / "pairs.json"), "--output",
          str(tmp_path / "pred"), "--device", "cpu", "--weights", str(tmp_path / "zero.pt")])  # fmt: skip
    ddf_pred = np.asarray(nib.load(str(tmp_path / "pred" / "pair_000" / "ddf.nii.gz")).dataobj)
    assert np.abs(ddf_pred).max() == 0.0
    res = run_cli("register", "--bundle", tiny_bundle, *common, "--output", tmp_path / "o", "--weights",
                  tmp_path / "nope.pt")  # fmt: skip
    assert res.returncode == 2 and "nope.pt" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


def test_overwrite_messages_name_the_cli_flag(tiny_bundle, pair_files, tmp_path, capsys):
    """A second ``register`` into the same folder fails in one line that names ``--overwrite`` (the library's message
    names the Python argument ``overwrite=True``), and ``--overwrite`` then replaces the files."""
    args = ["register", "--bundle", str(tiny_bundle), "--moving", str(pair_files["moving"]), "--fixed",
            str(pair_files["fixed"]), "--output", str(tmp_path / "out"), "--device", "cpu",
            "--figure", "False"]  # fmt: skip
    main(args)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    errors = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]  # warnings may precede it
    assert "--overwrite" in err and "overwrite=True" not in err and len(errors) == 1 and "Traceback" not in err
    main([*args, "--overwrite"])
