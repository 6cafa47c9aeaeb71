"""Pairwise registration benchmark: bundle-free registration against the bundles' networks and the classical peers.

Every method registers every pair of a set side by side in one run, with the same thread count, interleaved pair by
pair (each pair is registered by all methods before the next pair, so that the machine's load affects all alike):

- ``none``: no registration;
- ``pipeline`` (and ``pipeline:mi`` on the multi-modal set): bundle-free :func:`monai_reg_ext.register` with its
  defaults (initial alignment, affine, deformable; ``docs/optimisation.md``), the whole call timed;
- ``network`` and ``network+io``: the relevant bundle's network through :func:`monai_reg_ext.register` (one untimed
  warm-up per set), then with ``--io-iterations`` iterations of instance optimisation;
- ``greedy`` (``greedy_nmi`` on the multi-modal set): picsl-greedy, affine + deformable, NCC 2x2x2 (NMI), 100x50x10;
- ``ants_syn``: antspyx ``SyN`` with its defaults (whose metric is Mattes mutual information in both stages);
- ``elastix_bspline``: itk-elastix's default B-spline map (Mattes mutual information).

Sets (``--sets``):

- ``brain``: the 4 test pairs of ``bundles/unpaired_mr_brain`` (its ``data/test/pairs.json``, as its
  ``scripts/evaluate.py``): the real MNI T1 template under synthetic deformations, true DDF known; Dice GM/WM
  (argmax protocol), displacement error in mm inside the fixed brain.
- ``brain_unseen``: pairs built here (:func:`build_pairs`) from the real MNI ICBM152 2009a T1 template at another
  resolution (2 mm instead of the bundle's 2.5 mm) and with another deformation family (an affine: rotation 8 degrees
  about a random axis, translation 6 mm, scale 1.05 or 1/1.05, composed with a smooth random field) than any bundle
  trains on; a bias field and Rician noise on each image. **The deformations are synthetic; the anatomy is one real
  template.** Labels: GM/WM probability maps of the template, warped alike (argmax). True DDF known.
- ``lung``: the 4 test pairs of ``bundles/unpaired_ct_lung`` (real inter-subject chest CT, lung masks); lung Dice,
  no true DDF.
- ``multimodal``: as ``brain_unseen`` (other seeds), but the fixed image's T1 intensities go through a non-monotonic
  map (:func:`remap_contrast`: CSF dark, GM brightest, WM in between, i.e. the GM/WM order swapped), so that the pair
  is related by no monotonic intensity function. True DDF known.
- ``schedules``: the bundle-free pipeline's schedule choices on the ``brain`` pairs (``--schedules``, default
  :data:`SCHEDULES`: deformable levels and iterations, control-point spacing, affine iterations, 1 vs 2 threads).

Outputs into ``--output`` (default ``docs/benchmarks/pairwise``): ``pairwise.json`` (every row, per-pair values, load
averages, versions, generator parameters and file hashes) and ``pairwise.md`` (tables and ratios). Generated pairs go
to ``--data`` (default a temporary folder; regenerated identically at every run, deterministic seeds).

Usage (from the repository root)::

    nice -n 5 python scripts/benchmark_pairwise.py                              # every set, 1 thread
    python scripts/benchmark_pairwise.py --sets brain --methods none pipeline greedy --max-pairs 2
    python scripts/benchmark_pairwise.py --max-pairs lung=2 brain_unseen=1 multimodal=1      # fewer pairs
    python scripts/benchmark_pairwise.py --sets schedules --max-pairs 2
    python scripts/benchmark_pairwise.py --sets brain --pipeline_options '{"iterations": [100, 30, 5]}'

The MNI template is read from nilearn (``--mni-source``: a nilearn wheel, ``nilearn`` for the installed package, or a
folder; default: the installed package, else ``downloads/**/nilearn-*.whl``; ``pip download --no-deps nilearn -d
downloads/nl``). Missing peers (antspyx, itk-elastix, picsl-greedy) are skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext import evaluation as ev

ROOT = Path(__file__).resolve().parents[1]
BRAIN_BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"
LUNG_BUNDLE = ROOT / "bundles" / "unpaired_ct_lung"
SETS = ("brain", "brain_unseen", "lung", "multimodal", "schedules")
METHODS = (
    "none",
    "pipeline",
    "pipeline:mi",
    "network",
    "network+io",
    "greedy",
    "greedy_nmi",
    "ants_syn",
    "elastix_bspline",
)
MULTIMODAL_ONLY = ("pipeline:mi", "greedy_nmi")
LABELS = {
    "none": "no registration",
    "pipeline": "bundle-free pipeline (LNCC)",
    "pipeline:mi": "bundle-free pipeline (MI)",
    "network": "network",
    "network+io": "network + instance optimisation",
    "greedy": "greedy (NCC)",
    "greedy_nmi": "greedy (NMI)",
    "ants_syn": "ANTs SyN (defaults, Mattes MI)",
    "elastix_bspline": "elastix B-spline (defaults, Mattes MI)",
}
PEER_NAMES = ("greedy", "greedy_nmi", "ants_syn", "elastix_bspline")

#: Generator of the ``brain_unseen`` and ``multimodal`` pairs (recorded in the results).
GENERATOR: dict[str, Any] = {
    # grids centred on the template's brain: 2 mm for brain_unseen (the bundle trains at 2.5 mm); the multimodal set
    # stays at 2.5 mm because the Parzen-window MI costs ~100x LNCC per voxel (docs/benchmarks.md)
    "grid": {
        "brain_unseen": {"shape": [88, 104, 88], "spacing": 2.0},
        "multimodal": {"shape": [68, 84, 72], "spacing": 2.5},
    },
    "rotation_deg": 8.0,  # about a random unit axis through the grid centre, random sign
    "translation_mm": 6.0,  # along a random unit direction
    "scale": 1.05,  # isotropic, 1.05 or 1 / 1.05 (alternating)
    "smooth_max_mm": 6.0,  # smooth field of the pair: max norm, Gaussian-smoothed noise of sigma below
    "smooth_sigma_mm": 16.0,
    "moving_max_mm": 4.0,  # the moving image's own smooth deformation of the template (varies the moving anatomy)
    "bias_max": 0.15,  # log bias amplitude in [0, bias_max]
    "noise_std": 0.02,  # Rician noise sigma on intensities in [0, 1]
    "seeds": {"brain_unseen": 17000, "multimodal": 18000},  # pair k uses seed + 10 k (+1, +2 for the fields)
    "pairs": {"brain_unseen": 2, "multimodal": 2},
    # multimodal fixed contrast: T1 knots (fractions of the brain's WM intensity) -> new intensity
    "remap_t1": [0.0, 0.3, 0.78, 1.0, 1.3],
    "remap_value": [0.0, 0.25, 1.0, 0.45, 0.45],
}

#: Schedule variants of the ``schedules`` set: name -> pipeline options (``threads``: torch threads for that call).
SCHEDULES: dict[str, dict[str, Any]] = {
    "default: deformable 4/2/1 x 100/50/20, cps 4": {"levels": [4, 2, 1], "iterations": [100, 50, 20]},
    "deformable 4/2/1 x 100/30/5": {"levels": [4, 2, 1], "iterations": [100, 30, 5]},
    "deformable 4/2 x 100/50 (no full-resolution level)": {"levels": [4, 2], "iterations": [100, 50]},
    "default, control points every 6 voxels": {
        "levels": [4, 2, 1],
        "iterations": [100, 50, 20],
        "control_point_spacing": 6,
    },
    "affine 4/2 x 50/25, deformable 4/2/1 x 100/30/5": {
        "affine_iterations": [50, 25],
        "levels": [4, 2, 1],
        "iterations": [100, 30, 5],
    },
    "default, 2 threads": {"levels": [4, 2, 1], "iterations": [100, 50, 20], "threads": 2},
}


# ------------------------------------------------------------------------------------------------ environment
def load_average() -> list[float] | None:
    """1, 5 and 15 min load averages."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("monai", "numpy", "nibabel", "antspyx", "itk-elastix", "picsl_greedy"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "not installed"
    return out


