"""What every bundle's ``scripts/evaluate.py`` shares: its command line and the publishing of its results."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..bundle import BundleModel, load_bundle
from .methods import MethodOutput, select_methods
from .pairs import Pair
from .peers import PEERS, configure_threads
from .runner import evaluate_pair_files
from .scoring import Metric
from .summary import (
    Column,
    markdown_table,
    round_metrics,
    run_environment,
    select_eval_metrics,
    update_eval_metrics,
    write_results,
)

__all__ = [
    "script_parser",
    "parse_script_args",
    "add_method_arguments",
    "load_networks",
    "method_names",
    "before_after_figures",
    "method_label",
    "evaluate_bundle_splits",
    "splits_markdown",
    "evaluate_bundle_on_pairs",
    "publish",
    "publish_against_no_registration",
    "print_eval_metrics",
]


def script_parser(doc: str, bundle: str | os.PathLike, weights: bool = True) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the options every bundle evaluation takes: ``--bundle`` (default ``bundle``),
    ``--output`` (default ``<bundle>/docs/results``), ``--weights`` (unless ``weights`` is False), ``--device``,
    ``--threads`` and ``--update-metadata``; the description is the first paragraph of ``doc``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", default=str(bundle), help="bundle folder (configs/, models/, data/)")
    ap.add_argument("--output", default=None, help="results folder (default <bundle>/docs/results)")
    if weights:
        ap.add_argument("--weights", default=None, help="weights file (default <bundle>/models/model.pt)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument(
        "--update-metadata", action="store_true", help="write eval_metrics into <bundle>/configs/metadata.json"
    )
    return ap


def parse_script_args(ap: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, set the torch threads, and resolve ``bundle`` / ``output`` to paths."""
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.bundle = Path(args.bundle)
    args.output = Path(args.output) if args.output else args.bundle / "docs" / "results"
    return args


def add_method_arguments(
    ap: argparse.ArgumentParser, splits: Sequence[str], networks: Mapping[str, str], methods: Sequence[str]
) -> argparse.ArgumentParser:
    """Add ``--splits``, ``--networks name=weights``, ``--methods`` and ``--instance-optimisation`` (defaults given)."""
    ap.add_argument("--splits", nargs="+", default=list(splits), help="data/<split>/pairs.json of the bundle")
    nets = [f"{k}={v}" for k, v in networks.items()]
    ap.add_argument("--networks", nargs="+", default=nets, help="name=weights (relative to the bundle)")
    ap.add_argument("--methods", nargs="+", default=list(methods), help=f"none, true_ddf or a peer: {sorted(PEERS)}")
    ap.add_argument("--instance-optimisation", type=int, default=0, help="also run the first network + N iterations")
    return ap


def load_networks(bundle: Path, specs: Sequence[str], device: str = "cpu") -> dict[str, BundleModel]:
    """``name=weights`` (weights relative to ``bundle``) -> the bundle's network with those weights, by name.

    Raises:
        ValueError: a spec without ``=``.
    """
    models = {}
    for spec in specs:
        name, sep, weights = spec.partition("=")
        if not sep:
            raise ValueError(f"--networks: expected name=weights, got {spec!r}.")
        models[name] = load_bundle(bundle, device=device, weights=bundle / weights)
    return models


def method_names(networks: Sequence[str], methods: Sequence[str], instance_optimisation: int = 0) -> list[str]:
    """``none``, ``network:<name>`` per network, ``network:<first>+io<N>`` when ``instance_optimisation > 0``,
    then the other ``methods`` (names of :func:`~.methods.select_methods`)."""
    names = ["none", *[f"network:{n}" for n in networks]]
    if instance_optimisation > 0:
        names.append(f"network:{networks[0]}+io{int(instance_optimisation)}")
    return names + [m for m in methods if m not in names]


