"""Classical peers as optional evaluation methods: ANTs SyN (antspyx), elastix B-spline (itk-elastix), greedy.

None of them is a dependency: each is imported only when its method runs, and :func:`peer_available` tells (without
running it) whether its package imports, so that :func:`~.methods.select_methods` skips a missing one with a note.

Every peer's transform is reduced to a DDF in monai-reg's convention (fixed voxels, pull) with a frame-free
"coordinate image" trick: images holding the voxel-index coordinates of the moving grid (one per axis, padded by
:data:`COORD_PAD` voxels so that points a little outside the field of view stay exact) are resampled with the
peer's own transforms and linear interpolation; at each fixed voxel they hold the moving index it samples, so
``ddf = sampled_index - fixed_index``. Moving and fixed must share one grid (checked). As a check of the frames, the
moving image resampled by the peer itself is compared with ``warp_image(moving, ddf)`` (``peer_warp_mae`` in
``extras``, intensities scaled to [0, 1], inside the fixed label or the whole grid).

Timing (``seconds``): the peer's registration call(s) only; ``cpu_seconds``: process CPU time of the same span.
Threads: :func:`configure_threads` limits torch, ITK/elastix, ANTs and greedy alike.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..spatial import warp_image
from .methods import Method, MethodOutput
from .pairs import Pair

__all__ = [
    "PEERS",
    "COORD_PAD",
    "configure_threads",
    "peer_available",
    "peer_method",
    "coordinate_grids",
    "ants_ddf_from_transforms",
    "elastix_ddf_from_parameters",
    "greedy_ddf_from_transforms",
]

COORD_PAD = 16
"""Voxels of padding of the coordinate images: sampling points up to this far outside the moving grid stay exact."""

PEERS: dict[str, str] = {
    "ants_syn": "antspyx: ants.registration(type_of_transform='SyN') with its defaults (shrink 4x2x1, 40x20x0)",
    "ants_syn_full": "antspyx SyN with reg_iterations=(40, 20, 10) (10 iterations at full resolution)",
    "elastix_bspline": "itk-elastix: GetDefaultParameterMap('bspline'), no number_of_threads",
    "greedy": "picsl-greedy: affine (NCC 2x2x2, 100x50x10), then deformable (-s 1.732vox 0.707vox)",
    "greedy_nmi": "picsl-greedy as 'greedy' with normalised mutual information (-m NMI) in both stages (multi-modal)",
}
"""The peer methods and what each runs."""

_THREADS = {"n": 2}


def configure_threads(threads: int = 2) -> dict[str, Any]:
    """Limit torch, ITK (elastix), ANTs and greedy to ``threads`` threads; returns what was set.

    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` must be set before ITK/ANTs start their thread pools: call this before
    running any peer; an already imported ``itk`` is also told through ``MultiThreaderBase``.
    """
    threads = int(threads)
    _THREADS["n"] = threads
    torch.set_num_threads(threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    if "itk" in sys.modules:
        try:
            sys.modules["itk"].MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
        except Exception:  # pragma: no cover - very old itk
            pass
    return {"torch_threads": torch.get_num_threads(), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": threads}


def peer_available(name: str) -> tuple[bool, str]:
    """Whether peer ``name``'s package imports: ``(True, "")`` or ``(False, why)``.

    Raises:
        ValueError: an unknown peer name.
    """
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEERS)}.")
    try:
        if name.startswith("ants"):
            import ants  # noqa: F401
        elif name.startswith("greedy"):
            import picsl_greedy  # noqa: F401
        else:
            import itk

            if not hasattr(itk, "elastix_registration_method"):
                return False, "itk is installed but not itk-elastix (pip install itk-elastix)"
    except Exception as err:  # ImportError, or a binary that fails to load
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def peer_method(name: str) -> Method:
    """The evaluation method of peer ``name`` (see :data:`PEERS`); it reads the pair's files (``pair.spec``)."""
    runners: dict[str, Callable[[Pair], MethodOutput]] = {
        "ants_syn": lambda pair: _run_ants(pair, full=False),
        "ants_syn_full": lambda pair: _run_ants(pair, full=True),
        "elastix_bspline": _run_elastix,
        "greedy": _run_greedy,
        "greedy_nmi": lambda pair: _run_greedy(pair, metric="NMI"),
    }
    if name not in runners:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(runners)}.")
    return runners[name]


# ------------------------------------------------------------------------------------------- coordinate-image trick
def coordinate_grids(shape: tuple[int, ...], pad: int = COORD_PAD) -> list[np.ndarray]:
    """The voxel-index coordinates of a grid of ``shape`` padded by ``pad`` voxels per side (float32, ``(*S+2pad)``).

    Value of grid ``k`` at padded index ``q`` = ``q_k - pad`` = the index along axis ``k`` in the unpadded grid.
    """
    axes = [np.arange(-pad, s + pad, dtype=np.float32) for s in shape]
    return [np.ascontiguousarray(g) for g in np.meshgrid(*axes, indexing="ij")]


def _padded_origin(origin, spacing, direction, pad: int) -> np.ndarray:
    """Origin of a grid padded by ``pad`` voxels per side (physical = origin + D diag(s) index)."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    return np.asarray(origin, dtype=np.float64) - direction @ (np.asarray(spacing, dtype=np.float64) * pad)


def _ddf_from_sampled(sampled: list[np.ndarray], inside: np.ndarray, pad: int, method: str) -> np.ndarray:
    shape = sampled[0].shape
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    outside = inside < 1.0 - 1e-3
    if outside.any():
        print(
            f"note: {method}: {int(outside.sum())} fixed voxels sample the moving image more than {pad} voxels outside "
            "its grid; their displacement is unreliable there.",
            flush=True,
        )
    return np.stack([np.asarray(s, dtype=np.float64) - g for s, g in zip(sampled, grid)])


def ants_ddf_from_transforms(fixed_img, moving_img, transformlist: list[str], pad: int = COORD_PAD) -> np.ndarray:
    """DDF ``(3, *S)`` (fixed voxels, pull) of ANTs transforms, by resampling coordinate images.

    ``transformlist`` is what ``ants.apply_transforms(fixed, moving, transformlist)`` takes (``fwdtransforms`` of
    ``ants.registration``): it maps fixed points to moving points.
    """
    import ants

    coords = coordinate_grids(tuple(moving_img.shape), pad)
    origin = _padded_origin(moving_img.origin, moving_img.spacing, moving_img.direction, pad)

    def to_ants(a: np.ndarray):
        return ants.from_numpy(
            a, origin=tuple(origin), spacing=tuple(moving_img.spacing), direction=np.asarray(moving_img.direction)
        )

    ones = np.ones_like(coords[0])
    sampled = [
        ants.apply_transforms(fixed_img, to_ants(c), transformlist, interpolator="linear", defaultvalue=-1e6).numpy()
        for c in coords
    ]
    inside = ants.apply_transforms(fixed_img, to_ants(ones), transformlist, interpolator="linear").numpy()
    return _ddf_from_sampled(sampled, inside, pad, "ants")


def _itk_image(arr_ijk: np.ndarray, origin, spacing, direction):
    import itk

    img = itk.image_from_array(np.ascontiguousarray(np.asarray(arr_ijk, dtype=np.float32).transpose(2, 1, 0)))
    img.SetOrigin([float(v) for v in origin])
    img.SetSpacing([float(v) for v in spacing])
    img.SetDirection(itk.matrix_from_array(np.asarray(direction, dtype=np.float64).reshape(3, 3)))
    return img


def itk_geometry(img) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(origin, spacing, direction)`` of an ITK image as float64 arrays (ITK's LPS frame)."""
    import itk

    return (
        np.asarray(img.GetOrigin(), dtype=np.float64),
        np.asarray(img.GetSpacing(), dtype=np.float64),
        np.asarray(itk.array_from_matrix(img.GetDirection()), dtype=np.float64),
    )


def _elastix_linear_parameters(transform_parameters, default_value: float):
    """Copy of an elastix result transform whose resampler interpolates linearly into a float image."""
    import itk

    params = itk.ParameterObject.New()
    n = transform_parameters.GetNumberOfParameterMaps()
    for i in range(n):
        pm = transform_parameters.GetParameterMap(i)
        if i == n - 1:
            pm["ResampleInterpolator"] = ["FinalLinearInterpolator"]
            pm["ResultImagePixelType"] = ["float"]
            pm["DefaultPixelValue"] = [repr(float(default_value))]
        params.AddParameterMap(pm)
    return params


def elastix_ddf_from_parameters(moving_img, transform_parameters, pad: int = COORD_PAD) -> np.ndarray:
    """DDF ``(3, *S)`` (fixed voxels, pull) of an elastix result transform, by transformix on coordinate images.

    The output grid is the one stored in ``transform_parameters`` (the fixed image's); the resampler is switched to
    linear interpolation with float output so that the coordinates come back exactly.
    """
    import itk

    origin, spacing, direction = itk_geometry(moving_img)
    shape = tuple(int(s) for s in itk.size(moving_img))  # (i, j, k) order
    padded_origin = _padded_origin(origin, spacing, direction, pad)

    def run(arr: np.ndarray, default_value: float) -> np.ndarray:
        params = _elastix_linear_parameters(transform_parameters, default_value)
        img = _itk_image(arr, padded_origin, spacing, direction)
        out = itk.transformix_filter(img, params, log_to_console=False)
        return np.asarray(itk.array_from_image(out), dtype=np.float64).transpose(2, 1, 0)

    coords = coordinate_grids(shape, pad)
    sampled = [run(c, -1e6) for c in coords]
    inside = run(np.ones_like(coords[0]), 0.0)
    return _ddf_from_sampled(sampled, inside, pad, "elastix")


def _greedy(command: str) -> str:
    """Run one greedy command line (with this module's thread count); returns its printed output."""
    import io

    from picsl_greedy import Greedy3D

    log = io.StringIO()
    Greedy3D().execute(f"{command} -threads {_THREADS['n']}", out=log, err=log)
    return log.getvalue()


def greedy_ddf_from_transforms(
    fixed: str, moving_shape: tuple[int, ...], moving_affine: np.ndarray, transforms: list[str], pad: int = COORD_PAD
) -> np.ndarray:
    """DDF ``(3, *S)`` (fixed voxels, pull) of greedy transforms (``-r`` chain, e.g. ``[warp, affine]``), by
    reslicing NIfTI coordinate images of the moving grid (``moving_affine``: its RAS voxel-to-world) onto ``fixed``."""
    import nibabel as nib

    affine = np.asarray(moving_affine, dtype=np.float64).copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, float(pad))
    coords = coordinate_grids(tuple(moving_shape), pad)
    sampled = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, arr in enumerate([*coords, np.ones_like(coords[0])]):
            src, out = Path(tmp) / f"coord_{k}.nii.gz", Path(tmp) / f"out_{k}.nii.gz"
            nib.save(nib.Nifti1Image(arr, affine), src)
            background = "0" if k == 3 else "-1e6"
            cmd = f"-d 3 -rf {fixed} -rb {background} -ri LINEAR -rm {src} {out} -r {' '.join(transforms)}"
            _greedy(cmd)
            sampled.append(np.asarray(nib.load(out).get_fdata(dtype=np.float64)))
    return _ddf_from_sampled(sampled[:3], sampled[3], pad, "greedy")


# ------------------------------------------------------------------------------------------------------ the peers
def _peer_warp_mae(pair: Pair, ddf: np.ndarray, peer_warped: np.ndarray) -> float:
    """Mean |peer's own warped moving - warp_image(moving, ddf)| in the fixed label (or everywhere), in [0, 1]."""
    moving = pair.moving_image[0, 0].double().numpy()
    ours = warp_image(torch.as_tensor(moving, dtype=torch.float32)[None, None], torch.as_tensor(ddf).float()[None])
    lo, hi = float(moving.min()), float(moving.max())
    err = np.abs(ours[0, 0].numpy() - peer_warped) / (hi - lo if hi > lo else 1.0)
    if pair.fixed_label is None:
        return float(err.mean())
    return float(err[pair.fixed_label[0].amax(0).numpy() > 0.5].mean())


def _check_files(pair: Pair, method: str) -> tuple[str, str]:
    if pair.spec is None:
        raise ValueError(f"{method}: pair {pair.name!r} has no files (Pair.spec); peers read the images themselves.")
    return pair.spec.fixed, pair.spec.moving


def _check_read(method: str, name: str, arr: np.ndarray, ref: torch.Tensor) -> None:
    ref_arr = ref[0, 0].double().numpy()
    if tuple(arr.shape) != ref_arr.shape or not np.allclose(arr, ref_arr, atol=1e-3):
        raise ValueError(f"{method}: the {name} image reads with another voxel order than nibabel's.")


def _output(ddf: np.ndarray, seconds: float, cpu: float, pair: Pair, warped: np.ndarray) -> MethodOutput:
    extras = {"cpu_seconds": cpu, "peer_warp_mae": _peer_warp_mae(pair, ddf, warped)}
    return MethodOutput(torch.as_tensor(ddf)[None], seconds, extras=extras)


def _run_ants(pair: Pair, full: bool) -> MethodOutput:
    import ants

    fixed_path, moving_path = _check_files(pair, "ants")
    fixed = ants.image_read(fixed_path, pixeltype="float")
    moving = ants.image_read(moving_path, pixeltype="float")
    _check_read("ants", "fixed", fixed.numpy(), pair.fixed_image)
    _check_read("ants", "moving", moving.numpy(), pair.moving_image)
    same = [np.allclose(getattr(fixed, a), getattr(moving, a)) for a in ("origin", "spacing", "direction")]
    if not all(same):
        raise ValueError("ants: moving and fixed images have different geometry.")
    kwargs = {"reg_iterations": (40, 20, 10)} if full else {}
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        reg = ants.registration(fixed, moving, type_of_transform="SyN", outprefix=str(Path(tmp) / "ants_"), **kwargs)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ddf = ants_ddf_from_transforms(fixed, moving, reg["fwdtransforms"])
        warped = reg["warpedmovout"].numpy()
    return _output(ddf, seconds, cpu, pair, warped)


def _run_elastix(pair: Pair) -> MethodOutput:
    import itk

    fixed_path, moving_path = _check_files(pair, "elastix")
    fixed = itk.imread(fixed_path, itk.F)
    moving = itk.imread(moving_path, itk.F)
    _check_read("itk", "fixed", np.asarray(itk.array_from_image(fixed)).transpose(2, 1, 0), pair.fixed_image)
    _check_read("itk", "moving", np.asarray(itk.array_from_image(moving)).transpose(2, 1, 0), pair.moving_image)
    if not all(np.allclose(a, b) for a, b in zip(itk_geometry(fixed), itk_geometry(moving))):
        raise ValueError("itk: moving and fixed images have different geometry.")
    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("bspline"))
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        # number_of_threads is not passed: itk-elastix 0.25.4 crashes with it (ITK's global default applies).
        _, result_params = itk.elastix_registration_method(
            fixed, moving, parameter_object=params, log_to_console=False, output_directory=tmp
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ddf = elastix_ddf_from_parameters(moving, result_params)
    # elastix's own result image uses cubic B-spline interpolation; the check resamples linearly (as warp_image)
    linear = itk.transformix_filter(moving, _elastix_linear_parameters(result_params, 0.0), log_to_console=False)
    warped = np.asarray(itk.array_from_image(linear), dtype=np.float64).transpose(2, 1, 0)
    return _output(ddf, seconds, cpu, pair, warped)


def _run_greedy(pair: Pair, metric: str = "NCC 2x2x2") -> MethodOutput:
    import nibabel as nib

    fixed, moving = _check_files(pair, "greedy")
    if pair.moving_affine is None or pair.moving_image.shape != pair.fixed_image.shape:
        raise ValueError("greedy: moving and fixed must share one grid with an affine (load_pair).")
    with tempfile.TemporaryDirectory() as tmp:
        affine, warp, warped = (str(Path(tmp) / n) for n in ("affine.mat", "warp.nii.gz", "warped.nii.gz"))
        start, cpu = time.perf_counter(), time.process_time()
        _greedy(f"-d 3 -a -dof 12 -ia-image-centers -m {metric} -n 100x50x10 -i {fixed} {moving} -o {affine}")
        _greedy(f"-d 3 -m {metric} -n 100x50x10 -s 1.732vox 0.707vox -i {fixed} {moving} -it {affine} -o {warp}")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        _greedy(f"-d 3 -rf {fixed} -ri LINEAR -rm {moving} {warped} -r {warp} {affine}")
        own = np.asarray(nib.load(warped).get_fdata(dtype=np.float64))
        ddf = greedy_ddf_from_transforms(fixed, pair.spatial_shape, pair.moving_affine, [warp, affine])
    return _output(ddf, seconds, cpu, pair, own)
