"""One rerunnable benchmark of monai-reg: inference speed and memory, peers, engine overhead, training scale.

Sections (``--sections``, default all):

- ``threads``: the bundle network's forward pass at the bundle size with 1 and with 2 torch threads, interleaved (on a
  shared, loaded machine more threads can be slower: this says which thread count the other sections should use).
- ``speed`` (issue 22): warm seconds per pair of the network path, the bare network call and ``register`` on the
  files (without and with writing the outputs), against ANTs SyN and greedy on the same pairs, in one process with
  the same threads, interleaved pair by pair; speed ratios per pair (``speed``).
- ``cold_start``: fresh processes, interleaved: ``python -c "import torch"``, ``monai-reg --help`` and ``monai-reg
  register`` of the bundle's example pair (with and without the PNG); ratios to ``import torch``.
- ``predict_scale``: ``monai-reg predict`` on the test pairs repeated (16 with ``--quick``, else 32) under ``torchrun``
  with 1 and 2 processes on CPU (gloo, 1 thread each): wall time with start-up and the rate after start-up.
- ``inference``: seconds per pair (median of ``repeats`` after one warm-up call) and peak memory of the network
  registration (``network(moving, fixed)``: backbone, scaling and squaring, warping) of the bundle's ``network_def``
  with its trained weights at cubic sizes ``sizes`` (the network is fully convolutional). Inputs are **synthetic
  random volumes** (timing only). Each size runs in a fresh subprocess (``fresh_process``), so the peak resident set
  (``ru_maxrss``) is that size's own; on CUDA the peak is ``torch.cuda.max_memory_allocated``. Sizes are interleaved
  over ``rounds``. A linear fit of time against voxel count and a log-log slope (1 = linear) are reported.
- ``register_io``: the whole ``monai_reg_ext.api.register`` call with file reading and writing, at the bundle's size,
  on the held-out pairs (``scripts/benchmark_register.py``).
- ``peers``: network, network + instance optimisation (``register(..., instance_optimisation=N)``, timed and scored
  by ``scripts/instance_optimisation_table.run_pair``), ANTs SyN (default and with a full-resolution level) and
  elastix B-spline (``scripts/compare_registration.run_method``) on the held-out pairs, interleaved pair by pair;
  Dice, displacement error against the true DDF, folding; speed ratio to ANTs SyN. With ``reuse`` the peers' rows are
  read from an earlier ``compare_registration.py`` results JSON instead of being rerun (different run: the speed ratio
  then compares runs, not one run). Missing peer packages are skipped with a printed note.
- ``engine``: seconds per training iteration of the Ignite engine versus a bare PyTorch loop, interleaved
  (``scripts/benchmark_engine.py``).
- ``training``: training iterations per second for 1 and 2 processes under ``torchrun`` on CPU (gloo), the bundle's
  ``train.json`` + ``multi_gpu_train.json`` on a small grid, measured from Ignite's per-epoch times (epoch 1 excluded).
- ``pairwise`` (only when asked: about 45 min): ``scripts/benchmark_pairwise.py``, bundle-free registration, the
  networks (+ instance optimisation), greedy, ANTs SyN and elastix side by side on brain, unseen-brain, real lung CT
  and multi-modal pairs, with the same threads; its files go to ``<output>/pairwise/`` (``--quick``: the brain pairs,
  2 of them, no registration / pipeline / greedy only).

Usage::

    python scripts/benchmark.py --quick            # a few minutes on 2 CPU cores: 64^3 and 96^3, peers reused
    python scripts/benchmark.py                    # everything (about 15-20 min on 2 shared cores)
    python scripts/benchmark.py --sections "['inference']" --device cuda --sizes "[64,96,128,160,192,256]"
    python scripts/benchmark.py --sections "['pairwise']"                       # the pairwise benchmark alone

Writes ``<output>/<name>.json`` (everything), ``<name>_inference.csv``, ``<name>_peers.csv`` and the figures
``<name>_inference.png`` (time and memory against voxel count) and ``<name>_peers.png`` (error against seconds), with
``name`` = ``benchmark`` (``benchmark_quick`` with ``--quick``) unless given.
"""

from __future__ import annotations

import csv
import datetime
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent


def _shown(path: str | Path) -> str:
    """A path as written into result files: relative to the repository when inside it (no machine paths)."""
    p = Path(path).resolve()
    return p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else str(path)


ROOT = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import benchmark_engine  # noqa: E402
import benchmark_pairwise  # noqa: E402
import benchmark_register  # noqa: E402
import compare_registration  # noqa: E402

__all__ = [
    "inference_child",
    "inference_sweep",
    "thread_check",
    "register_io",
    "peers",
    "engine_overhead",
    "training_scale",
    "environment",
    "main",
]

BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"
SECTIONS = (
    "threads",
    "speed",
    "cold_start",
    "predict_scale",
    "inference",
    "register_io",
    "peers",
    "engine",
    "training",
    "pairwise",
)
DEFAULT_SECTIONS = SECTIONS[:-1]  # "pairwise" (about 45 min) runs only when asked
PEER_METHODS = ("ants_syn", "ants_syn_full", "elastix_bspline")


# --------------------------------------------------------------------------------------------------------- environment
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def environment(device: str = "cpu") -> dict[str, Any]:
    """Date, CPU model and count, load average, device name, library versions."""
    import monai

    dev = torch.device(device)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15min": _load(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
    }