# ------------------------------------------------------------------------------------------------ pair generator
def find_mni_source(source: str | None) -> str | None:
    """``source`` itself, else ``None`` when nilearn is importable, else the newest ``downloads/**/nilearn-*.whl``.

    Raises:
        FileNotFoundError: no source found (how to get one is said).
    """
    if source is not None:
        return source
    try:
        import nilearn  # noqa: F401

        return None
    except ImportError:
        pass
    wheels = sorted((ROOT / "downloads").glob("**/nilearn-*.whl"))
    if wheels:
        return str(wheels[-1])
    raise FileNotFoundError(
        "the brain_unseen and multimodal sets need the MNI template from nilearn: pip install nilearn, or "
        "`pip download --no-deps nilearn -d downloads/nl`, or pass --mni-source WHEEL_OR_FOLDER."
    )


@functools.lru_cache(maxsize=2)
def load_template(source: str | None, spacing: float) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """The MNI T1/GM/WM volumes in [0, 1], anti-aliased for ``spacing`` mm, their affine, and their sha256 (cached)."""
    from monai_reg_ext.demo.mni_template import antialias, load_mni_template

    volumes, affine, hashes, _ = load_mni_template(source)
    return antialias(volumes, affine, spacing), affine, hashes


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues' rotation ``(3, 3)`` about unit ``axis``."""
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * (k @ k)