def before_after_figures(
    out_dir: str | os.PathLike, method: str, axis: int = 1
) -> Callable[[str, Pair, str, MethodOutput], None]:
    """An ``on_output`` hook of :func:`~.runner.evaluate_pair_files`: for the first pair ``method`` scores, write
    ``figure_<set>_<pair>_before.png`` (identity) and ``..._after.png`` (:func:`monai_reg_ext.visualise.
    save_registration_figure`, slice normal to ``axis``)."""
    from ..visualise import save_registration_figure

    done = []

    def hook(set_name: str, pair: Pair, name: str, output: MethodOutput) -> None:
        if done or name != method:
            return
        prefix = Path(out_dir) / f"figure_{set_name}_{pair.name}"
        moving, fixed = pair.moving_image[0], pair.fixed_image[0]
        warped = output.warped_image[0] if output.warped_image is not None else moving
        save_registration_figure(f"{prefix}_before.png", moving, fixed, moving, 0 * output.ddf[0], axis)
        save_registration_figure(f"{prefix}_after.png", moving, fixed, warped, output.ddf[0], axis)
        done.append(prefix)

    return hook


def method_label(name: str) -> str:
    """A method's name in tables: ``none`` -> ``no registration``, ``network:X+ioN`` -> ``network, X + instance
    optimisation × N``; others unchanged."""
    if name == "none":
        return "no registration"
    return name.replace("network:", "network, ").replace("+io", " + instance optimisation × ")


def evaluate_bundle_splits(args: argparse.Namespace, metrics: Sequence[Metric], **load: Any) -> dict[str, Any]:
    """No registration, the bundle's networks (``args.networks``, through :func:`monai_reg_ext.register`, one untimed
    warm-up each), optionally the first with instance optimisation, and ``args.methods`` (peers skipped when their
    package is missing) on ``<bundle>/data/<split>/pairs.json`` for each of ``args.splits``, on the native fixed
    grids (``load``: :func:`~.pairs.load_pair` options), scored by ``metrics``; the first network's first pair is
    drawn before/after into ``args.output`` (coronal slice).

    Args:
        args: from :func:`script_parser` + :func:`add_method_arguments` and :func:`parse_script_args`.
        metrics: the metric plug-ins.
        load: keyword arguments of :func:`~.pairs.load_pair`.

    Returns:
        ``{"splits": {split: {"summary", "pairs"}}, "methods": [...], "skipped": {method: why}}``.
    """
    configure_threads(args.threads or 1)
    models = load_networks(args.bundle, args.networks, args.device)
    names = method_names(list(models), args.methods, args.instance_optimisation)
    methods, skipped = select_methods(names, models, args.device)
    files = {split: args.bundle / "data" / split / "pairs.json" for split in args.splits}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    hook = before_after_figures(args.output, f"network:{next(iter(models))}")
    warmup = [m for m in methods if m.startswith("network:") and "+io" not in m]
    splits = evaluate_pair_files(files, methods, metrics, load=load, warmup=warmup, on_output=hook)
    return {"splits": splits, "methods": list(methods), "skipped": skipped}


def splits_markdown(results: Mapping[str, Any], columns: Sequence[Column], round_first: int | None = 4) -> str:
    """One table per split of :func:`evaluate_bundle_splits` results (methods named by :func:`method_label`)."""
    lines = []
    for split, res in results["splits"].items():
        rows = next(iter(res["pairs"].values()))
        subjects = sorted({r.get("subject", "") for r in rows} - {""})
        lines += [f"### split `{split}` ({len(rows)} pairs; subjects: {', '.join(subjects)})", ""]
        labels = {m: method_label(m) for m in res["summary"]}
        lines += [markdown_table(res["summary"], columns, labels, round_first=round_first)]
    env = run_environment()
    return (
        "\n".join(lines)
        + f"\nMean ± std over pairs; CPU ({env['machine']}), {env['torch_threads']} thread(s), {env['date']}.\n"
    )


