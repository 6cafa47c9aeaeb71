"""The pair-evaluation loop: every method on every pair, scored by the same metrics, one row per pair and method."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from .methods import Method, MethodOutput
from .pairs import Pair, load_pair, read_pairs
from .scoring import Metric, default_metrics, score_pair
from .summary import results_by_method

__all__ = ["evaluate_pairs", "evaluate_pair_files"]

OnOutput = Callable[[Pair, str, MethodOutput], None]


def _line(pair: Pair, method: str, row: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
    return f"{pair.name} {method}: {values}"


def evaluate_pairs(
    pairs: Iterable[Pair],
    methods: Mapping[str, Method],
    metrics: Sequence[Metric] | None = None,
    *,
    warmup: Collection[str] = (),
    on_output: OnOutput | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, list[dict[str, Any]]]:
    """Register every pair with every method and score the DDFs with one list of metrics.

    Pairs may be a generator (each is loaded, used by all methods, then dropped).

    Args:
        pairs: the pairs (:func:`~.pairs.load_pair`, :func:`~.pairs.preprocess_pair`, or built by a bundle).
        methods: name -> method (:mod:`.methods`, :mod:`.peers`, or any ``pair -> MethodOutput`` callable).
        metrics: metric plug-ins (:mod:`.scoring`); default :func:`~.scoring.default_metrics`.
        warmup: methods run once, untimed and unscored, on the first pair before it is timed (first-call overheads).
        on_output: called as ``on_output(pair, method, output)`` after each scoring (figures, extra files).
        log: one line per pair and method (None: silent).

    Returns:
        ``{method: rows}``, one row per pair in order: ``pair`` (its name), ``pair.info``, ``seconds``, the method's
        ``extras`` and the metrics.
    """
    metrics = default_metrics() if metrics is None else list(metrics)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in methods}
    for index, pair in enumerate(pairs):
        for name, method in methods.items():
            if index == 0 and name in warmup:
                method(pair)
            output = method(pair)
            row = {"pair": pair.name, **pair.info, "seconds": float(output.seconds), **output.extras}
            row.update(score_pair(pair, output, metrics))
            rows[name].append(row)
            if on_output is not None:
                on_output(pair, name, output)
            if log is not None:
                log(_line(pair, name, row))
    return rows


def evaluate_pair_files(
    files: Mapping[str, str | os.PathLike],
    methods: Mapping[str, Method],
    metrics: Sequence[Metric] | None = None,
    *,
    load: Mapping[str, Any] | None = None,
    warmup: Collection[str] = (),
    on_output: Callable[[str, Pair, str, MethodOutput], None] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_pairs` on the pairs of each pairs file (e.g. a bundle's ``data/<split>/pairs.json``), loaded
    on their native fixed grid (:func:`~.pairs.load_pair` with the keyword arguments ``load``).

    Args:
        files: set name (a split) -> pairs JSON file.
        methods, metrics, warmup, log: as :func:`evaluate_pairs` (warm-ups run on the first pair of every set).
        load: keyword arguments of :func:`~.pairs.load_pair` (``binarise``, ``resample_moving``, ``dtype``).
        on_output: called as ``on_output(set_name, pair, method, output)``.

    Returns:
        ``{set name: {"summary": {method: statistics}, "pairs": {method: rows}}}``.
    """
    out = {}
    for set_name, path in files.items():
        pairs = (load_pair(spec, **dict(load or {})) for spec in read_pairs(path))
        hook = None if on_output is None else lambda p, m, o, s=set_name: on_output(s, p, m, o)
        rows = evaluate_pairs(pairs, methods, metrics, warmup=warmup, on_output=hook, log=log)
        out[set_name] = results_by_method(rows, exclude=("pair", "subject"))
    return out