def affine_field(shape: Sequence[int], matrix: np.ndarray, translation_vox: np.ndarray) -> torch.Tensor:
    """Pull DDF ``(1, 3, *S)`` (voxels) of ``x -> c + matrix (x - c) + t`` about the grid centre ``c``."""
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    c = (np.asarray(shape, dtype=np.float64) - 1) / 2
    rel = grid - c[:, None, None, None]
    mapped = np.einsum("ij,j...->i...", matrix, rel) + c[:, None, None, None] + translation_vox[:, None, None, None]
    return torch.from_numpy(mapped - grid)[None]


def smooth_field(shape: Sequence[int], max_vox: float, sigma_vox: float, seed: int) -> torch.Tensor:
    """Gaussian-smoothed random field ``(1, 3, *S)`` (voxels) of max norm ``max_vox``; drawn on a grid padded by
    ``3 sigma`` and cropped, so that the faces are not stronger than the interior."""
    from monai_reg_ext.spatial import random_smooth_ddf

    if max_vox <= 0:
        return torch.zeros(1, 3, *shape, dtype=torch.float64)
    pad = int(math.ceil(3 * sigma_vox))
    big = [int(s) + 2 * pad for s in shape]
    v = random_smooth_ddf(big, 1.0, sigma_vox, seed=seed, diffeomorphic=False, dtype=torch.float64)
    v = v[:, :, pad : pad + shape[0], pad : pad + shape[1], pad : pad + shape[2]]
    return v * (max_vox / float(v.norm(dim=1).max()))


def remap_contrast(t1: np.ndarray, wm_level: float, knots: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """A non-monotonic intensity map of a T1 image: piecewise linear through ``(knots * wm_level, values)``."""
    return np.interp(t1, np.asarray(knots, dtype=np.float64) * wm_level, np.asarray(values, dtype=np.float64))


def _bias(rng: np.random.Generator, shape: Sequence[int], amplitude: float) -> np.ndarray:
    coarse = torch.from_numpy(rng.standard_normal((1, 1, 4, 4, 4)))
    b = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0].numpy()
    b = b - b.mean()
    return np.exp(amplitude * b / max(float(np.abs(b).max()), 1e-12))


def _corrupt(clean: np.ndarray, rng: np.random.Generator, p: Mapping[str, Any]) -> np.ndarray:
    img = np.clip(clean, 0, None) * _bias(rng, clean.shape, float(rng.uniform(0, p["bias_max"])))
    s = p["noise_std"]
    img = np.sqrt((img + s * rng.standard_normal(img.shape)) ** 2 + (s * rng.standard_normal(img.shape)) ** 2)
    return (img * (clean > 0.01)).astype(np.float32)


def _one_hot(sampled: Mapping[str, np.ndarray]) -> np.ndarray:
    bg = np.clip(1.0 - sampled["gm"] - sampled["wm"], 0.0, 1.0)
    arg = np.argmax(np.stack([bg, sampled["gm"], sampled["wm"]]), axis=0)
    return np.stack([arg == 1, arg == 2], axis=-1).astype(np.uint8)