def evaluate_bundle_on_pairs(
    bundle: str | os.PathLike,
    pairs: str | os.PathLike,
    output: str | os.PathLike,
    methods: Sequence[str] = ("none", "network"),
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, Any]:
    """The ``monai-reg evaluate --pairs`` path: ``methods`` (``none``, ``network`` = the bundle through
    :func:`monai_reg_ext.register`, ``network+ioN``, ``true_ddf``, peers) on every pair of a pairs JSON, on the fixed
    images' native grids (moving resampled onto them in world coordinates when the grids differ), scored by
    :func:`~.scoring.default_metrics` (Dice per label, TRE in mm, folding fraction, SDlogJ); writes
    ``results.json`` and ``results.md`` into ``output``.

    Raises:
        FileExistsError: ``results.json`` or ``results.md`` exists in ``output`` and ``overwrite`` is False.
    """
    out = Path(output)
    existing = [str(out / n) for n in ("results.json", "results.md") if (out / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} exist already; pass --overwrite to replace them.")
    model = load_bundle(bundle, device=device)
    run, skipped = select_methods(list(methods), {"network": model}, device)
    load = {"resample_moving": True, "dtype": torch.float32}
    warmup = [m for m in run if m.startswith("network") and "+io" not in m]
    res = evaluate_pair_files({"pairs": pairs}, run, load=load, warmup=warmup)["pairs"]
    keys = list(dict.fromkeys(k for s in res["summary"].values() for k in s if k.startswith(("dice", "tre_mm"))))
    keys += ["folding_fraction", "sd_log_jacobian", "seconds"]
    columns = [Column(k, k, 2 if k in ("tre_mm", "seconds") else 4) for k in keys]
    labels = {m: method_label(m) for m in run}
    results = {"bundle": str(bundle), "pairs_file": str(pairs), "methods": list(run), "skipped": skipped, **res}
    write_results(out, {**results, "environment": run_environment()}, markdown_table(res["summary"], columns, labels))
    return results


def publish(
    output: str | os.PathLike,
    results: dict[str, Any],
    eval_metrics: Mapping[str, float],
    digits: int | Mapping[str, int] = 4,
    metadata: str | os.PathLike | None = None,
    markdown: str | None = None,
    merge: bool = False,
) -> dict[str, float]:
    """Round ``eval_metrics`` (``digits``: one number or per name, 4 for names not listed), store them in
    ``results["eval_metrics"]`` with :func:`~.summary.run_environment`, write ``results.json`` (and ``results.md``
    when ``markdown`` is given) into ``output``, and, with ``metadata``, the same numbers into that metadata.json
    (``merge``: keep its other ``eval_metrics``, for a script that evaluates one part of a bundle per run).

    Returns:
        The rounded ``eval_metrics``.
    """
    rounded = round_metrics(eval_metrics, digits)
    results.setdefault("environment", run_environment())
    results["eval_metrics"] = rounded
    write_results(output, results, markdown)
    if metadata is not None:
        update_eval_metrics(metadata, rounded, digits, merge=merge)
    return rounded


def publish_against_no_registration(
    bundle: str | os.PathLike,
    output: str | os.PathLike,
    results: dict[str, Any],
    columns: Sequence[Column],
    eval_metrics: Mapping[str, tuple[str, str]],
    heading: str,
    update_metadata: bool = False,
    footer: str = "",
) -> dict[str, Any]:
    """:func:`publish` the results of a bundle's ``network`` against ``none`` (no registration): ``results["summary"]``
    as a table (:func:`~.summary.markdown_table`, 4 decimals) between ``heading`` and ``footer`` in ``results.md``,
    the ``eval_metrics`` (:func:`~.summary.select_eval_metrics` specification) in ``results.json`` and, with
    ``update_metadata``, in ``<bundle>/configs/metadata.json``; returns ``results``."""
    summary = results["summary"]
    table = markdown_table(summary, columns, {"none": "no registration", "network": "this network"}, "", 4)
    metadata = Path(bundle) / "configs" / "metadata.json" if update_metadata else None
    markdown = f"{heading}\n\n{table}{footer}"
    publish(output, results, select_eval_metrics(summary, eval_metrics), metadata=metadata, markdown=markdown)
    return results


def print_eval_metrics(results: Mapping[str, Any]) -> int:
    """Print a script's ``eval_metrics`` (``eval_metrics {...}``); return 0, its exit status."""
    print("eval_metrics", results["eval_metrics"])
    return 0
