"""Bad geometry is never used silently (issue 20): images that do not overlap, single slices, singular, NaN, sheared
or ambiguous (qform vs sform) headers are refused through ``register`` with one line naming the file, before anything
is written, and an earlier run's outputs stay as they were; ``save_checkpoint`` writes atomically."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext import cli
from monai_reg_ext.networks import load_checkpoint, save_checkpoint
from tests.reliability.conftest import SHAPE, blob, tiny_net


@pytest.fixture(autouse=True)
def _no_logging_errors(monkeypatch):
    """A log handler left by an earlier test on a closed stream prints "--- Logging error ---" with a traceback on
    stderr: not the command's traceback, so silenced here (``logging.raiseExceptions``)."""
    import logging

    monkeypatch.setattr(logging, "raiseExceptions", False)


def _image(path, affine, shape=SHAPE, qform=None):
    """A raw NIfTI image whose sform is ``affine`` (any matrix: singular, NaN, sheared; pixdim from its column norms)
    and whose qform is ``qform`` (code 1; sform code 2 then, which ITK ranks below the qform) or unset."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_zooms(tuple(float(z) for z in np.nan_to_num(np.linalg.norm(affine[:3, :3], axis=0), nan=1.0)))
    if qform is not None:
        hdr.set_qform(qform, code=1)
    hdr["sform_code"] = 2 if qform is not None else 1
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = affine[:3]
    hdr["vox_offset"] = 352
    data = blob(shape=shape, center=[s / 2 for s in shape]).astype(np.float32)
    path.write_bytes(hdr.binaryblock + b"\x00" * 4 + data.tobytes(order="F"))
    return path


def _affine(origin=(0.0, 0.0, 0.0), lin=None):
    aff = np.eye(4)
    if lin is not None:
        aff[:3, :3] = lin
    aff[:3, 3] = origin
    return aff


def _cases(tmp_path):
    sheared = np.eye(3)
    sheared[0, 2] = 0.35
    singular = np.diag([1.0, 1.0, 0.0])
    rotated = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    return {
        "moving 10 m away": ("moving", _image(tmp_path / "far.nii", _affine((10_000.0, 0, 0))), "do not overlap"),
        "single-slice moving": (
            "moving",
            _image(tmp_path / "slice.nii", _affine(), (10, 10, 1)),
            "at least 2 voxels",
        ),  # fmt: skip
        "singular fixed": ("fixed", _image(tmp_path / "singular.nii", _affine(lin=singular)), "singular"),
        "sheared fixed": ("fixed", _image(tmp_path / "tilted.nii", _affine(lin=sheared)), "not orthogonal"),
        "sheared fixed, pixdim of the unsheared grid": (
            "fixed",
            _tilted_pixdim(tmp_path / "tilted_pix.nii", sheared),
            "sheared",
        ),  # fmt: skip
        "qform and sform disagree": (
            "fixed",
            _image(tmp_path / "ambiguous.nii", _affine(lin=rotated), qform=_affine((5.0, 0, 0))),
            "ambiguous NIfTI header",
        ),
    }


def _tilted_pixdim(path, lin):
    """A gantry-tilted sform with the pixdim of the grid before the tilt (norm 1, where the sform column has 1.06):
    MONAI's reader would swap in the qform."""
    _image(path, _affine(lin=lin), qform=np.eye(4))
    hdr = nib.load(str(path)).header
    hdr.set_zooms((1.0, 1.0, 1.0))
    raw = bytearray(path.read_bytes())
    raw[:348] = hdr.binaryblock
    path.write_bytes(bytes(raw))
    return path


NAMES = [
    "moving 10 m away",
    "single-slice moving",
    "singular fixed",
    "sheared fixed",
    "sheared fixed, pixdim of the unsheared grid",
    "qform and sform disagree",
]


@pytest.mark.parametrize("name", NAMES)
def test_bad_geometry_is_refused_before_writing(name, files, tmp_path, capsys):
    role, bad, match = _cases(tmp_path)[name]
    out = tmp_path / "out"
    base = ["register", "--bundle", str(files["bundle"]), "--output", str(out), "--device", "cpu", "--quiet"]
    cli.main([*base, "--moving", str(files["moving"]), "--fixed", str(files["fixed"])])  # an earlier, good run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    moving, fixed = (bad, files["fixed"]) if role == "moving" else (files["moving"], bad)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*base, "--moving", str(moving), "--fixed", str(fixed), "--overwrite"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
    assert exit_info.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0] and bad.name in lines[0], lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "the earlier outputs changed"


def test_nan_affine_and_empty_axis(tmp_path):
    from monai_reg_ext.io import load_input

    nan = _affine()
    nan[1, 1] = np.nan
    _image(tmp_path / "nan.nii", nan)
    with pytest.raises(ValueError, match=r"nan\.nii.*not finite"):
        load_input(str(tmp_path / "nan.nii"), "moving", 3)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4, 0, 4))
    hdr.set_data_dtype(np.float32)
    (tmp_path / "empty.nii").write_bytes(hdr.binaryblock + b"\x00" * 4)
    with pytest.raises(ValueError, match=r"empty\.nii.*empty image"):
        load_input(str(tmp_path / "empty.nii"), "moving", 3)


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    net = tiny_net()
    path = save_checkpoint(net, tmp_path / "net.pt", epoch=1)
    good = path.read_bytes()

    def crash(obj, f, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(net, path, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]
    load_checkpoint(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"net\.pt: cannot load the checkpoint .*truncated"):
        load_checkpoint(path)