def build_pairs(
    volumes: Mapping[str, np.ndarray],
    src_affine: np.ndarray,
    out_dir: str | os.PathLike,
    kind: str,
    n_pairs: int,
    params: Mapping[str, Any] = GENERATOR,
) -> Path:
    """Write ``n_pairs`` synthetic-deformation pairs of the real template ``volumes`` (t1, gm, wm; anti-aliased) and
    their ``pairs.json`` into ``out_dir``; returns the pairs file.

    Pair ``k`` (seed ``s = params["seeds"][kind] + 10 k``): the moving image is the template under its own smooth
    field ``v`` (seed ``s + 1``); the true pull DDF is ``u = affine ∘ smooth`` (rotation, translation, scale about the
    grid centre; smooth field of seed ``s + 2``); the fixed image is the template sampled at
    ``x + u(x) + v(x + u(x))``, so ``fixed(x) = moving(x + u(x))``. Each image then gets its own bias field and Rician
    noise; with ``kind == "multimodal"`` the fixed T1 first goes through :func:`remap_contrast`.

    Raises:
        ValueError: an unknown ``kind``.
    """
    from monai_reg_ext.demo.mni_template import sample_volumes, target_grid
    from monai_reg_ext.spatial import compose_ddf

    if kind not in ("brain_unseen", "multimodal"):
        raise ValueError(f"build_pairs: kind must be 'brain_unseen' or 'multimodal', got {kind!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = params["grid"][kind]
    shape, spacing = tuple(int(s) for s in grid["shape"]), float(grid["spacing"])
    tgt_affine, _ = target_grid(volumes, src_affine, shape, spacing)
    wm_level = float(np.median(volumes["t1"][volumes["wm"] > 0.6]))
    entries = []
    for k in range(int(n_pairs)):
        seed = int(params["seeds"][kind]) + 10 * k
        rng = np.random.default_rng(seed)
        axis = rng.standard_normal(3)
        angle = math.radians(params["rotation_deg"]) * rng.choice([-1.0, 1.0])
        direction = rng.standard_normal(3)
        shift = params["translation_mm"] / spacing * direction / np.linalg.norm(direction)
        scale = params["scale"] if k % 2 == 0 else 1.0 / params["scale"]
        affine_part = affine_field(shape, scale * rotation_matrix(axis, angle), shift)
        sigma = params["smooth_sigma_mm"] / spacing
        smooth = smooth_field(shape, params["smooth_max_mm"] / spacing, sigma, seed + 2)
        true_ddf = compose_ddf(first=affine_part, second=smooth)  # x -> A(x + s(x))
        own = smooth_field(shape, params["moving_max_mm"] / spacing, sigma, seed + 1)
        total = compose_ddf(first=own, second=true_ddf)  # x + u(x) + v(x + u(x))
        moving = sample_volumes(volumes, tgt_affine, src_affine, shape, own[0].numpy())
        fixed = sample_volumes(volumes, tgt_affine, src_affine, shape, total[0].numpy())
        fixed_t1 = fixed["t1"]
        if kind == "multimodal":
            fixed_t1 = remap_contrast(fixed_t1, wm_level, params["remap_t1"], params["remap_value"])
            fixed_t1 = fixed_t1 * (fixed["t1"] > 0.01)
        images = {
            "moving": _corrupt(moving["t1"], np.random.default_rng([seed, 1]), params),
            "fixed": _corrupt(fixed_t1, np.random.default_rng([seed, 2]), params),
            "moving_label": _one_hot(moving),
            "fixed_label": _one_hot(fixed),
            "ddf": np.moveaxis(true_ddf[0].numpy(), 0, -1).astype(np.float32),
        }
        entry = {"name": f"{kind}_{k:02d}", "subject": f"seed {seed}"}
        for key, arr in images.items():
            path = out / f"{kind}_{k:02d}_{key}.nii.gz"
            nib.save(nib.Nifti1Image(arr, tgt_affine), path)
            entry[key] = path.name
        entries.append(entry)
    path = out / f"{kind}_pairs.json"
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path


def file_hashes(pairs_file: Path) -> dict[str, str]:
    """sha256 of the arrays (not the gzip bytes) of every file of a generated pairs file."""
    out = {}
    for entry in json.loads(pairs_file.read_text()):
        for key in ("moving", "fixed", "moving_label", "fixed_label", "ddf"):
            arr = np.asarray(nib.load(pairs_file.parent / entry[key]).dataobj)
            out[entry[key]] = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]
    return out


# ------------------------------------------------------------------------------------------------ sets and methods
@dataclasses.dataclass
class PairSet:
    """One set: its pairs, how to load them, its metrics and the bundle whose network it uses."""

    name: str
    specs: list[ev.PairSpec]
    metrics: list[ev.Metric]
    bundle: Path
    load: dict[str, Any]
    dice_keys: tuple[str, ...]
    description: str


def brain_metrics() -> list[ev.Metric]:
    """Dice GM/WM (argmax protocol), error mm, folding % and SDlogJ inside the fixed brain."""
    return ev.known_ddf_metrics(("gm", "wm"))


def lung_metrics() -> list[ev.Metric]:
    """Lung Dice (masks warped bilinearly, >= 0.5), folding % and SDlogJ over the whole grid."""
    return [ev.dice(["lung"]), ev.folding(percent=True), ev.sdlogj(key="sdlogj")]