# ----------------------------------------------------------------------------------------------------------- inference
def inference_child(bundle: str, size: int, repeats: int, device: str, threads: int) -> dict[str, Any]:
    """Time ``repeats`` forward passes (after one warm-up) of the bundle network on random ``size``^3 inputs.

    Meant to run in a fresh process (:func:`inference_sweep`): ``peak_rss_mb`` is then this size's peak resident set
    (imports, weights, activations); ``rss_before_mb`` is the peak before the first forward pass.
    """
    import resource

    from monai_reg_ext.bundle import load_bundle

    torch.set_num_threads(int(threads))
    dev = torch.device(device)
    net = load_bundle(bundle, device=dev).network.eval()
    g = torch.Generator().manual_seed(int(size))
    moving = torch.rand(1, 1, size, size, size, generator=g).to(dev)
    fixed = torch.rand(1, 1, size, size, size, generator=g).to(dev)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    with torch.no_grad():
        for r in range(int(repeats) + 1):
            start = time.perf_counter()
            out = net(moving, fixed)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if r > 0:
                times.append(time.perf_counter() - start)
            del out
    res = {
        "size": int(size),
        "voxels": int(size) ** 3,
        "seconds": times,
        "threads": torch.get_num_threads(),
        "rss_before_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if dev.type == "cuda":
        res["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return res


def _run_child(bundle: str, size: int, repeats: int, device: str, threads: int) -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import benchmark; "
        "print('RESULT ' + json.dumps(benchmark.inference_child(*json.loads(sys.argv[2]))))"
    )
    args = json.dumps([str(bundle), int(size), int(repeats), device, int(threads)])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", code, str(SCRIPTS), args], capture_output=True, text=True, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"inference child for size {size} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _fit(voxels: list[int], seconds: list[float]) -> dict[str, Any]:
    v, s = np.asarray(voxels, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    if v.size < 2:
        return {}
    slope, intercept = np.polyfit(v, s, 1)
    pred = slope * v + intercept
    ss_res, ss_tot = float(((s - pred) ** 2).sum()), float(((s - s.mean()) ** 2).sum())
    exponent = float(np.polyfit(np.log(v), np.log(s), 1)[0])
    per_mvox = s / v * 1e6
    return {
        "seconds_per_megavoxel_slope": float(slope * 1e6),
        "intercept_seconds": float(intercept),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        "loglog_exponent": exponent,
        "seconds_per_megavoxel_by_size": [float(x) for x in per_mvox],
        "linear": bool(0.85 <= exponent <= 1.15),
    }


def inference_sweep(
    bundle: str | Path = BUNDLE,
    sizes: list[int] = (64, 96, 128, 160),
    repeats: int = 3,
    rounds: int = 1,
    device: str = "cpu",
    threads: int = 1,
    fresh_process: bool = True,
) -> dict[str, Any]:
    """Network time and peak memory per size (see the module docstring); sizes interleaved over ``rounds``."""
    per: dict[int, list[dict[str, Any]]] = {int(s): [] for s in sizes}
    for _ in range(int(rounds)):
        for size in per:
            if fresh_process:
                res = _run_child(str(bundle), size, repeats, device, threads)
            else:
                res = inference_child(str(bundle), size, repeats, device, threads)
            per[size].append(res)
            print(
                f"inference {size}^3: median {statistics.median(res['seconds']):.3f} s, "
                f"peak RSS {res['peak_rss_mb']:.0f} MB"
                + (f", CUDA peak {res['cuda_peak_allocated_mb']:.0f} MB" if "cuda_peak_allocated_mb" in res else ""),
                flush=True,
            )
    rows = []
    for size, runs in per.items():
        secs = [t for r in runs for t in r["seconds"]]
        row = {
            "size": size,
            "voxels": size**3,
            "seconds_median": statistics.median(secs),
            "seconds_min": min(secs),
            "seconds_max": max(secs),
            "n": len(secs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "rss_before_inference_mb": max(r["rss_before_mb"] for r in runs),
        }
        if "cuda_peak_allocated_mb" in runs[0]:
            row["cuda_peak_allocated_mb"] = max(r["cuda_peak_allocated_mb"] for r in runs)
        rows.append(row)
    return {
        "device": device,
        "threads": int(threads),
        "fresh_process": bool(fresh_process),
        "repeats_per_round": int(repeats),
        "rounds": int(rounds),
        "inputs": "synthetic uniform random volumes (timing and memory only)",
        "rows": rows,
        "fit": _fit([r["voxels"] for r in rows], [r["seconds_median"] for r in rows]),
    }


def thread_check(bundle: str | Path = BUNDLE, threads: tuple[int, ...] = (1, 2), repeats: int = 3) -> dict[str, Any]:
    """Forward pass at the bundle size with each thread count, interleaved ``repeats`` times; medians (s)."""
    from monai_reg_ext.bundle import load_bundle

    model = load_bundle(str(bundle), device="cpu")
    net = model.network.eval()
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 1, *model.spatial_size, generator=g) for _ in range(2))
    old = torch.get_num_threads()
    times: dict[int, list[float]] = {int(t): [] for t in threads}
    with torch.no_grad():
        net(x, y)
        for _ in range(int(repeats)):
            for t in times:
                torch.set_num_threads(t)
                start = time.perf_counter()
                net(x, y)
                times[t].append(time.perf_counter() - start)
    torch.set_num_threads(old)
    med = {str(t): statistics.median(v) for t, v in times.items()}
    print(f"threads check at {model.spatial_size}: " + ", ".join(f"{t} threads {s:.3f} s" for t, s in med.items()))
    return {
        "spatial_size": list(model.spatial_size),
        "seconds_median": med,
        "seconds": {str(t): v for t, v in times.items()},
    }


# --------------------------------------------------------------------------------------------------------- register io
def register_io(bundle: str | Path = BUNDLE, pairs: str | Path | None = None, repeats: int = 2, device: str = "cpu"):
    """Whole ``register`` call including reading the two files and writing the outputs (benchmark_register)."""
    pairs = pairs or Path(bundle) / "data" / "test" / "pairs.json"
    return benchmark_register.main(str(bundle), str(pairs), repeats=repeats, device=device, save=True)


# --------------------------------------------------------------------------------------------------------------- peers
def _io_available() -> tuple[bool, str]:
    import inspect

    from monai_reg_ext.api import register

    if "instance_optimisation" not in inspect.signature(register).parameters:
        return False, "monai_reg_ext.api.register has no instance_optimisation argument yet"
    try:
        import instance_optimisation_table  # noqa: F401
    except Exception as err:  # pragma: no cover - depends on the other script
        return False, f"scripts/instance_optimisation_table.py not importable ({type(err).__name__}: {err})"
    return True, ""


def _summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        mrows = [r for r in rows if r["method"] == m]
        out[m] = {}
        for k in compare_registration.METRIC_KEYS:
            vals = np.asarray([r[k] for r in mrows if r.get(k) is not None], dtype=np.float64)
            if vals.size and not np.isnan(vals).all():
                out[m][k] = float(np.nanmean(vals))
                out[m][k + "_std"] = float(np.nanstd(vals))
        out[m]["n"] = len(mrows)
    return out


def peers(
    bundle: str | Path = BUNDLE,
    pairs: str | Path | None = None,
    io_iterations: int = 50,
    reuse: str | Path | None = None,
    max_pairs: int | None = None,
    device: str = "cpu",
    threads: int = 1,
) -> dict[str, Any]:
    """Network, network + IO and the classical peers on pairs with true DDFs; interleaved pair by pair.

    ``reuse``: a ``compare_registration.py`` results JSON whose peer rows (ANTs, elastix, none, true DDF) are taken
    instead of running the peers; the network rows are always measured here.
    """
    from monai_reg_ext.bundle import load_bundle

    env_threads = compare_registration.configure_threads(threads)
    pairs_path = Path(pairs or Path(bundle) / "data" / "test" / "pairs.json")
    items = json.loads(pairs_path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    items = items[: int(max_pairs)] if max_pairs else items
    loaded = [compare_registration.load_pair(it, pairs_path.parent) for it in items]
    model = load_bundle(str(bundle), device=device)
    notes: dict[str, str] = {}
    io_ok, why = _io_available()
    if not io_ok:
        notes["network_io"] = f"pending: {why}"
        print(f"note: network + instance optimisation pending: {why}", flush=True)
    reused_rows: list[dict[str, Any]] = []
    run_peers: list[str] = []
    if reuse:
        data = json.loads(Path(reuse).read_text())
        reused_rows = [
            {**r, "reused": True}
            for r in data["pairs"]
            if r["method"] != "network" and (max_pairs is None or r["pair"] < int(max_pairs))
        ]
        notes["reused_from"] = f"{_shown(reuse)} ({data.get('environment', {}).get('date')}): peers not rerun"
        print(f"note: peers read from {reuse}, not rerun (speed ratios compare two runs).", flush=True)
    else:
        for m in PEER_METHODS:
            ok, why_p = compare_registration._peer_available(m)
            if ok:
                run_peers.append(m)
            else:
                notes[m] = f"skipped: package not importable ({why_p})"
                print(f"note: skipping {m}: its package is not importable ({why_p}); pip install antspyx itk-elastix")
    # warm-up (lazy imports, allocations): one network call and one short IO call
    p0 = loaded[0]["paths"]
    compare_registration.run_method("network", loaded[0], model=model, device=device)
    if io_ok:
        from monai_reg_ext.api import register

        register(str(p0["moving"]), str(p0["fixed"]), bundle=model, device=device, instance_optimisation=2)
    rows: list[dict[str, Any]] = []
    for i, pair in enumerate(loaded):
        if io_ok:
            from instance_optimisation_table import run_pair

            for r in run_pair(pair, model, [0, int(io_iterations)], device):
                method = "network" if r["n"] == 0 else f"network_io{int(io_iterations)}"
                rows.append({"pair": i, "method": method, **{k: v for k, v in r.items() if k != "n"}})
        else:
            res = compare_registration.run_method("network", pair, model=model, device=device)
            rows.append(
                {
                    "pair": i,
                    "method": "network",
                    "seconds": res["seconds"],
                    **compare_registration.evaluate_ddf(pair, res["ddf"]),
                }
            )
        for m in run_peers:
            res = compare_registration.run_method(m, pair, model=model, device=device)
            rows.append(
                {
                    "pair": i,
                    "method": m,
                    "seconds": res["seconds"],
                    **compare_registration.evaluate_ddf(pair, res["ddf"]),
                }
            )
        if not reuse:
            rows.append(
                {
                    "pair": i,
                    "method": "none",
                    "seconds": 0.0,
                    **compare_registration.evaluate_ddf(pair, 0 * pair["ddf_true"]),
                }
            )
            rows.append(
                {
                    "pair": i,
                    "method": "true_ddf",
                    "seconds": None,
                    **compare_registration.evaluate_ddf(pair, pair["ddf_true"]),
                }
            )
        for r in rows:
            if r["pair"] == i:
                print(
                    f"pair {i} {r['method']:16s} {r['seconds'] or 0:7.2f} s  Dice GM {r['dice_gm']:.4f} "
                    f"WM {r['dice_wm']:.4f}  error {r['error_mm']:.3f} mm  folding {r['folding_pct']:.3f} %",
                    flush=True,
                )
    rows += reused_rows
    summary = _summarise(rows)
    syn = summary.get("ants_syn", {}).get("seconds")
    for s in summary.values():
        if syn and s.get("seconds"):
            s["speed_ratio_vs_ants_syn"] = syn / s["seconds"]
    return {
        "pairs_file": _shown(pairs_path),
        "n_pairs": len(loaded),
        "io_iterations": int(io_iterations),
        "threads": env_threads,
        "notes": notes,
        "summary": summary,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------------------- speed
def _bare_network_call(model: Any, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """The network call of ``register`` on the two network inputs: the DDF alone (a ``RegistrationNet`` called with
    the pair concatenated), in ``torch.inference_mode``."""
    with torch.inference_mode():
        if hasattr(model.network, "predict_ddf"):
            return model.network(torch.cat([moving, fixed], dim=1))
        out = model.network(moving, fixed)
        return out["ddf"] if isinstance(out, dict) else out


def speed(
    bundle: str | Path = BUNDLE,
    pairs: str | Path | None = None,
    repeats: int = 2,
    max_pairs: int | None = None,
    threads: int = 1,
    peer_names: tuple[str, ...] = ("ants_syn", "greedy"),
) -> dict[str, Any]:
    """Warm seconds per pair of the network path against ANTs SyN and greedy on the same pairs, in one process with
    the same threads, interleaved pair by pair (each round runs every method on every pair; one warm-up call of each
    first): the bare network call (``network``), ``register`` on the files without writing (``register``: reading,
    resampling, the network, the DDF on the fixed grid, the warp, folding/SDlogJ) and with its outputs written
    (``register_save``: NIfTI files and metrics.csv, no PNG); ``network_compiled`` and ``register_compiled`` are the
    same with the backbone compiled as ``predict --compile`` does (``api.compiling.compile_network``; its compile time
    is in the notes). Peers: their registration wall time. Ratios: per pair, the peer's median over the method's, then
    the median over pairs."""
    from bench_network_path import network_inputs

    from monai_reg_ext.api import register
    from monai_reg_ext.api.compiling import compile_network
    from monai_reg_ext.bundle import load_bundle

    env_threads = compare_registration.configure_threads(threads)
    pairs_path = Path(pairs or Path(bundle) / "data" / "test" / "pairs.json")
    items = json.loads(pairs_path.read_text())
    items = (items.get("pairs", items) if isinstance(items, dict) else items)[: max_pairs or None]
    loaded = [compare_registration.load_pair(it, pairs_path.parent) for it in items]
    model = load_bundle(str(bundle), device="cpu")
    compiled = load_bundle(str(bundle), device="cpu")
    run_peers, notes = [], {}
    seconds, why = compile_network(compiled.network, compiled.spatial_size, "cpu")
    notes["compile"] = f"compiled in {seconds:.1f} s" if seconds is not None else f"not compiled: {why}"
    for m in peer_names:
        ok, why = compare_registration._peer_available(m)
        if ok:
            run_peers.append(m)
        else:
            notes[m] = f"skipped: {why}"
    methods: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def reg(pair: dict[str, Any], save: bool, net: Any = model) -> float:
            start = time.perf_counter()
            result = register(str(pair["paths"]["moving"]), str(pair["paths"]["fixed"]), bundle=net, device="cpu")
            if save:
                result.save(Path(tmp) / f"p{next(counter)}", figure=False)
            return time.perf_counter() - start

        def bare(pair: dict[str, Any], net: Any = model) -> float:
            inputs = network_inputs(net, str(pair["paths"]["moving"]), str(pair["paths"]["fixed"]))
            start = time.perf_counter()
            _bare_network_call(net, *inputs)
            return time.perf_counter() - start

        methods["network"] = bare
        methods["register"] = lambda pair: reg(pair, False)
        methods["register_save"] = lambda pair: reg(pair, True)
        if seconds is not None:
            methods["network_compiled"] = lambda pair: bare(pair, compiled)
            methods["register_compiled"] = lambda pair: reg(pair, False, compiled)

        def peer(pair: dict[str, Any], m: str) -> float:
            with benchmark_pairwise._Quiet():  # greedy prints every iteration
                return compare_registration.run_method(m, pair)["seconds"]

        for m in run_peers:
            methods[m] = functools.partial(peer, m=m)
        times = _interleave(methods, loaded, int(repeats))
    return _speed_summary(times, methods, run_peers, env_threads, notes, pairs_path, int(repeats))


def _interleave(methods: dict[str, Any], loaded: list[dict[str, Any]], repeats: int) -> dict[str, list[list[float]]]:
    """``times[method][pair]``: one warm-up call of each method, then ``repeats`` rounds over pairs and methods."""
    for fn in methods.values():
        fn(loaded[0])
    times: dict[str, list[list[float]]] = {m: [[] for _ in loaded] for m in methods}
    for r in range(repeats):
        for i, pair in enumerate(loaded):
            for m, fn in methods.items():
                times[m][i].append(fn(pair))
            print(
                f"speed round {r} pair {i}: " + ", ".join(f"{m} {t[i][-1]:.3f} s" for m, t in times.items()), flush=True
            )
    return times


def _speed_summary(times, methods, run_peers, env_threads, notes, pairs_path, repeats) -> dict[str, Any]:
    med = {m: [statistics.median(t) for t in times[m]] for m in methods}
    rows = []
    for m in methods:
        row = {"method": m, "seconds_median": statistics.median(med[m]), "seconds_per_pair": med[m]}
        for peer in run_peers:
            if m not in run_peers:
                row[f"ratio_{peer}_over_this"] = statistics.median(p / x for p, x in zip(med[peer], med[m]))
        rows.append(row)
    return {
        "pairs_file": _shown(pairs_path),
        "n_pairs": len(next(iter(times.values()))),
        "repeats": repeats,
        "threads": env_threads,
        "notes": notes,
        "rows": rows,
        "seconds": times,
    }


# -------------------------------------------------------------------------------------------------------- cold start
def _console_script() -> list[str]:
    exe = Path(sys.executable).with_name("monai-reg")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "monai_reg_ext"]


def _shown_arg(arg: str) -> str:
    """A command argument as written into result files: ``python`` for this interpreter, repository paths relative."""
    if arg == sys.executable:
        return "python"
    if arg.startswith(tempfile.gettempdir() + os.sep):  # a run's temporary output folder: no machine path
        return "<temporary folder>"
    return _shown(arg) if os.sep in arg else arg


def cold_start(bundle: str | Path = BUNDLE, repeats: int = 3, threads: int = 1) -> dict[str, Any]:
    """Wall seconds of fresh processes, interleaved over ``repeats`` rounds: ``python -c "import torch"``,
    ``monai-reg --help``, and ``monai-reg register`` of the bundle's example pair (defaults: every output with the
    PNG; and with ``--nofigure``); medians and ratios to ``import torch``."""
    example = Path(bundle) / "data" / "example"
    cli = _console_script()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        pair = [str(example / "moving.nii.gz"), str(example / "fixed.nii.gz"), str(Path(tmp) / "o")]
        options = ["--bundle", str(bundle), "--device", "cpu", "--threads", str(threads), "--overwrite", "--quiet"]
        register = [*cli, "register", *pair, *options]
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "monai-reg --help": [*cli, "--help"],
            "monai-reg register": register,
            "monai-reg register --nofigure": [*register, "--nofigure"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(int(repeats)):
            for name, cmd in commands.items():
                start = time.perf_counter()
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
                if res.returncode != 0:
                    raise RuntimeError(
                        f"cold start: {' '.join(cmd)} failed:\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}"
                    )
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["import torch"]
    print("cold start: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()), flush=True)
    return {
        "repeats": int(repeats),
        "threads": int(threads),
        "commands": {k: " ".join(_shown_arg(c) for c in v) for k, v in commands.items()},
        "rows": [{"command": k, "seconds_median": v, "ratio_to_import_torch": v / base} for k, v in med.items()],
        "seconds": times,
    }


# ---------------------------------------------------------------------------------------------------- predict scale
def _repeated_pairs(pairs_path: Path, copies: int, out: Path) -> int:
    """Write ``out``: the pairs of ``pairs_path`` (absolute paths) repeated ``copies`` times; returns their number."""
    items = json.loads(pairs_path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    keys = ("moving", "fixed", "moving_label", "fixed_label")
    absolute = [{k: str((pairs_path.parent / it[k]).resolve()) for k in keys if k in it} for it in items]
    entries = absolute * int(copies)
    out.write_text(json.dumps(entries, indent=1) + "\n")
    return len(entries)


def predict_scale(
    bundle: str | Path = BUNDLE,
    pairs: str | Path | None = None,
    copies: int = 4,
    nprocs: tuple[int, ...] = (1, 2),
    threads_per_process: int = 1,
    timeout: int = 1800,
    single_options: tuple[str, ...] = ("--noprefetch", "--compile"),
) -> dict[str, Any]:
    """``monai-reg predict`` throughput with 1 and 2 processes under torchrun on CPU (gloo; each rank takes the pairs
    ``i % world_size == rank``, rank 0 writes the summary): the bundle's test pairs repeated ``copies`` times, 1 torch
    thread per process; wall time of the whole command (start-up, loading the network once per process, every pair
    with all its outputs but the PNG, the summary), and the rate after start-up: pairs finished after each process's
    first one, over the time from the ``W``-th to the last pair's ``metrics.csv``. ``single_options``: further runs of
    one process with each of these options (``--noprefetch``: reading, registering and writing one after another
    instead of overlapped; ``--compile``: the compiled backbone, its compile time counted in the start-up)."""
    pairs_path = Path(pairs or Path(bundle) / "data" / "test" / "pairs.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "pairs.json"
        n_pairs = _repeated_pairs(pairs_path, copies, cohort)
        runs = [(n, "") for n in nprocs] + [(1, opt) for opt in single_options]
        for n, option in runs:
            out = Path(tmp) / f"out_{n}{option}"
            launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}"]
            cmd = [*launcher, f"--master_port={_free_port()}", "-m", "monai_reg_ext", "predict", str(bundle),
                   str(cohort), str(out), "--device", "cpu", "--threads", str(threads_per_process)]  # fmt: skip
            cmd += [option] if option else []
            env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process), "CUDA_VISIBLE_DEVICES": ""}
            start = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
            wall = time.perf_counter() - start
            if res.returncode != 0:
                raise RuntimeError(f"predict with {n} processes failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
            done = sum(1 for line in (out / "status.csv").read_text().splitlines()[1:] if ",ok," in line)
            # after start-up: pairs finished between the first and the last pair folder's metrics.csv
            stamps = sorted(p.stat().st_mtime for p in out.glob("pair_*/metrics.csv"))
            steady = (len(stamps) - n) / (stamps[-1] - stamps[n - 1]) if len(stamps) > n else None
            rows.append({"processes": n, "options": option, "pairs": n_pairs, "pairs_ok": done, "wall_seconds": wall,
                         "pairs_per_second": n_pairs / wall, "pairs_per_second_after_startup": steady})  # fmt: skip
            print(
                f"predict {n} process(es) {option}: {n_pairs} pairs in {wall:.1f} s ({n_pairs / wall:.3f} pairs/s)",
                flush=True,
            )
    for r in rows:
        r["speedup_vs_first"] = r["pairs_per_second"] / rows[0]["pairs_per_second"]
        first = rows[0]["pairs_per_second_after_startup"]
        steady = r["pairs_per_second_after_startup"]
        r["speedup_after_startup"] = steady / first if first and steady else None
    return {
        "command": "python -m torch.distributed.run --nproc_per_node=N -m monai_reg_ext predict BUNDLE PAIRS OUT "
        f"--device cpu --threads {threads_per_process}",
        "pairs_file": f"{_shown(pairs_path)} x {copies}",
        "threads_per_process": int(threads_per_process),
        "rows": rows,
    }


# -------------------------------------------------------------------------------------------------------------- engine
def pairwise(output: str | Path, threads: int = 1, quick: bool = False) -> dict[str, Any]:
    """The ``pairwise`` section: ``benchmark_pairwise.main`` writing into ``<output>/pairwise``; returns where it wrote
    and the ratios of each set (its own JSON holds everything)."""
    folder = Path(output) / "pairwise"
    argv = ["--threads", str(int(threads)), "--output", str(folder)]
    if quick:
        argv += ["--sets", "brain", "--max-pairs", "2", "--methods", "none", "pipeline", "greedy", "--name", "quick"]
    res = benchmark_pairwise.main(argv)
    ratios = {name: s.get("ratios") for name, s in res["sets"].items() if s.get("ratios") is not None}
    return {"output": _shown(folder), "command": res["command"], "ratios": ratios}


def engine_overhead(size: int = 48, iterations: int = 10, rounds: int = 3, threads: int = 1) -> dict[str, Any]:
    """benchmark_engine.main: Ignite engine vs bare loop, interleaved; ``overhead_ratio`` = engine / bare."""
    return benchmark_engine.main(size=size, iterations=iterations, rounds=rounds, threads=threads)


# ------------------------------------------------------------------------------------------------------------ training
_EPOCH = re.compile(r"Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)")
_ITER = re.compile(r"Epoch: (\d+)/\d+, Iter: \d+/(\d+)")


def parse_training_log(text: str) -> dict[str, Any]:
    """Per-epoch times (max over ranks) and iterations per epoch per rank from a monai bundle training log."""
    epochs: dict[int, float] = {}
    for m in _EPOCH.finditer(text):
        sec = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
        epochs[int(m.group(1))] = max(epochs.get(int(m.group(1)), 0.0), sec)
    iters = {int(m.group(2)) for m in _ITER.finditer(text)}
    return {"epoch_seconds": epochs, "iterations_per_epoch_per_rank": max(iters) if iters else None}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training_scale(
    bundle: str | Path = BUNDLE,
    nprocs: tuple[int, ...] = (1, 2),
    spatial_size: tuple[int, ...] = (32, 40, 32),
    max_epochs: int = 3,
    threads_per_process: int = 1,
    dataset_dir: str | None = None,
    timeout: int = 900,
) -> dict[str, Any]:
    """Iterations/s for ``nprocs`` processes under torchrun on CPU (gloo); epoch 1 (warm-up) excluded."""
    cfg = Path(bundle) / "configs"
    configs = f"['{cfg / 'train.json'}','{cfg / 'multi_gpu_train.json'}']"
    handlers = json.loads((cfg / "train.json").read_text())["train"]["handlers"]
    stats = [i for i, h in enumerate(handlers) if str(h.get("_target_", "")).endswith("StatsHandler")]
    rows = []
    for n in nprocs:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
                   f"--master_port={_free_port()}", "-m", "monai.bundle", "run", "training", "--config_file", configs,
                   "--meta_file", str(cfg / "metadata.json"), "--logging_file", str(cfg / "logging.conf"),
                   "--bundle_root", str(bundle), "--output_dir", str(Path(tmp) / "runs"),
                   "--spatial_size", json.dumps(list(spatial_size)), "--max_epochs", str(max_epochs),
                   "--val_interval", "1000", "--num_workers", "0", "--batch_size", "1",
                   f"--train#handlers#{stats[0]}#iteration_log", "true"]  # fmt: skip
            if dataset_dir:
                cmd += ["--dataset_dir", str(dataset_dir)]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process), "CUDA_VISIBLE_DEVICES": ""}
            start = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
            wall = time.perf_counter() - start
        if res.returncode != 0:
            raise RuntimeError(f"torchrun with {n} processes failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
        parsed = parse_training_log(res.stdout + res.stderr)
        later = [s for e, s in parsed["epoch_seconds"].items() if e > 1] or list(parsed["epoch_seconds"].values())
        epoch_s = statistics.median(later)
        it = parsed["iterations_per_epoch_per_rank"]
        row = {
            "processes": n,
            "threads_per_process": int(threads_per_process),
            "iterations_per_epoch_per_rank": it,
            "epoch_seconds_median": epoch_s,
            "epoch_seconds": parsed["epoch_seconds"],
            "iterations_per_second_per_rank": it / epoch_s if it else None,
            "pairs_per_second_total": n * it / epoch_s if it else None,
            "wall_seconds_with_startup": wall,
        }
        print(
            f"training {n} process(es): {row['pairs_per_second_total']:.3f} pairs/s, epoch {epoch_s:.1f} s", flush=True
        )
        rows.append(row)
    base = rows[0]["pairs_per_second_total"]
    for r in rows:
        r["speedup_vs_first"] = r["pairs_per_second_total"] / base if base else None
    return {
        "config": "train.json + multi_gpu_train.json, gloo on CPU, batch 1 per process, num_workers 0",
        "spatial_size": list(spatial_size),
        "max_epochs": int(max_epochs),
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------------------- figures
def _plots(results: dict[str, Any], out: Path, name: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # pragma: no cover
        return []
    written = []
    inf = results.get("inference")
    if inf and inf["rows"]:
        rows = inf["rows"]
        v = np.asarray([r["voxels"] for r in rows], dtype=np.float64) / 1e6
        s = np.asarray([r["seconds_median"] for r in rows])
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
        axes[0].plot(v, s, "o", label="median")
        for r, x in zip(rows, v):
            axes[0].plot([x, x], [r["seconds_min"], r["seconds_max"]], "-", color="C0", alpha=0.5)
            axes[0].annotate(f"{r['size']}³", (x, r["seconds_median"]), textcoords="offset points", xytext=(4, -10))
        fit = inf.get("fit") or {}
        if fit:
            xs = np.linspace(0, v.max() * 1.05, 50)
            label = f"linear fit (R² {fit['r2']:.3f}, log-log slope {fit['loglog_exponent']:.2f})"
            line = fit["seconds_per_megavoxel_slope"] * xs + fit["intercept_seconds"]
            axes[0].plot(xs, line, "--", color="C1", label=label)
        axes[0].set_xlabel("voxels (millions)")
        axes[0].set_ylabel("seconds per pair")
        axes[0].set_title(f"network inference, {inf['device']}, {inf['threads']} thread(s)", fontsize=9)
        axes[0].legend(fontsize=7)
        key = "cuda_peak_allocated_mb" if "cuda_peak_allocated_mb" in rows[0] else "peak_rss_mb"
        axes[1].plot(v, [r[key] for r in rows], "o-")
        axes[1].set_xlabel("voxels (millions)")
        axes[1].set_ylabel("peak memory (MB)")
        axes[1].set_title("CUDA max allocated" if key.startswith("cuda") else "peak RSS (fresh process)", fontsize=9)
        fig.tight_layout()
        path = out / f"{name}_inference.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(str(path))
    pe = results.get("peers")
    if pe and pe["summary"]:
        fig, ax = plt.subplots(figsize=(5, 3.4), dpi=100)
        for m, s in pe["summary"].items():
            if m in ("none", "true_ddf") or not s.get("seconds"):
                continue
            ax.plot(s["seconds"], s["error_mm"], "o")
            ax.annotate(m, (s["seconds"], s["error_mm"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per pair (log)")
        ax.set_ylabel("displacement error (mm)")
        ax.set_title("held-out brain pairs: error vs time", fontsize=9)
        fig.tight_layout()
        path = out / f"{name}_peers.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(str(path))
    return written


def _speed_tables(results: dict[str, Any]) -> list[str]:
    """The tables of the ``speed``, ``cold_start`` and ``predict_scale`` sections."""
    lines: list[str] = []
    sp = results.get("speed")
    if sp:
        peers = [r["method"] for r in sp["rows"] if not any(k.startswith("ratio_") for k in r)]
        lines += ["| method | s/pair (median) | " + " | ".join(f"{p} s / this" for p in peers) + " |"]
        lines += ["|---|---|" + "---|" * len(peers)]
        for r in sp["rows"]:
            ratios = [r.get(f"ratio_{p}_over_this") for p in peers]
            shown = " | ".join("–" if x is None else f"{x:.2f}×" for x in ratios)
            lines.append(f"| {r['method']} | {r['seconds_median']:.3f} | {shown} |")
        lines += ["", f"Pairs: {sp['n_pairs']}, rounds: {sp['repeats']}; notes: {sp['notes'] or 'none'}.", ""]
    cs = results.get("cold_start")
    if cs:
        lines += ["| fresh process | s (median) | / import torch |", "|---|---|---|"]
        lines += [
            f"| `{r['command']}` | {r['seconds_median']:.2f} | {r['ratio_to_import_torch']:.2f}× |" for r in cs["rows"]
        ]
        lines.append("")
    ps = results.get("predict_scale")
    if ps:
        lines += [
            "| processes | options | pairs | wall s (with start-up) | pairs/s | speed-up | pairs/s after start-up "
            "| speed-up |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in ps["rows"]:
            steady, up = r.get("pairs_per_second_after_startup"), r.get("speedup_after_startup")
            lines.append(
                f"| {r['processes']} | {r.get('options') or '(default)'} | {r['pairs']} | {r['wall_seconds']:.1f} | "
                f"{r['pairs_per_second']:.3f} | "
                f"{r['speedup_vs_first']:.2f}× | {'–' if steady is None else f'{steady:.3f}'} | "
                f"{'–' if up is None else f'{up:.2f}×'} |"
            )
        lines.append("")
    return lines


def markdown_tables(results: dict[str, Any]) -> str:
    """Markdown tables of every section present in ``results`` (what ``<name>.md`` holds)."""
    lines: list[str] = []
    env = results.get("environment_start", {})
    lines += [
        f"Command: `{results.get('command')}`; date (UTC) {env.get('date')}; CPU {env.get('cpu_model')} x "
        f"{env.get('cpu_count')}; device {env.get('device')}; torch {env.get('torch')}, {results.get('threads')} "
        f"thread(s); load average (1/5/15 min) start {env.get('load_average_1_5_15min')}, end "
        f"{results.get('environment_end', {}).get('load_average_1_5_15min')}.",
        "",
    ]
    th = results.get("threads_check") or (results.get("threads") if isinstance(results.get("threads"), dict) else None)
    if th:
        med = th["seconds_median"]
        lines += ["| torch threads | forward s at " + "x".join(map(str, th["spatial_size"])) + " |", "|---|---|"]
        lines += [f"| {t} | {v:.3f} |" for t, v in med.items()] + [""]
    lines += _speed_tables(results)
    inf = results.get("inference")
    if inf:
        cuda = "cuda_peak_allocated_mb" in inf["rows"][0]
        head = "| size | voxels | s/pair (median) | min-max | s per Mvoxel | peak RSS MB | RSS before forward MB |"
        lines += [head + (" CUDA peak MB |" if cuda else ""), "|---" * (7 + cuda) + "|"]
        per = inf.get("fit", {}).get("seconds_per_megavoxel_by_size") or [None] * len(inf["rows"])
        for r, pm in zip(inf["rows"], per):
            lines.append(
                f"| {r['size']}³ | {r['voxels']:,} | {r['seconds_median']:.3f} | {r['seconds_min']:.3f}-"
                f"{r['seconds_max']:.3f} | {pm if pm is None else f'{pm:.3f}'} | {r['peak_rss_mb']:.0f} | "
                f"{r['rss_before_inference_mb']:.0f} |" + (f" {r['cuda_peak_allocated_mb']:.0f} |" if cuda else "")
            )
        fit = inf.get("fit") or {}
        if fit:
            lines += [
                "",
                f"Linear fit: {fit['seconds_per_megavoxel_slope']:.3f} s per Mvoxel + {fit['intercept_seconds']:.3f} s "
                f"(R² {fit['r2']:.3f}); log-log slope {fit['loglog_exponent']:.2f} "
                f"({'linear' if fit['linear'] else 'not linear'} within 0.85-1.15).",
            ]
        lines.append("")
    rio = results.get("register_io")
    if rio:
        lines += [
            f"Whole `register` call with file I/O at {rio['spatial_size']}: "
            f"{rio['register_call_seconds_median']:.3f} s (network part {rio['network_seconds_median']:.3f} s), "
            f"median of {rio['repeats']} x {rio['pairs']} pairs.",
            "",
        ]
    pe = results.get("peers")
    if pe:
        lines += [
            "| method | s/pair | speed ratio vs SyN | Dice GM | Dice WM | error mm | folding % | source |",
            "|---|---|---|---|---|---|---|---|",
        ]
        reused = {r["method"] for r in pe["rows"] if r.get("reused")}
        for m, s in pe["summary"].items():
            sec = s.get("seconds")
            ratio = s.get("speed_ratio_vs_ants_syn")
            lines.append(
                f"| {m} | {'–' if sec is None else f'{sec:.2f}'} | "
                f"{'–' if not ratio or m in ('none', 'true_ddf') else f'{ratio:.2f}×'} | {s['dice_gm']:.4f} | "
                f"{s['dice_wm']:.4f} | {s['error_mm']:.3f} | {s['folding_pct']:.3f} | "
                f"{'reused JSON' if m in reused else 'this run'} |"
            )
        lines += ["", f"Pairs: {pe['n_pairs']}; notes: {pe['notes'] or 'none'}.", ""]
    en = results.get("engine")
    if en:
        lines += [
            f"Engine: {en['engine_seconds_per_iteration_median']:.4f} s/iteration, bare loop "
            f"{en['bare_loop_seconds_per_iteration_median']:.4f} s/iteration at {en['size']}, "
            f"{en['iterations_per_runner']} iterations each, interleaved: ratio {en['overhead_ratio']:.3f}.",
            "",
        ]
    tr = results.get("training")
    if tr:
        lines += [
            "| processes | threads/process | iterations/epoch/rank | epoch s (median, epoch 1 excluded) "
            "| it/s per rank | pairs/s total | speed-up |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in tr["rows"]:
            lines.append(
                f"| {r['processes']} | {r['threads_per_process']} | {r['iterations_per_epoch_per_rank']} | "
                f"{r['epoch_seconds_median']:.2f} | {r['iterations_per_second_per_rank']:.3f} | "
                f"{r['pairs_per_second_total']:.3f} | {r['speedup_vs_first']:.2f}× |"
            )
        lines.append("")
    pw = results.get("pairwise")
    if pw:
        lines += [f"Pairwise registration benchmark: tables and ratios in `{pw['output']}/` (`{pw['command']}`).", ""]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (list, dict))))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore", restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in keys})


# ---------------------------------------------------------------------------------------------------------------- main
def _as_list(value: Any) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.strip("[]()").replace("'", "").replace('"', "").split(",") if v.strip()]
    return list(value)


def main(
    quick: bool = False,
    sections: list[str] | str = DEFAULT_SECTIONS,
    bundle: str = str(BUNDLE),
    pairs: str | None = None,
    sizes: list[int] | None = None,
    repeats: int | None = None,
    rounds: int | None = None,
    device: str = "cpu",
    threads: int = 1,
    io_iterations: int = 50,
    reuse: str | None = None,
    max_pairs: int | None = None,
    fresh_process: bool = True,
    output: str = str(ROOT / "docs" / "benchmarks"),
    name: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark sections and write JSON, CSV and figures (module docstring).

    ``--quick``: sizes 64^3 and 96^3, 2 repeats, 1 round, peers reused from the bundle's
    ``docs/results/results.json`` (network and network + IO measured on 2 pairs), engine at 32^3 with 5 iterations x 2
    rounds, training 2 epochs. Defaults otherwise: sizes 64-160^3, 3 repeats, peers rerun on all pairs.
    ``threads``: torch (and ITK/ANTs) threads for every section; the training section uses 1 thread per process.
    """
    wanted = _as_list(sections)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}.")
    sizes = [int(s) for s in _as_list(sizes)] if sizes is not None else ([64, 96] if quick else [64, 96, 128, 160])
    repeats = int(repeats if repeats is not None else (2 if quick else 3))
    rounds = int(rounds if rounds is not None else 1)
    if quick and reuse is None:
        default = Path(bundle) / "docs" / "results" / "results.json"
        reuse = str(default) if default.is_file() else None
    if quick and max_pairs is None:
        max_pairs = 2
    name = name or ("benchmark_quick" if quick else "benchmark")
    torch.set_num_threads(int(threads))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(["python", "scripts/benchmark.py", *sys.argv[1:]]),
        "quick": bool(quick),
        "threads": int(threads),
        "environment_start": environment(device),
    }
    timings: dict[str, float] = {}

    def timed(key: str, fn, *args, **kwargs):
        start = time.perf_counter()
        print(f"== {key}", flush=True)
        results[key] = fn(*args, **kwargs)
        timings[key] = time.perf_counter() - start

    if "threads" in wanted and device == "cpu":
        timed("threads_check", thread_check, bundle, repeats=repeats)
    if "speed" in wanted and device == "cpu":
        timed("speed", speed, bundle, pairs, 1 if quick else 2, max_pairs, threads)
    if "cold_start" in wanted:
        timed("cold_start", cold_start, bundle, 2 if quick else 3, threads)
    if "predict_scale" in wanted and device == "cpu":
        timed("predict_scale", predict_scale, bundle, pairs, 4 if quick else 8)
    if "inference" in wanted:
        timed("inference", inference_sweep, bundle, sizes, repeats, rounds, device, threads, fresh_process)
    if "register_io" in wanted:
        timed("register_io", register_io, bundle, pairs, repeats=max(1, repeats - 1), device=device)
    if "peers" in wanted:
        timed("peers", peers, bundle, pairs, io_iterations, reuse, max_pairs, device, threads)
    if "engine" in wanted:
        kw = {"size": 32, "iterations": 5, "rounds": 2} if quick else {"size": 48, "iterations": 10, "rounds": 3}
        timed("engine", engine_overhead, threads=threads, **kw)
    if "training" in wanted:
        timed("training", training_scale, bundle, max_epochs=2 if quick else 3)
    if "pairwise" in wanted:
        timed("pairwise", pairwise, out, threads, quick)
    results["section_seconds"] = timings
    results["environment_end"] = {"load_average_1_5_15min": _load(), "date": environment(device)["date"]}
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if "inference" in results:
        _write_csv(out / f"{name}_inference.csv", results["inference"]["rows"])
    if "peers" in results:
        _write_csv(out / f"{name}_peers.csv", [{"method": m, **s} for m, s in results["peers"]["summary"].items()])
    results["figures"] = _plots(results, out, name)
    (out / f"{name}.md").write_text(markdown_tables(results) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("peers",)}, indent=1, default=str)[:6000])
    return results


if __name__ == "__main__":
    import functools

    import fire

    @functools.wraps(main)
    def _cli(*args, **kwargs) -> None:  # main's signature for --help; results are written, not returned
        main(*args, **kwargs)

    fire.Fire(_cli)
