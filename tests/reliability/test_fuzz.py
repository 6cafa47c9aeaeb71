"""Property-based fuzzing (hypothesis) of NIfTI headers and DDF files through ``register`` and ``warp`` (issue 20).

Every example writes one raw NIfTI file from a random header: dims (0, 1, small, huge against the bytes that follow),
pixdim (0, negative, NaN, inf, tiny, huge), qform and sform (codes, rotations, reflections, shear, singular and NaN
matrices, invalid quaternions), data types (integers, floats, complex, RGB) and payloads (exact, truncated, empty,
too long; NaN voxels). The file is an image of ``register`` (moving or fixed; the tiny 8^3 bundle, and a few with the
bundle-free pipeline cut to 2 iterations per level), the image of ``warp``, or the DDF of ``warp`` (a vector NIfTI).

Property: the command either succeeds with the right geometry (outputs on the fixed grid / the DDF grid, affine as
nibabel reads that file, within 1e-4 mm) or raises one of the CLI's user errors (``monai_reg_ext.cli.USER_ERRORS``,
exit status 2) whose message names the file; any other exception, or an output on a wrong grid, fails the test.
:func:`run_fuzz` runs the same checks for ``scripts/reliability_cases.py`` (docs/reliability.md).
"""

from __future__ import annotations

import gzip
import math
import tempfile
from collections import Counter
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_reg_ext import cli
from monai_reg_ext.io import load_ddf, save_ddf
from tests.reliability.conftest import SHAPE, blob, write