def pair_set(name: str, data_dir: Path, mni_source: str | None, max_pairs: int | None) -> tuple[PairSet, dict]:
    """The pairs of set ``name`` (generated ones written to ``data_dir``) and what describes them."""
    info: dict[str, Any] = {}
    if name in ("brain", "schedules"):
        specs = ev.read_pairs(BRAIN_BUNDLE / "data" / "test" / "pairs.json")
        specs = [dataclasses.replace(s, name=f"brain_{i:02d}") for i, s in enumerate(specs)]
        desc = "unpaired_mr_brain test pairs: real MNI T1 under synthetic deformations (64x80x64, 2.5 mm)"
        made = PairSet(name, specs, brain_metrics(), BRAIN_BUNDLE, {}, ("dice_gm", "dice_wm"), desc)
    elif name == "lung":
        specs = ev.read_pairs(LUNG_BUNDLE / "data" / "test" / "pairs.json")
        specs = [dataclasses.replace(s, name=s.subject or f"lung_{i:02d}") for i, s in enumerate(specs)]
        desc = "unpaired_ct_lung test pairs: real inter-subject chest CT (64x56x64, 4.5 mm), lung masks"
        made = PairSet(name, specs, lung_metrics(), LUNG_BUNDLE, {"binarise": True}, ("dice_lung",), desc)
    elif name in ("brain_unseen", "multimodal"):
        n = int(GENERATOR["pairs"][name])
        n = min(n, max_pairs) if max_pairs else n
        start = time.perf_counter()
        grid = GENERATOR["grid"][name]
        volumes, affine, hashes = load_template(find_mni_source(mni_source), grid["spacing"])
        path = build_pairs(volumes, affine, data_dir, name, n)
        info = {"generated_in_seconds": time.perf_counter() - start, "source_sha256": hashes}
        info["file_array_sha256"] = file_hashes(path)
        specs = ev.read_pairs(path)
        shape = "x".join(str(s) for s in grid["shape"])
        desc = (
            "generated here (synthetic deformations of one real image): the MNI ICBM152 2009a T1 template under an "
            f"affine + smooth deformation ({shape} voxels, {grid['spacing']} mm)"
            + (", fixed T1 contrast remapped non-monotonically (GM brightest)" if name == "multimodal" else "")
        )
        made = PairSet(name, specs, brain_metrics(), BRAIN_BUNDLE, {}, ("dice_gm", "dice_wm"), desc)
    else:
        raise ValueError(f"unknown set {name!r}; choose from {SETS}.")
    if max_pairs:
        made.specs = made.specs[: int(max_pairs)]
    return made, info


class _Quiet:
    """Send file descriptors 1 and 2 to /dev/null (greedy's C++ code prints every iteration)."""

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.null = os.open(os.devnull, os.O_WRONLY)
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.null, 1)
        os.dup2(self.null, 2)

    def __exit__(self, *exc: Any) -> None:
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in [*self.saved, self.null]:
            os.close(fd)


def with_threads(method: ev.Method, threads: int | None, base: int, quiet: bool = False) -> ev.Method:
    """``method`` run with ``threads`` torch threads (restored to ``base`` after), the 1-min load average at its
    start recorded in ``extras["load_1min"]``; ``quiet`` silences its stdout/stderr."""

    def run(pair: ev.Pair) -> ev.MethodOutput:
        load = load_average()
        if threads:
            torch.set_num_threads(int(threads))
        try:
            with _Quiet() if quiet else contextlib.nullcontext():
                out = method(pair)
        finally:
            torch.set_num_threads(base)
        out.extras["load_1min"] = load[0] if load else float("nan")
        return out

    return run


def make_methods(
    names: Sequence[str],
    pairs: PairSet,
    threads: int,
    io_iterations: int,
    pipeline_options: Mapping[str, Any],
    model: Any = None,
) -> tuple[dict[str, ev.Method], dict[str, str]]:
    """The methods ``names`` (see :data:`METHODS`) for one set; peers whose package is missing are skipped."""
    methods: dict[str, ev.Method] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if name in ("pipeline", "pipeline:mi"):
            options = dict(pipeline_options)
            if name == "pipeline:mi":
                options["similarity"] = "mi"
            methods[name] = ev.register_pipeline("cpu", **options)
        elif name in ("network", "network+io"):
            io = int(io_iterations) if name == "network+io" else 0
            methods[name] = ev.register_bundle(model, "cpu", instance_optimisation=io)
        elif name == "none":
            methods[name] = ev.identity()
        elif name in PEER_NAMES:
            ok, why = ev.peer_available(name)
            if not ok:
                skipped[name] = why
                print(f"note: skipping {name}: its package is not importable ({why}).", flush=True)
                continue
            methods[name] = ev.peer_method(name)
        else:
            raise ValueError(f"unknown method {name!r}; choose from {METHODS}.")
        methods[name] = with_threads(methods[name], None, threads, quiet=name.startswith("greedy"))
    return methods, skipped


def schedule_methods(schedules: Mapping[str, Mapping[str, Any]], threads: int) -> dict[str, ev.Method]:
    """One bundle-free pipeline method per schedule variant (all through ``register``'s own steps)."""
    out = {}
    for name, options in schedules.items():
        opts = {k: v for k, v in options.items() if k != "threads"}
        out[name] = with_threads(ev.register_pipeline("cpu", **opts), options.get("threads"), threads)
    return out


# ------------------------------------------------------------------------------------------------ running
def _add_mean_dice(rows: Mapping[str, list[dict[str, Any]]], keys: Sequence[str]) -> None:
    for method_rows in rows.values():
        for row in method_rows:
            values = [row[k] for k in keys if k in row]
            if values:
                row["dice_mean"] = float(np.mean(values))


