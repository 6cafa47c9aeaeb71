"""The ``monai-reg`` command line (python-fire): train, evaluate, predict, register, warp.

Every command prints a one-line error (no traceback) naming the file and the problem, and exits with status 2, on a
user error (:data:`USER_ERRORS`: bad input or geometry, an output that cannot be written, no space left, an unknown
device, a bad checkpoint); ``--debug`` prints the traceback first. Outputs that exist already are never replaced
without ``--overwrite``. ``--bundle PATH`` makes PATH the bundle root of every command
(configs, data, models and runs are read and written there, whatever the current folder).

This module imports nothing heavy at module level (torch, MONAI and ITK are imported by the commands), so
``monai-reg --help`` stays fast.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "COMMANDS", "train", "evaluate", "predict", "register", "warp", "download", "show"]

#: Exceptions that are the user's to fix: :func:`main` prints them as one line ``monai-reg: error: <message>`` and
#: exits with status 2 (``--debug`` prints the traceback first). ``OSError`` covers missing, unreadable and unwritable
#: files (``FileNotFoundError``, ``PermissionError``...), a file where a folder should be, and a full disk.
USER_ERRORS = (
    ValueError,  # bad input, geometry, option value, checkpoint, archive, index (UnsafeBundleError)
    KeyError,
    OSError,
    FloatingPointError,  # a training loss that became NaN/inf (StopOnNonFiniteLoss)
    MemoryError,
)
#: Failures of one pair that ``predict`` records in status.csv and goes past (output errors stop it).
PAIR_ERRORS = (ValueError, KeyError, FloatingPointError, FileNotFoundError, IsADirectoryError, MemoryError)
#: errno values of a full disk or quota, and of a file or folder that cannot be written
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EPERM, errno.EACCES, errno.EROFS)


def _check_device(device: Any) -> None:
    """Refuse an unknown device name or an unavailable CUDA device in one line, before anything is loaded (a config
    reference such as ``$torch.device(...)`` is left to the bundle runner)."""
    if isinstance(device, str) and not device.startswith(("$", "@", "%")):
        from .api.register import resolve_device

        resolve_device(device)


def _attach_progress_bars(workflow: Any, engine_ids: tuple[str, ...]) -> None:
    """Attach Ignite progress bars to the engines ``engine_ids`` (e.g. ``train#trainer``) that the workflow's config
    defines (classical bundles, which run a script instead of an engine, get none)."""
    from ignite.engine import Engine

    from .engines import attach_progress_bar

    for engine_id in engine_ids:
        if engine_id not in workflow.parser:
            continue
        engine = workflow.parser.get_parsed_content(engine_id)  # cached: the run expression uses this instance
        if isinstance(engine, Engine):
            attach_progress_bar(engine, desc=engine_id.split("#")[0], persist=engine_id.startswith("train"))


def _run_bundle(runner_id: str, progress_ids: tuple[str, ...] = (), **kwargs: Any) -> None:
    """``monai.bundle.run`` (create the workflow, run ``runner_id``, finalise) with Ignite progress bars on the
    engines ``progress_ids``, re-raising a user error (bad file, key, NaN loss) that MONAI wrapped in a RuntimeError
    ("Failed to instantiate component ...") as itself, so that :func:`main` reports it in one line."""
    from monai.bundle.scripts import create_workflow

    from .hub import check_run_args

    check_run_args(kwargs)  # a truncated --resume_from / --ckpt_path: one line, before the config is parsed
    _check_device(kwargs.get("device"))
    try:
        workflow = create_workflow(run_id=runner_id, **kwargs)
        _attach_progress_bars(workflow, progress_ids)
        workflow.run()
        workflow.finalize()
    except RuntimeError as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, USER_ERRORS):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from err


def _bundle_files(bundle: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``config_file`` (train.json, then ``extra``), ``meta_file``, ``logging_file`` and ``bundle_root`` (the
    absolute bundle folder, so the configs' ``@bundle_root`` paths point into it) of a bundle's runner."""
    root = Path(bundle)
    if not root.is_dir():
        raise FileNotFoundError(f"bundle folder {bundle!r} does not exist.")
    configs = [root / "configs" / "train.json", *[root / "configs" / e for e in extra]]
    for c in configs:
        if not c.is_file():
            raise FileNotFoundError(f"bundle {bundle!r}: missing {c}.")
    files = [str(c) for c in configs]
    out: dict[str, Any] = {"config_file": files if len(files) > 1 else files[0], "bundle_root": str(root.resolve())}
    meta = root / "configs" / "metadata.json"
    logging_conf = root / "configs" / "logging.conf"
    if meta.is_file():
        out["meta_file"] = str(meta)
    if logging_conf.is_file():
        out["logging_file"] = str(logging_conf)
    return out


def _show_progress(progress_bar: bool | None) -> bool:
    """Progress bars on request, else when stderr is a terminal."""
    return sys.stderr.isatty() if progress_bar is None else bool(progress_bar)


def train(
    bundle: str | None = None, config_file: str | None = None, progress_bar: bool | None = None, **overrides: Any
) -> None:
    """Train a registration bundle with MONAI's bundle runner (``run training``).

    Args:
        bundle: a bundle folder (uses configs/train.json, metadata.json, logging.conf); it is the bundle root, so
            data, runs and checkpoints are read and written inside it, whatever the current folder.
        config_file: a config file (or list) instead of a bundle.
        progress_bar: show Ignite progress bars (iterations and loss); default on when stderr is a terminal
            (--noprogress_bar to hide them).
        overrides: config overrides, e.g. ``--max_epochs 2 --dataset_dir /data`` (use ``::`` for nested ids).
    """
    if bundle is not None:
        files = _bundle_files(bundle)
    elif config_file is not None:
        files = {"config_file": config_file}
    else:
        raise ValueError("train: give --bundle DIR or --config_file FILE.")
    progress = ("train#trainer", "validate#evaluator") if _show_progress(progress_bar) else ()
    _run_bundle("training", progress, **{**files, **overrides})


def evaluate(
    bundle: str,
    pairs: str | None = None,
    output: str | None = None,
    methods: str | list[str] = "none,network",
    device: str = "cpu",
    overwrite: bool = False,
    progress_bar: bool | None = None,
    **overrides: Any,
) -> str | None:
    """Evaluate a trained bundle.

    Without ``--pairs``: on its validation/test split with MONAI's runner (``run evaluating`` with train.json +
    evaluate.json). With ``--pairs PAIRS.json``: every pair of the file by :mod:`monai_reg_ext.evaluation`
    (no registration, the bundle's network, optional peers), scored on the fixed images' native grids: Dice per
    label, TRE (mm, with landmarks), folding fraction, SDlogJ, seconds -> ``OUTPUT/results.json`` and ``results.md``.

    Args:
        bundle: a bundle folder (configs/, models/); it is the bundle root, so data, weights and results are read
            and written inside it, whatever the current folder.
        pairs: JSON list of pairs (``moving``, ``fixed``, optional ``moving_label``/``fixed_label``,
            ``moving_landmarks``/``fixed_landmarks``, ``ddf``; relative to the file).
        output: results folder for ``--pairs`` (default ``<bundle>/runs/evaluate_pairs``).
        methods: for ``--pairs``: comma-separated among ``none``, ``network``, ``network+ioN``, ``true_ddf``,
            ``ants_syn``, ``ants_syn_full``, ``elastix_bspline``, ``greedy`` (a missing peer package is skipped).
        device: where the network runs (``--pairs``).
        overwrite: replace existing results files (``--pairs``).
        progress_bar: without ``--pairs``, show an Ignite progress bar; default on when stderr is a terminal.
        overrides: config overrides of the runner, e.g. ``--dataset_dir /data``.
    """
    if pairs is None:
        progress = ("validate#evaluator",) if _show_progress(progress_bar) else ()
        _run_bundle("evaluating", progress, **{**_bundle_files(bundle, ("evaluate.json",)), **overrides})
        return None
    from .evaluation import evaluate_bundle_on_pairs

    if overrides:
        raise ValueError(f"evaluate --pairs: unexpected options {sorted(overrides)}.")
    _check_device(device)
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    out = output or str(Path(bundle) / "runs" / "evaluate_pairs")
    evaluate_bundle_on_pairs(bundle, pairs, out, names, device, overwrite)
    print(Path(out, "results.md").read_text())
    return out


def register(
    moving: str,
    fixed: str,
    output: str,
    bundle: str | None = None,
    moving_label: str | None = None,
    fixed_label: str | None = None,
    moving_landmarks: str | None = None,
    fixed_landmarks: str | None = None,
    landmark_space: str = "voxel",
    device: str | None = None,
    overwrite: bool = False,
    figure: bool = True,
    instance_optimisation: int = 0,
    weights: str | None = None,
    stages: str | None = None,
    similarity: str = "lncc",
    transform: str = "bspline",
    initialisation: str = "moments",
    inverse: bool = False,
    threads: int | None = None,
    quiet: bool = False,
) -> dict[str, str]:
    """Register one pair and write warped_moving.nii.gz, ddf.nii.gz (ITK displacement field, mm), the warped label,
    metrics.csv and registration.png into OUTPUT (all on the fixed image's grid and affine).

    Without --bundle, the pair is registered by optimisation (no network): initial alignment, affine, then
    deformable, coarse to fine (docs/optimisation.md); affine.tfm then holds the affine alone (ITK transform file).

    Args:
        moving: moving image file (NIfTI, .mha, .nrrd...).
        fixed: fixed image file; its grid and affine define every output.
        output: output folder.
        bundle: bundle folder (configs/inference.json + models/model.pt); none: registration by optimisation.
        moving_label: moving label file (values in [0, 1], several classes as one-hot channels).
        fixed_label: fixed label file, for Dice.
        moving_landmarks: CSV/JSON points in the moving image, for TRE.
        fixed_landmarks: corresponding CSV/JSON points in the fixed image.
        landmark_space: "voxel" or "physical" (world RAS mm).
        device: "cpu", "cuda"... (default: CUDA when available).
        overwrite: replace existing output files.
        figure: write registration.png (--nofigure to skip it).
        instance_optimisation: with --bundle, iterations refining the network's DDF on the pair with the bundle's
            image loss and regulariser (0 = none; see docs/optimisation.md).
        weights: with --bundle, another weights file of the same network (e.g. models/model_unsupervised.pt or a
            training run's best_model.pt); default BUNDLE/models/model.pt.
        stages: without --bundle, "affine,deformable" (default), "affine" or "deformable"; with --bundle, stages
            around the network (default the bundle's registration_stages, else none), where "affine" aligns the
            pair before the network and "deformable" refines the network's DDF on the native grid.
        similarity: without --bundle, "lncc" (same contrast), "mi" (mutual information), "mind" (MIND-SSC
            descriptors), "ngf" or "ssd"; use "mi" or "mind" for different contrasts or modalities.
        transform: without --bundle, the deformable model: "bspline" (control points), "ddf" (dense) or "dvf"
            (diffeomorphic, stationary velocity).
        initialisation: without --bundle, "moments" (centres of mass), "centres" (image centres) or "none".
        inverse: also write inverse_ddf.nii.gz and report the inverse-consistency error (voxels).
        threads: CPU threads for torch; default half the CPU cores, at most 4 (1 on 2 cores: measured 6x faster
            than 2 threads on a loaded 2-core machine, docs/benchmarks/pairwise/schedules.md).
        quiet: no progress bar.
    """
    import torch

    from .api import register as api_register
    from .bundle import load_bundle

    _check_device(device)
    if threads is None:
        threads = min(4, max(1, (os.cpu_count() or 2) // 2))
    if int(threads) < 1:
        raise ValueError(f"--threads: expected an int >= 1, got {threads}.")
    torch.set_num_threads(int(threads))
    model = load_bundle(bundle, device=device, weights=weights) if (weights is not None and bundle) else bundle
    if weights is not None and not bundle:
        raise ValueError("--weights needs --bundle (the network those weights belong to).")
    result = api_register(
        moving,
        fixed,
        bundle=model,
        moving_label=moving_label,
        fixed_label=fixed_label,
        moving_landmarks=moving_landmarks,
        fixed_landmarks=fixed_landmarks,
        landmark_space=landmark_space,
        device=device,
        instance_optimisation=instance_optimisation,
        stages=stages,
        similarity=similarity,
        transform=transform,
        initialisation=initialisation,
        inverse=inverse,
        progress=not quiet and sys.stderr.isatty(),
    )
    paths = result.save(output, overwrite=overwrite, figure=figure)
    for k, v in result.metrics.items():
        print(f"{k}: {v:.4g}")
    return {k: str(v) for k, v in paths.items()}


def predict(
    bundle: str,
    pairs: str,
    output: str,
    device: str | None = None,
    overwrite: bool = False,
    weights: str | None = None,
    figure: bool = False,
    threads: int | None = None,
    resume: bool = False,
    prefetch: bool = True,
    compile: bool = False,
) -> str:
    """Register every pair of a JSON list and write per-pair folders, metrics.csv, summary.csv and status.csv into
    OUTPUT.

    The pairs file is checked first (every entry has a moving and a fixed image, every file exists, NIfTI headers fit
    their files; existing outputs need --overwrite or --resume): any problem stops predict before anything is written.
    A pair that fails later (e.g. a truncated image) is skipped, its folder left out, and recorded in status.csv
    (``ok`` or ``failed`` with the error, one row per pair); the other pairs are written and predict then exits with
    status 2 and a one-line summary of the failures. Each pair folder is written atomically, the CSV files too.

    Under ``torchrun --nproc_per_node N -m monai_reg_ext predict ...`` (also with ``--nnodes``, several machines, one
    shared output folder) the processes share the list: process ``rank`` registers the pairs ``i % N == rank`` (on
    ``cuda:LOCAL_RANK`` with CUDA, else gloo on CPU), and rank 0 writes the three tables once every process is done.

    Args:
        bundle: bundle folder.
        pairs: JSON file: a list (or ``{"pairs": [...]}``) of objects with ``moving``/``fixed`` (or ``moving_image``/
            ``fixed_image``) and optional ``moving_label``/``fixed_label``; relative paths are read from the JSON's
            folder.
        output: output folder (``pair_000/``... inside).
        device: where to run.
        overwrite: replace existing outputs (a failing pair's earlier outputs are removed).
        weights: another weights file of the same network; default: BUNDLE/models/model.pt.
        figure: also write each pair's registration.png (about 0.2 s per pair).
        threads: CPU threads for torch per process; default as ``register`` (half the CPU cores, at most 4), divided
            among the processes of a machine under torchrun.
        resume: continue an interrupted run into OUTPUT: pairs whose folder holds every output are kept (their
            metrics.csv is read back for the tables), the others are registered.
        prefetch: read the next pair's files, and write the previous pair's outputs, in background threads while a
            pair registers, into the same files and tables; with ``--noprefetch`` one step after the other.
        compile: ``torch.compile`` the network once (about 10-40 s on CPU, needs a C compiler), then use it for
            every pair (worth it for long cohorts). When compiling fails, a warning says why and it runs eagerly.
    """
    from .api.cohort import barrier, close_shard, gather_to_main, shard_device, start_shard
    from .bundle import load_bundle

    _check_device(device)
    if resume and overwrite:
        raise ValueError("predict: --resume keeps the finished pairs and --overwrite replaces them; choose one.")
    shard = start_shard(device)
    try:
        entries = _predict_entries(pairs)
        out = Path(output)
        if not resume:
            _check_predict_outputs(out, [e["name"] for e in entries], overwrite)
        _set_threads(threads, shard.world_size)
        dev = shard_device(device, shard)
        barrier(shard)  # no process writes before every process has checked the outputs
        model = load_bundle(bundle, device=dev, weights=weights)
        mine = [e for i, e in enumerate(entries) if shard.takes(i)]
        if compile and mine:
            _compile_network(model)
        rows, status, fatal = _predict_pairs(model, mine, out, dev, overwrite or resume, figure, resume, prefetch)
        gathered = gather_to_main([(rows, status, _portable(fatal))], shard)
    finally:
        close_shard(shard)
    if fatal is not None:
        raise fatal
    if gathered is None:  # not rank 0: rank 0 writes the tables
        return str(out)
    return _write_predict_tables(out, entries, gathered, overwrite)


def _set_threads(threads: int | None, processes: int) -> None:
    """torch's CPU threads: ``threads``, else half the CPU cores (at most 4) shared by the processes of a machine."""
    import torch

    if threads is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
        threads = max(1, min(4, max(1, (os.cpu_count() or 2) // 2)) // max(1, local))
    if int(threads) < 1:
        raise ValueError(f"--threads: expected an int >= 1, got {threads}.")
    torch.set_num_threads(int(threads))


def _pair_output_names(entry: dict[str, str], figure: bool) -> list[str]:
    """The files a finished pair folder of ``predict`` holds."""
    names = ["warped_moving.nii.gz", "ddf.nii.gz", "metrics.csv"]
    return names + ["warped_moving_label.nii.gz"] * bool(entry.get("moving_label")) + ["registration.png"] * figure


def _compile_network(model) -> None:
    """``predict --compile``: compile the bundle's network in place (``compile_network`` of
    :mod:`monai_reg_ext.api.compiling`); say how long it took, or warn (one line) and run eagerly when it fails."""
    from .api.compiling import compile_network

    device = next(model.network.parameters()).device
    seconds, why = compile_network(model.network, tuple(model.spatial_size), device)
    if seconds is None:
        print(f"monai-reg: warning: --compile: torch.compile failed ({why}); running eagerly.", file=sys.stderr)
    else:
        print(f"monai-reg: compiled the network in {seconds:.1f} s (--compile)", file=sys.stderr)


def _predict_pairs(
    model, entries, out: Path, device, overwrite: bool, figure: bool, resume: bool, prefetch: bool = True
):
    """Register ``entries`` (this process's share) into ``out``: ``(rows, status, fatal)``, where ``fatal`` is the
    error (an output that cannot be written) that stopped this process, else None; with ``resume`` a finished pair
    folder is kept and its metrics.csv read back.

    With ``prefetch`` the next pair's files are read (:class:`~monai_reg_ext.api.pipelining.Prefetcher`) and the
    previous pair's outputs written (:class:`~monai_reg_ext.api.pipelining.BackgroundWriter`) while a pair
    registers; each pair's outcome is recorded in the list's order, once its outputs are written, so the rows, the
    files and the error that stops the process are those of the sequential path.
    """
    from functools import partial

    from .api.cohort import pair_outputs_complete
    from .api.pipelining import BackgroundWriter, Prefetcher, read_pair_inputs

    done = [resume and pair_outputs_complete(out / e["name"], _pair_output_names(e, figure)) for e in entries]
    read = partial(read_pair_inputs, spatial_dims=len(model.spatial_size))
    rows, status, pending, fatal = [], [], None, None
    with Prefetcher(read, entries, [not d for d in done], prefetch) as ahead, BackgroundWriter(prefetch) as writer:
        for i, entry in enumerate(entries):
            outcome, result = _predict_one(model, entry, out, device, done[i], ahead.take(i))
            if pending is not None:  # the previous pair, whose outputs were written while this one registered
                fatal, pending = _record_pair(*pending, out, overwrite, rows, status), None
                if fatal is not None:  # stop as the sequential path does: this pair's outputs are not written
                    return rows, status, fatal
            item = (entry, outcome, None)
            if result is not None:  # write its outputs (one pair at a time, after the previous pair's)
                item = (entry, writer.submit(result.save, out / entry["name"], overwrite=overwrite, figure=figure),
                        result.metrics)  # fmt: skip
                if writer.background:  # recorded once the next pair has registered
                    pending = item
                    continue
            fatal = _record_pair(*item, out, overwrite, rows, status)
            if fatal is not None:
                return rows, status, fatal
        if pending is not None:
            fatal = _record_pair(*pending, out, overwrite, rows, status)
    return rows, status, fatal


def _predict_one(model, entry, out: Path, device, done: bool, preloaded):
    """One pair of ``predict``: ``(outcome, result)``, the result to write (with ``outcome`` None), or ``outcome``, a
    future holding the metrics of a finished pair kept by --resume, or the error (with ``result`` None)."""
    from concurrent.futures import Future

    from .api import register as api_register
    from .api.cohort import read_pair_metrics
    from .api.pipelining import register_preloaded

    outcome: Future = Future()
    try:
        if done:
            outcome.set_result(read_pair_metrics(out / entry["name"]))
            return outcome, None
        return None, register_preloaded(api_register, entry, preloaded, bundle=model, device=device)
    except Exception as err:
        outcome.set_exception(err)
        return outcome, None


def _record_pair(entry, outcome, metrics, out: Path, overwrite: bool, rows: list, status: list):
    """Add a pair's row to ``rows`` and ``status`` once its ``outcome`` (a future) is known: ``ok``, or ``failed``
    with the error (:data:`PAIR_ERRORS`); another error (an output that cannot be written) is returned, not recorded.
    """
    from .api.result import clear_outputs

    name = entry["name"]
    base = {"pair": name, "moving": entry["moving_image"], "fixed": entry["fixed_image"]}
    try:
        found = outcome.result()
    except PAIR_ERRORS as err:
        if overwrite:
            clear_outputs(out / name)  # an earlier run's outputs would pass for this run's
        status.append({**base, "status": "failed", "error": _message(err)})
        return None
    except Exception as err:  # an output error: stop here, after the other processes are told (gather)
        return err
    rows.append({**base, **(metrics if metrics is not None else found)})
    status.append({**base, "status": "ok", "error": ""})
    return None


def _portable(err: BaseException | None) -> BaseException | None:
    """``err`` as an exception that travels between processes (pickled): an ``OSError`` keeps its errno, message and
    file; anything else becomes a RuntimeError naming its type."""
    if err is None or type(err) in (OSError, ValueError, KeyError, RuntimeError, MemoryError):
        return err
    if isinstance(err, OSError):
        return OSError(err.errno, err.strerror or str(err), err.filename)
    return RuntimeError(f"{type(err).__name__}: {err}")


def _write_predict_tables(out: Path, entries: list[dict[str, str]], gathered: list, overwrite: bool) -> str:
    """Rank 0: metrics.csv, summary.csv and status.csv of every process's rows, in the order of the pairs file."""
    from .api.result import csv_text, write_metric_tables
    from .io.atomic import atomic_write_text

    failures = [f for _, _, f in gathered if f is not None]
    if failures:
        raise failures[0]
    order = {e["name"]: i for i, e in enumerate(entries)}
    rows = sorted((r for part, _, _ in gathered for r in part), key=lambda r: order[r["pair"]])
    status = sorted((r for _, part, _ in gathered for r in part), key=lambda r: order[r["pair"]])
    if rows:
        write_metric_tables(out, rows)
    elif overwrite:
        for stale in (out / "metrics.csv", out / "summary.csv"):
            stale.unlink(missing_ok=True)
    atomic_write_text(out / "status.csv", csv_text(status, fieldnames=["pair", "moving", "fixed", "status", "error"]))
    print(f"wrote {len(rows)} of {len(entries)} pairs to {out} (per-pair status: {out / 'status.csv'})")
    failed = [r for r in status if r["status"] == "failed"]
    if failed:
        more = f"; {len(failed) - 1} more" if len(failed) > 1 else ""
        raise ValueError(
            f"predict: {len(failed)} of {len(entries)} pairs failed ({failed[0]['pair']}: {failed[0]['error']}{more}); "
            f"the {len(rows)} other(s) are in {out}; per-pair status in {out / 'status.csv'}."
        )
    return str(out)


def _predict_entries(pairs: str) -> list[dict[str, str]]:
    """The entries of a pairs file (:func:`monai_reg_ext.workflow.read_pairs`), each file checked before anything is
    written: it exists, is a file, and its NIfTI header fits the file.

    Raises:
        FileNotFoundError / ValueError / KeyError: one line naming the entries at fault and the first problem.
    """
    from .io.inputs import check_nifti_size
    from .workflow import read_pairs

    entries = read_pairs(pairs)
    problems = []
    for i, entry in enumerate(entries):
        for key in ("moving_image", "fixed_image", "moving_label", "fixed_label"):
            path = Path(entry[key]) if entry.get(key) else None
            try:
                if path is not None and not path.is_file():
                    raise ValueError(f"{key} {str(path)!r} " + ("is a folder" if path.is_dir() else "does not exist"))
                if path is not None:
                    check_nifti_size(path, key)
            except ValueError as err:
                problems.append(f"entry {i}: {err}")
    if problems:
        more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"pairs {pairs!r}: {problems[0]}{more}; nothing was written.")
    return entries


def _check_predict_outputs(out: Path, names: list[str], overwrite: bool) -> None:
    """Refuse, before anything is written, outputs of an earlier run (CSV files, pair folders) without --overwrite
    (or --resume, which does not call this)."""
    if overwrite or not out.is_dir():
        return
    found = [n for n in ("metrics.csv", "summary.csv", "status.csv") if (out / n).exists()]
    found += [n for n in names if (out / n).is_dir() and any((out / n).iterdir())]
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise FileExistsError(
            f"{out} holds the outputs of an earlier run ({shown}); pass --overwrite to replace them, or --resume to "
            "keep its finished pairs and register the others."
        )


def warp(image: str, ddf: str, output: str, mode: str = "bilinear", overwrite: bool = False) -> str:
    """Warp an image with a DDF file (ITK displacement field, as ``register`` writes it) and write it on the DDF grid.

    An image on another grid than the DDF (shape, spacing, orientation or origin) is resampled onto the DDF grid in
    world coordinates first, with a logged warning. The output is written under a temporary name and renamed when
    complete, and never replaces the image or DDF file.

    Args:
        image: the moving image or label file (resampled onto the DDF grid in world coordinates if needed).
        ddf: displacement field file (ITK, ANTs or SimpleITK; float32 or float64 vectors; .nii, .nii.gz, .mha,
            .nrrd).
        output: output image file, .nii, .nii.gz, .mha or .nrrd (same grid and affine in every format).
        mode: "bilinear" (images), "nearest" (label maps) or "label" (one-hot labels: bilinear then 0.5 threshold).
        overwrite: replace an existing output file.
    """
    import numpy as np
    import torch
    from monai.data import MetaTensor

    from .io import check_output_suffix, load_ddf, load_input, save_image
    from .spatial import resample_to_grid, warp_image

    check_output_suffix(output)
    if mode not in ("bilinear", "nearest", "label"):
        raise ValueError(f"warp: mode must be 'bilinear', 'nearest' or 'label', got {mode!r}.")
    if Path(output).exists() and os.path.realpath(output) in {os.path.realpath(image), os.path.realpath(ddf)}:
        raise FileExistsError(f"warp: --output {output} is one of the inputs; choose another file.")
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it.")
    field, affine = load_ddf(ddf)
    ndim = field.shape[0]
    img = load_input(image, "image", ndim)
    from monai.data.utils import to_affine_nd

    ref_affine = to_affine_nd(int(img.affine.shape[0]) - 1, np.asarray(affine))  # same affine size as the image
    ref = MetaTensor(torch.zeros(1, *field.shape[1:]), affine=torch.as_tensor(np.asarray(ref_affine)))
    img = resample_to_grid(img, ref, f"image {image}", reference_name=f"DDF {ddf}")
    warped = warp_image(img.as_tensor()[None], field[None].float(), mode="nearest" if mode == "nearest" else "bilinear")
    out = warped[0].numpy()
    if mode == "label":
        out = (out >= 0.5).astype(np.uint8)
    save_image(output, out, np.asarray(affine), overwrite=True)
    print(f"wrote {output}")
    return output


def download(
    name: str,
    version: str | None = None,
    url: str | None = None,
    index: str | None = None,
    bundle_dir: str = "bundles",
    overwrite: bool = False,
    sha256: str | None = None,
) -> str:
    """Download a bundle zip, verify its sha256 against the index, and extract it safely to BUNDLE_DIR/NAME.

    Args:
        name: bundle name, e.g. ``unpaired_mr_brain``.
        version: bundle version (default: the newest in the index).
        url: URL of the zip, https:// or file:///abs/path.zip (default: the index entry's source).
        index: URL or path of a ``model_info.json`` (default: the one beside ``--url``, else the project's release).
        bundle_dir: folder receiving the bundle.
        overwrite: replace an existing bundle folder.
        sha256: expected sha256 of the zip, instead of an index.
    """
    from .hub import download as hub_download

    # fire reads "--version 1.0" as a float: give versions with three parts, or quote them ('"1.0"')
    path = hub_download(
        str(name),
        version=None if version is None else str(version),
        url=url,
        index=index,
        bundle_dir=bundle_dir,
        overwrite=overwrite,
        sha256=None if sha256 is None else str(sha256),
    )
    print(f"downloaded {name} to {path}")
    return str(path)


def show(
    moving: str,
    fixed: str,
    output: str,
    warped: str | None = None,
    ddf: str | None = None,
    figures: str | None = None,
    axis: int = 2,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write figures of registrations into OUTPUT: moving_warped_fixed.gif, slices.gif (3D), checkerboard.png, grid.png
    (with --ddf) and tile.png, on the middle slice normal to --axis (README.md, "Figures").

    Args:
        moving: moving image file (several pairs: comma-separated files, one figure folder pair_NNN each).
        fixed: fixed image file(s); the warped image and the DDF must lie on its grid.
        output: folder receiving the figures.
        warped: warped moving image file(s), e.g. warped_moving.nii.gz of register or predict.
        ddf: displacement field file(s), e.g. ddf.nii.gz of register or predict.
        figures: comma-separated among gif, slices, checkerboard, grid, tile (default: all that apply).
        axis: array axis normal to the slices of 3D images (0, 1 or 2).
        overwrite: replace existing figure files.
    """
    from .figures import write_figures

    return write_figures(moving, fixed, output, warped, ddf, figures=figures, axis=axis, overwrite=overwrite)


#: the ``monai-reg`` commands, by name
COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "register": register,
    "warp": warp,
    "download": download,
    "show": show,
}


def _message(err: BaseException) -> str:
    """The one-line message of a user error: its first line, naming the CLI flag instead of the Python argument; an
    ``OSError`` as ``<file>: <reason>``, with a hint for a full disk or a folder that cannot be written."""
    if isinstance(err, KeyError) and err.args:
        msg = str(err.args[0])
    elif isinstance(err, OSError) and err.strerror:
        msg = err.strerror
        if err.filename is not None and str(err.filename) not in msg:
            msg = f"{str(err.filename)!r}: {msg}"
        if err.errno in _NO_SPACE:
            msg += " (free some space or write elsewhere)"
        elif err.errno in _NOT_WRITABLE and msg.startswith("cannot write"):
            msg += " (choose a folder you can write to)"
    elif isinstance(err, MemoryError):
        msg = f"out of memory ({str(err) or 'MemoryError'}); use smaller images or a machine with more memory"
    else:
        msg = str(err)
    msg = msg.strip().replace("overwrite=True", "--overwrite")  # library messages name the Python argument
    return (msg.splitlines() or [type(err).__name__])[0]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``monai-reg`` console script.

    A user error (:data:`USER_ERRORS`) prints one line ``monai-reg: error: <message>`` on stderr and exits with status
    2; ``--debug`` (anywhere before a ``--``) prints the traceback before that line. Other exceptions are bugs: they
    propagate with their traceback (status 1).
    """
    import fire

    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut]
    argv = [a for a in argv[:cut] if a != "--debug"] + argv[cut:]
    if ("--help" in argv or "-h" in argv) and "--" not in argv:  # commands taking **overrides would swallow it
        argv = [a for a in argv if a not in ("--help", "-h")] + ["--", "--help"]
    try:
        fire.Fire(dict(COMMANDS), command=argv, name="monai-reg")
    except USER_ERRORS as err:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"monai-reg: error: {_message(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
