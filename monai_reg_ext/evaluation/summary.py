"""Summaries and outputs of an evaluation: statistics, Markdown tables, results files and bundle ``eval_metrics``.

One statistics function (:func:`statistics`: mean, population std, median, min, max and count, NaN ignored) serves
every summary; results keep full precision and values are rounded only where they are shown (:func:`format_stat`,
:func:`markdown_table`) or published (:func:`update_eval_metrics`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_write_path

__all__ = [
    "statistics",
    "mean_std",
    "summarise",
    "results_by_method",
    "Column",
    "format_stat",
    "markdown_table",
    "write_text",
    "write_results",
    "select_eval_metrics",
    "eval_metrics_spec",
    "round_metrics",
    "update_eval_metrics",
    "run_environment",
]


def statistics(values: Iterable[float | None]) -> dict[str, float]:
    """``{"mean", "std", "median", "min", "max", "n"}`` of ``values``; None and NaN are left out (``n`` counts the
    rest), the std is the population one (``ddof=0``); all NaN (``n == 0``) when nothing is left."""
    v = np.asarray([float(x) for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def mean_std(values: Iterable[float], digits: int = 4) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of :func:`statistics`, mean and std rounded to ``digits`` decimals."""
    s = statistics(values)
    return {"mean": round(s["mean"], digits), "std": round(s["std"], digits), "n": s["n"]}


def summarise(rows: Sequence[Mapping[str, Any]], exclude: Iterable[str] = ("pair",)) -> dict[str, dict[str, float]]:
    """:func:`statistics` of every numeric column of ``rows`` (bools and ``exclude`` left out), in first-seen order;
    a row without a column does not count for it."""
    skip = set(exclude)
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    out = {}
    for key in keys:
        values = [r[key] for r in rows if key in r]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = statistics(values)
    return out


def results_by_method(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], exclude: Iterable[str] = ("pair",)
) -> dict[str, dict[str, Any]]:
    """The results of one set of pairs: ``{"summary": {method: summarise(rows)}, "pairs": {method: rows}}``."""
    exclude = tuple(exclude)
    return {
        "summary": {m: summarise(r, exclude) for m, r in rows.items()},
        "pairs": {m: list(r) for m, r in rows.items()},
    }


@dataclass(frozen=True)
class Column:
    """A Markdown column: ``title``, the summary ``key``, ``digits`` after the point in format ``fmt`` (``"f"`` or
    ``"e"``), a ``scale`` (e.g. 100 for %), ``std`` (show ``mean ± std``, else the mean alone) and ``bold`` (the
    mean in bold)."""

    title: str
    key: str
    digits: int = 3
    scale: float = 1.0
    std: bool = True
    bold: bool = False
    fmt: str = "f"


def format_stat(
    stat: Mapping[str, float] | None, digits: int = 3, scale: float = 1.0, std: bool = True, fmt: str = "f"
) -> str:
    """``"mean ± std"`` (or the mean alone) with ``digits`` decimals (format ``fmt``); ``–`` when missing."""
    if stat is None or not stat.get("n", 1):
        return "–"
    mean = f"{scale * stat['mean']:.{digits}{fmt}}"
    return f"{mean} ± {scale * stat['std']:.{digits}{fmt}}" if std else mean