def run_set(
    pairs: PairSet, methods: Mapping[str, ev.Method], warmup: Sequence[str] = (), log: Callable | None = print
) -> dict[str, Any]:
    """Every method on every pair (interleaved pair by pair); summaries with ``dice_mean`` added."""
    load_start = load_average()
    start = time.perf_counter()
    loaded = (ev.load_pair(spec, **pairs.load) for spec in pairs.specs)
    rows = ev.evaluate_pairs(loaded, methods, pairs.metrics, warmup=warmup, log=log)
    _add_mean_dice(rows, pairs.dice_keys)
    res = ev.results_by_method(rows, exclude=("pair", "subject"))
    res["load_average_1_5_15min"] = {"start": load_start, "end": load_average()}
    res["wall_seconds"] = time.perf_counter() - start
    return res


def warm_up_pipeline() -> float:
    """One small untimed pipeline call (first-call costs of torch: allocator, kernels); returns its seconds."""
    from monai_reg_ext.optimise import register_images

    start = time.perf_counter()
    g = torch.linspace(-1, 1, 24)
    blob = torch.exp(-(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) * 3)[None, None]
    register_images(blob, blob.roll(1, 2), affine_iterations=(3, 3), iterations=(3, 3, 3))
    return time.perf_counter() - start


def _median(summary: Mapping[str, Any], method: str, key: str) -> float:
    return float(summary.get(method, {}).get(key, {}).get("median", float("nan")))


def _mean(summary: Mapping[str, Any], method: str, key: str) -> float:
    return float(summary.get(method, {}).get(key, {}).get("mean", float("nan")))


def _per_pair_ratio(pairs: Mapping[str, list[dict[str, Any]]], a: str, b: str, key: str) -> float:
    """Median over pairs of ``a``'s ``key`` over ``b``'s on the same pair (``nan`` when missing)."""
    by_pair = {r["pair"]: r.get(key) for r in pairs.get(b, [])}
    values = [r.get(key) / by_pair[r["pair"]] for r in pairs.get(a, []) if r.get(key) and by_pair.get(r["pair"])]
    return float(np.median(values)) if values else float("nan")


def ratios(res: Mapping[str, Any], pipeline: str = "pipeline") -> dict[str, Any]:
    """The issue's ratios for one set (``{"summary", "pairs"}`` of :func:`run_set`): seconds and CPU seconds of
    ``pipeline`` over each peer's (median over pairs of the same-pair ratio), mean Dice minus each peer's and the best
    peer's, mean error over SyN's, and network + instance optimisation against ``pipeline``."""
    summary, pairs = res["summary"], res["pairs"]
    out: dict[str, Any] = {}
    dice = _mean(summary, pipeline, "dice_mean")
    for peer in ("greedy", "greedy_nmi", "elastix_bspline", "ants_syn"):
        if peer in summary:
            out[f"seconds_vs_{peer}"] = _per_pair_ratio(pairs, pipeline, peer, "seconds")
            out[f"cpu_seconds_vs_{peer}"] = _per_pair_ratio(pairs, pipeline, peer, "cpu_seconds")
            out[f"dice_mean_minus_{peer}"] = dice - _mean(summary, peer, "dice_mean")
    if "ants_syn" in summary and "error_mm" in summary.get(pipeline, {}):
        out["error_vs_ants_syn"] = _mean(summary, pipeline, "error_mm") / _mean(summary, "ants_syn", "error_mm")
    peers = [p for p in PEER_NAMES if p in summary]
    if peers:
        best = max(peers, key=lambda p: _mean(summary, p, "dice_mean"))
        out["best_peer_by_dice"] = best
        out["dice_mean_minus_best_peer"] = dice - _mean(summary, best, "dice_mean")
    if "network+io" in summary:
        out["network_io_seconds_vs_pipeline"] = _per_pair_ratio(pairs, "network+io", pipeline, "seconds")
        out["network_io_dice_mean_minus_pipeline"] = _mean(summary, "network+io", "dice_mean") - dice
        if "error_mm" in summary.get(pipeline, {}):
            out["network_io_error_vs_pipeline"] = _mean(summary, "network+io", "error_mm") / _mean(
                summary, pipeline, "error_mm"
            )
    return out


# ------------------------------------------------------------------------------------------------ markdown
def _fmt(stat: Mapping[str, float] | None, digits: int) -> str:
    if not stat or not stat.get("n"):
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _sec(stat: Mapping[str, float] | None) -> str:
    if not stat or not stat.get("n"):
        return "–"
    return f"{stat['median']:.2f} ({stat['min']:.1f}–{stat['max']:.1f})"