#: outcome counts of every example run in this process (``ok`` / ``user_error``), for scripts/reliability_cases.py
OUTCOMES: Counter = Counter()
SETTINGS = {
    "deadline": None,
    "database": None,  # no .hypothesis folder in the repository; failures print the example to reproduce
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


# --- strategies ---------------------------------------------------------------------------------------------------


#: what may be wrong with a header or its payload; every example has none (about half), one or two of them
FAULTS = (
    "truncated", "empty", "extra_bytes", "huge_dim", "zero_dim", "one_voxel", "pixdim_zero", "pixdim_negative",
    "pixdim_nan", "pixdim_extreme", "sform_sheared", "sform_singular", "sform_nan", "sform_random", "sform_vs_pixdim",
    "quaternion_invalid", "qfac_zero", "qform_only", "no_xform", "two_d", "four_d", "nan_voxels", "constant",
    "dtype_odd", "gzip",
)  # fmt: skip


def _rotation(angle: float, axis: int) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


@st.composite
def nifti_specs(draw, vector: bool = False, min_size: int = 2) -> dict:
    """A random NIfTI-1 header and payload (``vector``: a displacement field, intent 1007, 3 components): a valid
    oblique, reflected or axis-aligned grid of ``min_size`` to 12 voxels per axis with 0, 1 or 2 :data:`FAULTS`."""
    faults = set(draw(st.one_of(st.just([]), st.lists(st.sampled_from(FAULTS), min_size=1, max_size=2))))
    ndim = 2 if "two_d" in faults else (4 if "four_d" in faults and not vector else 3)
    shape = [draw(st.integers(min_size, 12)) for _ in range(ndim)]
    if faults & {"huge_dim", "zero_dim", "one_voxel"}:
        k = draw(st.integers(0, ndim - 1))
        shape[k] = 0 if "zero_dim" in faults else (1 if "one_voxel" in faults else draw(st.sampled_from([1000, 32767])))
    pix = [draw(st.floats(0.3, 3.0)) for _ in range(ndim)]
    odd = {"pixdim_zero": 0.0, "pixdim_negative": -1.5, "pixdim_nan": math.nan}
    for fault, value in odd.items():
        if fault in faults:
            pix[draw(st.integers(0, ndim - 1))] = value
    if "pixdim_extreme" in faults:
        pix[0] = draw(st.sampled_from([1e-9, 1e9, math.inf]))
    rot = _rotation(draw(st.floats(-3.2, 3.2)), draw(st.integers(0, 2))) @ _rotation(draw(st.floats(-0.5, 0.5)), 0)
    rot = rot @ np.diag([draw(st.sampled_from([1.0, -1.0])), 1.0, 1.0])  # a reflection, half the time
    pix3 = np.nan_to_num(np.asarray((pix + [1.0, 1.0])[:3], dtype=np.float64), nan=1.0, posinf=1.0)
    lin = rot @ np.diag(np.abs(pix3))
    if "sform_sheared" in faults:
        lin[0, 1] += draw(st.sampled_from([0.05, 0.3, 1.0]))
    if "sform_singular" in faults:
        lin[:, 2] = 0.0
    if "sform_nan" in faults:
        lin[1, 1] = math.nan
    if "sform_random" in faults:
        lin = np.asarray(draw(st.lists(st.floats(-3, 3), min_size=9, max_size=9))).reshape(3, 3)
    if "sform_vs_pixdim" in faults:
        lin = lin * 2.0
    origin = np.asarray([draw(st.sampled_from([0.0, -5.0, 12.5, -100.0, 1e4])) for _ in range(3)])
    return {
        "faults": sorted(faults),
        "shape": shape,
        "vector": vector,
        "dtype": draw(st.sampled_from((4, 64) if vector else (2, 256, 32, 128))) if "dtype_odd" in faults else 16,
        "pixdim": pix,
        "qfac": 0.0 if "qfac_zero" in faults else draw(st.sampled_from([1.0, -1.0])),
        "qform_code": 1 if "qform_only" in faults else (0 if "no_xform" in faults else draw(st.sampled_from([0, 1]))),
        "qform": "quaternion" if "quaternion_invalid" in faults else draw(st.sampled_from(["sform", "axes"])),
        "quatern": (0.9, 0.9, 0.9) if "quaternion_invalid" in faults else (0.0, 0.0, 0.0),
        "sform_code": 0 if faults & {"no_xform", "qform_only"} else draw(st.sampled_from([1, 2])),
        "sform": np.concatenate([lin, origin[:, None]], axis=1),
        "payload": next((f for f in ("truncated", "empty", "extra_bytes") if f in faults), "exact"),
        "values": "nan" if "nan_voxels" in faults else ("constant" if "constant" in faults else "random"),
        "gz": "gzip" in faults or draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def write_nifti(path: Path, spec: dict) -> Path:
    """Write the raw NIfTI-1 file of ``spec`` (a 348-byte header, 4 bytes of extension flag, the payload)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(spec["dtype"])
    shape = list(spec["shape"]) + ([1, 3] if spec["vector"] else [])
    dim = np.ones(8, dtype=np.int16)
    dim[0], dim[1 : 1 + len(shape)] = len(shape), shape
    hdr["dim"] = dim
    pixdim = np.ones(8, dtype=np.float32)
    pixdim[0], pixdim[1 : 1 + len(spec["pixdim"])] = spec["qfac"], spec["pixdim"][:7]
    hdr["pixdim"] = pixdim
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = spec["quatern"]
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = spec["sform"][:, 3]
    if spec["qform"] == "sform":  # the qform nibabel derives from the sform (its closest rotation and zooms)
        try:
            hdr.set_qform(np.vstack([spec["sform"], [0, 0, 0, 1]]))
        except Exception:  # a NaN or singular sform has no qform: keep the axis-aligned one
            pass
        hdr["pixdim"][0] = spec["qfac"] if spec["qfac"] == 0 else hdr["pixdim"][0]
        hdr["pixdim"][1 : 1 + len(spec["pixdim"])] = spec["pixdim"][:7]  # the faults of pixdim stay
    hdr["qform_code"], hdr["sform_code"] = spec["qform_code"], spec["sform_code"]
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = spec["sform"]
    hdr["vox_offset"] = 352
    if spec["vector"]:
        hdr["intent_code"] = 1007
    raw = hdr.binaryblock + b"\x00" * 4 + _payload(spec, hdr)
    path.write_bytes(gzip.compress(raw, compresslevel=1) if spec["gz"] else raw)
    return path


def _payload(spec: dict, hdr: nib.Nifti1Header) -> bytes:
    dtype = hdr.get_data_dtype()
    count = int(np.prod([int(d) for d in hdr["dim"][1 : 1 + hdr["dim"][0]]], dtype=object))
    kind = spec["payload"] if count <= 200_000 else "truncated"
    n = {"exact": count, "truncated": min(count // 2, 5000), "empty": 0, "extra_bytes": count + 17}[kind]
    rng = np.random.default_rng(spec["seed"])
    if dtype.fields:  # RGB24
        return rng.integers(0, 255, n * dtype.itemsize, dtype=np.uint8).tobytes()
    values = rng.random(n) * 10 if spec["values"] != "constant" else np.full(n, 3.0)
    arr = values.astype(dtype)
    if spec["values"] == "nan" and n and np.issubdtype(dtype, np.inexact):
        arr[0] = np.nan
    return arr.tobytes()


# --- the checks ---------------------------------------------------------------------------------------------------


@contextmanager
def _quiet():
    with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
        yield


def _user_error(err: BaseException, path: Path) -> None:
    """A refusal must be a CLI user error whose one-line message names the fuzzed file."""
    assert isinstance(err, cli.USER_ERRORS), f"{type(err).__name__}: {err}"
    line = cli._message(err)
    assert path.name in line, f"the message does not name {path.name}: {line}"
    OUTCOMES["user_error"] += 1


def _close(a, b) -> bool:
    return bool(np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=1e-4, rtol=1e-5))


def check_register(spec: dict, role: str, bundle: Path | None, good: Path, folder: Path) -> str:
    """Fuzzed file as ``role`` (moving / fixed) of ``register``; ``bundle`` None: the bundle-free pipeline."""
    path = write_nifti(folder / ("f.nii.gz" if spec["gz"] else "f.nii"), spec)
    moving, fixed = (path, good) if role == "moving" else (good, path)
    out = folder / "out"
    try:
        with _quiet():
            cli.register(str(moving), str(fixed), str(out), bundle=None if bundle is None else str(bundle),
                         device="cpu", figure=False, quiet=True, threads=1)  # fmt: skip
    except Exception as err:
        _user_error(err, path)
        assert not out.exists() or not any(out.iterdir()), "a refused registration wrote files"
        return "user_error"
    ref = nib.load(str(fixed))
    shape = tuple(int(s) for s in ref.shape[:3])
    warped = nib.load(str(out / "warped_moving.nii.gz"))
    assert tuple(warped.shape[:3]) == shape and _close(warped.affine, ref.affine), (warped.affine, ref.affine)
    ddf, affine = load_ddf(out / "ddf.nii.gz")
    assert tuple(ddf.shape) == (3, *shape) and _close(affine, ref.affine), (affine, ref.affine)
    assert np.isfinite(np.asarray(warped.dataobj)).all()
    OUTCOMES["ok"] += 1
    return "ok"


def check_warp(spec: dict, good_image: Path, good_ddf: Path, folder: Path) -> str:
    """Fuzzed file as the image (scalar spec) or the DDF (vector spec) of ``warp``."""
    path = write_nifti(folder / ("f.nii.gz" if spec["gz"] else "f.nii"), spec)
    image, ddf = (good_image, path) if spec["vector"] else (path, good_ddf)
    out = folder / "warped.nii.gz"
    try:
        with _quiet():
            cli.warp(str(image), str(ddf), str(out))
    except Exception as err:
        _user_error(err, path)
        assert not out.exists() and not list(folder.glob(".tmp-*")), "a refused warp wrote files"
        return "user_error"
    ref = nib.load(str(ddf))
    warped = nib.load(str(out))
    assert tuple(warped.shape[:3]) == tuple(ref.shape[:3]) and _close(warped.affine, ref.affine), (
        warped.affine,
        ref.affine,
    )
    assert np.isfinite(np.asarray(warped.dataobj)).all()
    OUTCOMES["ok"] += 1
    return "ok"


# --- fixtures and tests -------------------------------------------------------------------------------------------


def make_inputs(root: Path) -> dict[str, Path]:
    """A good 10^3 image and a good 10^3 DDF (identity affine) beside the fuzzed files."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ddf = root / "good_ddf.nii.gz"
    if not ddf.exists():
        save_ddf(ddf, 0.5 * torch.randn(3, *SHAPE), np.eye(4))
    return {"image": write(root / "good.nii.gz", blob(center=(4, 5, 5))), "ddf": ddf}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(autouse=True)
def _few_iterations(monkeypatch):
    """The bundle-free pipeline with 2 iterations per level (the geometry, not the optimum, is under test)."""
    import monai_reg_ext.optimise as optimise

    real = optimise.register_images

    def quick(*args, **kwargs):
        return real(*args, **{**kwargs, "affine_iterations": (2, 2), "iterations": (2, 2, 2)})

    monkeypatch.setattr(optimise, "register_images", quick)


@settings(max_examples=30, **SETTINGS)
@given(spec=nifti_specs(), role=st.sampled_from(["moving", "fixed"]))
def test_fuzz_register_headers(spec, role, files, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_register(spec, role, files["bundle"], good["image"], Path(tmp))


@settings(max_examples=8, **SETTINGS)
@given(spec=nifti_specs(min_size=8), role=st.sampled_from(["moving", "fixed"]))
def test_fuzz_register_headers_without_bundle(spec, role, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_register(spec, role, None, good["image"], Path(tmp))


@settings(max_examples=30, **SETTINGS)
@given(spec=nifti_specs())
def test_fuzz_warp_image_headers(spec, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_warp(spec, good["image"], good["ddf"], Path(tmp))


@settings(max_examples=30, **SETTINGS)
@given(spec=nifti_specs(vector=True))
def test_fuzz_warp_ddf_headers(spec, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_warp(spec, good["image"], good["ddf"], Path(tmp))


@pytest.mark.slow
@settings(max_examples=400, **SETTINGS)
@given(spec=nifti_specs(), role=st.sampled_from(["moving", "fixed"]))
def test_fuzz_register_headers_long(spec, role, files, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_register(spec, role, files["bundle"], good["image"], Path(tmp))


@pytest.mark.slow
@settings(max_examples=400, **SETTINGS)
@given(spec=st.one_of(nifti_specs(), nifti_specs(vector=True)))
def test_fuzz_warp_headers_long(spec, good):
    with tempfile.TemporaryDirectory() as tmp:
        check_warp(spec, good["image"], good["ddf"], Path(tmp))


def run_fuzz(root: Path, bundle: Path, examples: int = 50) -> dict:
    """The four properties above with ``examples`` examples each (a quarter of them for the bundle-free pipeline),
    derandomized (the same examples on every run), for ``scripts/reliability_cases.py``.

    Returns:
        ``{"examples", "ok", "user_error", "failures"}``: counts of the examples run and how each ended, and the first
        line of each property that failed (hypothesis then shrinks, so a failure adds examples).
    """
    import monai_reg_ext.optimise as optimise

    good = make_inputs(root)
    OUTCOMES.clear()
    real = optimise.register_images
    optimise.register_images = lambda *a, **k: real(*a, **{**k, "affine_iterations": (2, 2), "iterations": (2, 2, 2)})
    roles = st.sampled_from(["moving", "fixed"])

    def with_role(n: int, strategy, use_bundle: bool):
        @settings(max_examples=n, derandomize=True, **SETTINGS)  # the same examples on every run
        @given(spec=strategy, role=roles)
        def prop(spec, role):
            with tempfile.TemporaryDirectory() as tmp:
                check_register(spec, role, bundle if use_bundle else None, good["image"], Path(tmp))

        return prop

    def warp_prop(n: int, strategy):
        @settings(max_examples=n, derandomize=True, **SETTINGS)  # the same examples on every run
        @given(spec=strategy)
        def prop(spec):
            with tempfile.TemporaryDirectory() as tmp:
                check_warp(spec, good["image"], good["ddf"], Path(tmp))

        return prop

    properties = {
        "register (bundle)": with_role(examples, nifti_specs(), True),
        "register (no bundle)": with_role(max(1, examples // 4), nifti_specs(min_size=8), False),
        "warp (image)": warp_prop(examples, nifti_specs()),
        "warp (DDF)": warp_prop(examples, nifti_specs(vector=True)),
    }
    failures = []
    try:
        for name, prop in properties.items():
            try:
                prop()
            except Exception as err:  # a property that failed: reported, not raised
                failures.append(f"{name}: {(str(err).strip().splitlines() or [type(err).__name__])[0]}")
    finally:
        optimise.register_images = real
    total = OUTCOMES["ok"] + OUTCOMES["user_error"]
    return {"examples": total, "ok": OUTCOMES["ok"], "user_error": OUTCOMES["user_error"], "failures": failures}
