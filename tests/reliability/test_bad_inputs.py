"""Bad inputs through the Python API and the ``monai-reg`` CLI: a clear error naming the file or key and what was
expected, exit code 2 with one line and no traceback, and no output written or overwritten (docs/reliability.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_reg_ext import cli
from monai_reg_ext.api import register
from monai_reg_ext.io import save_ddf
from tests.reliability.conftest import SHAPE, blob, tiny_net, write


@dataclass
class Case:
    """One bad input: ``command`` is ``register`` or ``warp``; ``args`` their keyword arguments."""

    command: str
    args: dict
    error: type
    match: str
    keep: list[Path] = field(default_factory=list)  # files that must stay byte-identical


def _bundle_copy(files, tmp: Path) -> Path:
    dst = tmp / "bundle"
    shutil.copytree(files["bundle"], dst)
    return dst


def _register(files, **over) -> dict:
    args = {"moving": files["moving"], "fixed": files["fixed"], "bundle": files["bundle"]}
    args.update(over)
    return args


def _warp(files, tmp: Path, **over) -> dict:
    ddf = tmp / "ddf.nii.gz"
    if not ddf.exists():
        save_ddf(ddf, torch.zeros(3, *SHAPE), np.eye(4))
    args = {"image": files["moving"], "ddf": ddf}
    args.update(over)
    return args


def _truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 2])
    return dst


def _landmarks(tmp: Path, name: str, point) -> Path:
    path = tmp / f"{name}.csv"
    path.write_text("x,y,z\n" + ",".join(str(v) for v in point) + "\n")
    return path


def build(name: str, files, tmp: Path) -> Case:
    img = blob()
    if name == "truncated_nifti":
        bad = _truncated(files["moving"], tmp / "trunc.nii.gz")
        return Case("register", _register(files, moving=bad), ValueError, r"moving: cannot read .*trunc\.nii\.gz")
    if name == "corrupt_nifti":
        (tmp / "corrupt.nii").write_bytes(b"\x00" * 348 + b"not an image")
        return Case("register", _register(files, fixed=tmp / "corrupt.nii"), ValueError, r"fixed: .*corrupt\.nii")
    if name == "h5_as_image":
        (tmp / "images.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 50)
        return Case("register", _register(files, moving=tmp / "images.h5"), ValueError, r"images\.h5.*H5 files")
    if name == "directory_as_image":
        return Case("register", _register(files, moving=tmp), ValueError, r"moving: .* is a directory")
    if name == "label_shape_differs":
        lab = write(tmp / "lab.nii.gz", np.zeros((8, 8, 8), np.uint8))
        args = _register(files, moving_label=lab, fixed_label=files["fixed_label"])
        return Case("register", args, ValueError, r"moving_label: spatial shape \(8, 8, 8\) differs.*\(10, 10, 10\)")
    if name == "moving_2d_fixed_3d":
        m2 = write(tmp / "m2d.nii.gz", img[:, :, 5])
        return Case("register", _register(files, moving=m2), ValueError, r"m2d\.nii\.gz.*expected a 3-D image")
    if name == "image_4d":
        m4 = write(tmp / "m4d.nii.gz", np.stack([img, img], -1))
        return Case("register", _register(files, moving=m4), ValueError, r"m4d\.nii\.gz.*single-channel 3-D")
    if name in ("nan_voxels", "inf_voxels"):
        bad = img.copy()
        bad[1, 2, 3] = np.nan if name == "nan_voxels" else np.inf
        path = write(tmp / f"{name}.nii.gz", bad)
        return Case("register", _register(files, fixed=path), ValueError, rf"fixed .*{name}.*NaN or infinite")
    if name == "label_outside_unit_interval":
        lab = write(tmp / "lab3.nii.gz", (img > 0.5).astype(np.float32) * 2.5)  # neither one-hot nor a label map
        args = _register(files, moving_label=lab, fixed_label=files["fixed_label"])
        return Case("register", args, ValueError, r"moving_label \(.*lab3.nii.gz\).*integer label map.*2\.5\]")
    if name == "landmarks_outside_image":
        args = _register(
            files,
            moving_landmarks=_landmarks(tmp, "mov_pts", (5, 5, 5)),
            fixed_landmarks=_landmarks(tmp, "fix_pts", (5, 50, 5)),
        )
        return Case("register", args, ValueError, r"fix_pts\.csv: point 0 .* outside the image of shape \(10, 10, 10\)")
    if name == "bundle_missing_weights":
        bundle = _bundle_copy(files, tmp)
        (bundle / "models" / "model.pt").unlink()
        return Case("register", _register(files, bundle=bundle), FileNotFoundError, r"weights file .*model\.pt")
    if name == "weights_of_other_architecture":
        bundle = _bundle_copy(files, tmp)
        other = type(tiny_net())(
            "localnet", "ddf", backbone_kwargs={"num_channel_initial": 4, "extract_levels": (0, 1)}
        )
        torch.save(other.state_dict(), bundle / "models" / "model.pt")
        return Case("register", _register(files, bundle=bundle), ValueError, r"model\.pt: the weights do not fit")
    if name == "truncated_weights":
        bundle = _bundle_copy(files, tmp)
        _truncated(files["bundle"] / "models" / "model.pt", bundle / "models" / "model.pt")
        return Case("register", _register(files, bundle=bundle), ValueError, r"model\.pt: cannot load the weights")
    if name == "bundle_is_a_file":
        return Case(
            "register", _register(files, bundle=files["moving"]), NotADirectoryError, r"expected a bundle folder"
        )
    if name == "output_is_an_input":
        (tmp / "out").mkdir()
        moving = tmp / "out" / "warped_moving.nii.gz"
        shutil.copy(files["moving"], moving)
        args = _register(files, moving=moving, output=tmp / "out", overwrite=True)
        return Case("register", args, FileExistsError, r"warped_moving\.nii\.gz.* are inputs", keep=[moving])
    if name == "output_exists":
        (tmp / "out").mkdir()
        (tmp / "out" / "ddf.nii.gz").write_bytes(b"user data")
        args = _register(files, output=tmp / "out")
        return Case("register", args, FileExistsError, r"ddf\.nii\.gz.*overwrite", keep=[tmp / "out" / "ddf.nii.gz"])
    if name == "ddf_wrong_components":
        ddf = write(tmp / "ddf2c.nii.gz", np.zeros((*SHAPE, 2), np.float32))
        return Case(
            "warp",
            _warp(files, tmp, ddf=ddf),
            ValueError,
            r"ddf2c\.nii\.gz: expected an ITK displacement field.*got a 4-D grid",
        )
    if name == "ddf_scalar_image":
        case = Case("warp", _warp(files, tmp, ddf=files["fixed"]), ValueError, r"fixed\.nii\.gz: expected an ITK disp")
        return case
    if name == "ddf_2d_image_3d":
        ddf = save_ddf(tmp / "ddf2d.nii.gz", torch.zeros(2, 10, 10), np.eye(3))
        return Case("warp", _warp(files, tmp, ddf=ddf), ValueError, r"moving\.nii\.gz.*expected a 2-D image")
    if name == "ddf_nan":
        d = torch.zeros(3, *SHAPE)
        d[0, 1, 1, 1] = float("nan")
        ddf = save_ddf(tmp / "ddfnan.nii.gz", d, np.eye(4))
        return Case("warp", _warp(files, tmp, ddf=ddf), ValueError, r"ddfnan\.nii\.gz: contains NaN")
    if name == "ddf_directory":
        return Case("warp", _warp(files, tmp, ddf=tmp), IsADirectoryError, r"DDF file .* is a directory")
    if name == "warp_truncated_image":
        bad = _truncated(files["moving"], tmp / "trunc.nii.gz")
        return Case("warp", _warp(files, tmp, image=bad), ValueError, r"image: cannot read .*trunc\.nii\.gz")
    if name == "warp_output_is_input":
        image = tmp / "image.nii.gz"
        shutil.copy(files["moving"], image)
        args = _warp(files, tmp, image=image, output=image, overwrite=True)
        return Case("warp", args, FileExistsError, r"is one of the inputs", keep=[image])
    raise KeyError(name)


CASES = [
    "truncated_nifti",
    "corrupt_nifti",
    "h5_as_image",
    "directory_as_image",
    "label_shape_differs",
    "moving_2d_fixed_3d",
    "image_4d",
    "nan_voxels",
    "inf_voxels",
    "label_outside_unit_interval",
    "landmarks_outside_image",
    "bundle_missing_weights",
    "weights_of_other_architecture",
    "truncated_weights",
    "bundle_is_a_file",
    "output_is_an_input",
    "output_exists",
    "ddf_wrong_components",
    "ddf_scalar_image",
    "ddf_2d_image_3d",
    "ddf_nan",
    "ddf_directory",
    "warp_truncated_image",
    "warp_output_is_input",
]


def _snapshot(case: Case) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in case.keep}


def _call_api(case: Case, tmp: Path) -> None:
    args = dict(case.args)
    if case.command == "register":
        output, overwrite = args.pop("output", None), args.pop("overwrite", False)
        result = register(**args, device="cpu")
        result.save(output or tmp / "api_out", overwrite=overwrite, figure=False)
    else:
        args.setdefault("output", tmp / "api_warped.nii.gz")
        cli.warp(**{k: str(v) if isinstance(v, Path) else v for k, v in args.items()})


def _argv(case: Case, tmp: Path) -> list[str]:
    args = dict(case.args)
    default_out = tmp / ("cli_out" if case.command == "register" else "cli_warped.nii.gz")
    args.setdefault("output", default_out)
    argv = [case.command]
    for k, v in args.items():
        if isinstance(v, bool):
            argv += [f"--{k}"] if v else []
        else:
            argv += [f"--{k}", str(v)]
    if case.command == "register":
        argv += ["--device", "cpu", "--figure", "False"]
    return argv


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, files, tmp_path, capsys):
    case = build(name, files, tmp_path)
    before = _snapshot(case)
    # Python API: the right exception type, a message naming the file/key and what was expected
    with pytest.raises(case.error, match=case.match):
        _call_api(case, tmp_path)
    assert not (tmp_path / "api_out").exists() and not (tmp_path / "api_warped.nii.gz").exists()
    # CLI (in process): exit 2, one error line, no traceback, nothing written or overwritten
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(_argv(case, tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
    assert len(lines) == 1, err
    assert __import__("re").search(case.match, lines[0]), lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "cli_out").exists() and not (tmp_path / "cli_warped.nii.gz").exists()
    assert _snapshot(case) == before, "an input or existing output was modified"
    assert not list(tmp_path.rglob(".tmp-*")), "a temporary file was left behind"


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai_reg_ext", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("monai-reg: error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_subprocess_register_no_traceback(files, tmp_path):
    """A real process (the in-process cases above cover warp): a truncated NIfTI, exit 2, one line, no output."""
    bad = _truncated(files["moving"], tmp_path / "trunc.nii.gz")
    res = _run("register", "--bundle", files["bundle"], "--moving", bad, "--fixed", files["fixed"],
               "--output", tmp_path / "out", "--device", "cpu")  # fmt: skip
    assert "trunc.nii.gz" in _one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_subprocess_train_truncated_h5(tmp_path):
    """``monai-reg train`` on a dataset whose images.h5 is truncated: MONAI wraps the dataset's ValueError in a
    RuntimeError("Failed to instantiate component"); the CLI unwraps it."""
    root = Path(__file__).resolve().parents[2] / "bundles" / "unpaired_mr_brain"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "images.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 50)
    res = _run("train", "--bundle", root, "--dataset_dir", tmp_path, "--output_dir", tmp_path / "runs",
               "--max_epochs", 1, "--num_workers", 0)  # fmt: skip
    assert "images.h5" in _one_error_line(res)
    assert not (tmp_path / "runs").exists()


def test_truncated_and_corrupt_h5_datasets(tmp_path):
    """H5 data enters through the datasets: a truncated file and a key holding a 2-D array."""
    import h5py

    from monai_reg_ext.data import UnpairedDataset
    from tests.data.test_fixtures import make_unpaired

    root = make_unpaired(tmp_path / "a", 2, labeled=False, fmt="h5")
    path = root / "images.h5"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"images\.h5"):
        UnpairedDataset(root)
    root = make_unpaired(tmp_path / "b", 2, labeled=False, fmt="h5")
    with h5py.File(root / "images.h5", "a") as f:
        del f["case1"]
        f["case1"] = np.zeros((4, 4), np.float32)
    ds = UnpairedDataset(root, spatial_size=(8, 8, 8), shuffle=False, labeled=False)
    with pytest.raises(ValueError, match=r"images\.h5.*case1|case1.*images\.h5"):
        ds[0]