def set_table(name: str, res: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
    """Markdown: method | Dice per label | mean Dice | error mm | folding % | s (median, min–max) | CPU s."""
    summary = res["summary"]
    dice_keys = [k for k in dict.fromkeys(k for s in summary.values() for k in s) if k.startswith("dice_")]
    dice_keys = [k for k in dice_keys if k != "dice_mean"] + ["dice_mean"]
    has_error = any("error_mm" in s for s in summary.values())
    titles = [f"Dice {k[5:].upper()}" if k != "dice_mean" else "mean Dice" for k in dice_keys]
    titles += ["error mm"] if has_error else []
    titles += ["folding %", "s/pair median (min–max)", "CPU s median"]
    lines = ["| method | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for method, s in summary.items():
        cells = [_fmt(s.get(k), 4) for k in dice_keys]
        cells += [_fmt(s.get("error_mm"), 3)] if has_error else []
        cells += [_fmt(s.get("folding_pct"), 3)]
        if method == "none":
            cells += ["0", "0"]
        else:
            cpu = s.get("cpu_seconds")
            cells += [_sec(s.get("seconds")), f"{cpu['median']:.2f}" if cpu and cpu.get("n") else "–"]
        lines.append(f"| {(labels or LABELS).get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ratio_lines(r: Mapping[str, Any]) -> list[str]:
    """One bullet per ratio of :func:`ratios`."""
    lines = []
    for key, value in r.items():
        text = value if isinstance(value, str) else f"{value:.3f}"
        lines.append(f"- `{key}`: {text}")
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    """The whole report."""
    env = results["environment"]
    lines = [
        "# Pairwise registration benchmark",
        "",
        f"Command: `{results['command']}`  ",
        f"Date (UTC): {env['date_start']} to {env['date_end']}; {env['cpu_model']}, {env['cpu_count']} CPUs shared "
        f"with other jobs; **{results['threads']} thread(s)** for torch, ITK/elastix, ANTs and greedy; load average "
        f"(1/5/15 min) {env['load_start']} at the start, {env['load_end']} at the end; "
        f"torch {env['versions']['torch']}.",
        "",
        "Seconds: wall time of the whole call per pair (bundle-free pipeline and networks: `register` on the files; "
        "peers: their registration call(s)), median and range over pairs; CPU s: process CPU time of the same span "
        "(less sensitive to other jobs). Dice and error: mean ± population std over pairs. Error: mean |ddf - true "
        "ddf| in mm inside the fixed brain. Folding: % of voxels (brain: in the fixed brain; lung: whole grid) with "
        "Jacobian determinant <= 0.",
        "",
    ]
    for name, res in results["sets"].items():
        if name == "schedules":
            continue
        n = len(next(iter(res["pairs"].values())))
        lines += [f"## `{name}` ({n} pairs)", "", res["description"], ""]
        if res.get("skipped"):
            lines += [f"Skipped: {res['skipped']}", ""]
        lines += [set_table(name, res), ""]
        for pipe in ("pipeline", "pipeline:mi"):
            if pipe in res.get("ratios", {}):
                lines += [f"Ratios of `{pipe}`:", "", *ratio_lines(res["ratios"][pipe]), ""]
    if "schedules" in results["sets"]:
        res = results["sets"]["schedules"]
        n = len(next(iter(res["pairs"].values())))
        lines += [f"## Pipeline schedules on the `brain` pairs ({n} pairs)", ""]
        lines += [set_table("schedules", res, labels={m: m for m in res["summary"]}), ""]
        lines += ["Options of each variant:", "", "```json", json.dumps(res["schedules"], indent=1), "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=[s for s in SETS], choices=SETS, help="sets to run, in this order")
    ap.add_argument(
        "--methods", nargs="+", default=list(METHODS), help=f"among {METHODS} (pipeline:mi, greedy_nmi: multimodal)"
    )
    ap.add_argument("--threads", type=int, default=1, help="threads for torch, ITK/elastix, ANTs and greedy")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks" / "pairwise"), help="results folder")
    ap.add_argument("--name", default="pairwise", help="file names <name>.json and <name>.md")
    ap.add_argument("--data", default=None, help="folder of the generated pairs (default: a temporary folder)")
    ap.add_argument("--mni-source", default=None, help="nilearn wheel, 'nilearn' or folder with the MNI files")
    ap.add_argument(
        "--max-pairs",
        nargs="+",
        default=None,
        help="at most N pairs per set: N (every set) and/or SET=N entries, e.g. 2 lung=1",
    )
    ap.add_argument("--io-iterations", type=int, default=50, help="instance optimisation iterations (network+io)")
    ap.add_argument(
        "--pipeline_options",
        "--pipeline-options",
        type=json.loads,
        default={},
        help="JSON options of the bundle-free pipeline methods (e.g. '{\"iterations\": [100, 30, 5]}')",
    )
    ap.add_argument(
        "--render",
        default=None,
        help="rewrite <output>/<name>.{json,md} (ratios recomputed) from this results JSON; runs no registration",
    )
    ap.add_argument(
        "--schedules",
        type=json.loads,
        default=None,
        help="JSON {name: options} of the schedules set (default built in)",
    )
    return ap.parse_args(argv)


def max_pairs_by_set(values: Sequence[str] | None) -> dict[str, int | None]:
    """``--max-pairs`` entries (``N`` for every set, ``SET=N`` for one) -> ``{set: N or None}``.

    Raises:
        ValueError: an unknown set or a value that is not a positive integer.
    """
    out: dict[str, int | None] = dict.fromkeys(SETS)
    for value in values or ():
        name, sep, number = str(value).rpartition("=")
        if sep and name not in SETS:
            raise ValueError(f"--max-pairs: unknown set {name!r}; choose from {SETS}.")
        if not number.isdigit() or int(number) < 1:
            raise ValueError(f"--max-pairs: expected N or SET=N with N >= 1, got {value!r}.")
        for key in [name] if sep else SETS:
            out[key] = int(number)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the sets and write ``<output>/<name>.{json,md}`` (rewritten after every set)."""
    args = parse_args(argv)
    if args.render:
        return render(Path(args.render), Path(args.output), args.name)
    limits = max_pairs_by_set(args.max_pairs)
    env_threads = ev.configure_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="pairwise_")
        data_dir = Path(tmp.name)
    else:
        data_dir = Path(args.data)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {METHODS}.")
    results: dict[str, Any] = {
        "command": " ".join(["python", "scripts/benchmark_pairwise.py", *(sys.argv[1:] if argv is None else argv)]),
        "threads": args.threads,
        "pipeline_options": args.pipeline_options,
        "io_iterations": args.io_iterations,
        "generator": GENERATOR,
        "peers": {m: ev.PEERS[m] for m in PEER_NAMES if m in ev.PEERS},
        "environment": {
            "date_start": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "nice": os.nice(0),
            "load_start": load_average(),
            "versions": _versions(),
            **env_threads,
        },
        "sets": {},
    }
    results["environment"]["pipeline_warmup_seconds"] = warm_up_pipeline()
    models: dict[Path, Any] = {}
    from monai_reg_ext.bundle import load_bundle

    try:
        for name in args.sets:
            print(f"== {name} (load {load_average()})", flush=True)
            pairs, info = pair_set(name, data_dir, args.mni_source, limits[name])
            if name == "schedules":
                schedules = args.schedules or SCHEDULES
                methods, skipped, warmup = schedule_methods(schedules, args.threads), {}, []
            else:
                wanted = [m for m in args.methods if name == "multimodal" or m not in MULTIMODAL_ONLY]
                if any(m.startswith("network") for m in wanted) and pairs.bundle not in models:
                    models[pairs.bundle] = load_bundle(pairs.bundle, device="cpu")
                model = models.get(pairs.bundle)
                methods, skipped = make_methods(
                    wanted, pairs, args.threads, args.io_iterations, args.pipeline_options, model
                )
                warmup = [m for m in methods if m == "network"]
            res = run_set(pairs, methods, warmup)
            res.update(description=pairs.description, skipped=skipped, **info)
            if name == "schedules":
                res["schedules"] = schedules
            else:
                res["bundle"] = pairs.bundle.relative_to(ROOT).as_posix()
                res["ratios"] = {p: ratios(res, p) for p in ("pipeline", "pipeline:mi") if p in methods}
            results["sets"][name] = res
            print(set_table(name, res, None if name != "schedules" else {m: m for m in res["summary"]}), flush=True)
            _write(out, args.name, results)  # after every set: a stopped run keeps the sets it finished
    finally:
        _write(out, args.name, results)
        if tmp is not None:
            tmp.cleanup()
    return results


def render(path: Path, out: Path, name: str) -> dict[str, Any]:
    """Recompute the ratios of a results JSON and rewrite ``<out>/<name>.{json,md}`` (no registration is run)."""
    results = json.loads(path.read_text())
    for res in results["sets"].values():
        if "ratios" in res:
            res["ratios"] = {p: ratios(res, p) for p in ("pipeline", "pipeline:mi") if p in res["summary"]}
    ev.write_results(out, results, markdown(results), f"{name}.json", f"{name}.md")
    return results


def _write(out: Path, name: str, results: dict[str, Any]) -> None:
    results["environment"]["date_end"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results["environment"]["load_end"] = load_average()
    ev.write_results(out, results, markdown(results), f"{name}.json", f"{name}.md")


if __name__ == "__main__":
    main()