def markdown_table(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
    columns: Sequence[Column],
    labels: Mapping[str, str] | None = None,
    first: str = "method",
    round_first: int | None = None,
) -> str:
    """A Markdown table, one row per entry of ``summaries`` (``{method: {key: statistics}}``), one column per
    :class:`Column`; ``labels`` renames methods in the first column (titled ``first``). ``round_first`` rounds mean
    and std to that many decimals before formatting (tables published from summaries stored rounded)."""
    labels = dict(labels or {})
    lines = [f"| {first} | " + " | ".join(c.title for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, summary in summaries.items():
        cells = []
        for c in columns:
            stat = summary.get(c.key)
            if stat is not None and round_first is not None:
                stat = {**stat, "mean": round(stat["mean"], round_first), "std": round(stat["std"], round_first)}
            text = format_stat(stat, c.digits, c.scale, c.std, c.fmt)
            if c.bold and text != "–":
                mean, _, rest = text.partition(" ± ")
                text = f"**{mean}**" + (f" ± {rest}" if rest else "")
            cells.append(text)
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary sibling renamed onto it); returns the path."""
    path = Path(path)
    with atomic_write_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_results(
    out_dir: str | os.PathLike,
    results: Mapping[str, Any],
    markdown: str | None = None,
    json_name: str = "results.json",
    md_name: str = "results.md",
    indent: int = 2,
) -> dict[str, Path]:
    """Write ``results`` as JSON (``indent``) and, when given, ``markdown`` into ``out_dir`` (created), atomically.

    Returns:
        ``{"json": path, "markdown": path}`` of what was written.
    """
    out = Path(out_dir)
    paths = {"json": write_text(out / json_name, json.dumps(results, indent=indent) + "\n")}
    if markdown is not None:
        paths["markdown"] = write_text(out / md_name, markdown)
    return paths


def select_eval_metrics(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]], spec: Mapping[str, tuple[str, str]]
) -> dict[str, float]:
    """``{name: mean}`` for each ``name: (method, key)`` of ``spec`` found in ``summaries`` (others left out)."""
    out = {}
    for name, (method, key) in spec.items():
        stat = summaries.get(method, {}).get(key)
        if stat is not None and stat.get("n", 1):
            out[name] = float(stat["mean"])
    return out


def eval_metrics_spec(
    means: Mapping[str, str], extra: Mapping[str, str] | None = None, method: str = "network", baseline: str = "none"
) -> dict[str, tuple[str, str]]:
    """The usual ``eval_metrics`` specification of :func:`select_eval_metrics`: ``test_mean_<name>`` of ``method``
    for each ``name: key`` of ``means``, then ``extra`` (``eval name: key`` of ``method``), then
    ``no_registration_mean_<name>`` of ``baseline`` for the same ``means``."""
    spec = {f"test_mean_{name}": (method, key) for name, key in means.items()}
    spec.update({name: (method, key) for name, key in (extra or {}).items()})
    spec.update({f"no_registration_mean_{name}": (baseline, key) for name, key in means.items()})
    return spec


def round_metrics(metrics: Mapping[str, float], digits: int | Mapping[str, int] = 4) -> dict[str, float]:
    """``metrics`` rounded to ``digits`` decimals: one number for all, or per name (4 for names not listed)."""
    per_key = digits if isinstance(digits, Mapping) else {}
    default = 4 if isinstance(digits, Mapping) else int(digits)
    return {k: round(float(v), int(per_key.get(k, default))) for k, v in metrics.items()}


def update_eval_metrics(
    metadata_path: str | os.PathLike,
    metrics: Mapping[str, float],
    digits: int | Mapping[str, int] = 4,
    merge: bool = False,
) -> dict[str, float]:
    """Replace ``eval_metrics`` in a bundle's ``metadata.json`` (rewritten indented by 4, atomically) by ``metrics``
    rounded to ``digits`` decimals (one number, or per name with 4 for names not listed); with ``merge`` only the
    given names are replaced (or added) and the others kept. Returns the ``eval_metrics`` written.

    Raises:
        FileNotFoundError: no such metadata file.
    """
    path = Path(metadata_path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file {str(path)!r} does not exist.")
    rounded = round_metrics(metrics, digits)
    meta = json.loads(path.read_text())
    meta["eval_metrics"] = {**meta.get("eval_metrics", {}), **rounded} if merge else rounded
    write_text(path, json.dumps(meta, indent=4) + "\n")
    return meta["eval_metrics"]


def run_environment() -> dict[str, Any]:
    """Where and when an evaluation ran: ``torch_threads``, ``machine`` and ``date`` (UTC, to the minute)."""
    return {
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
