"""One pair-evaluation path: pairs -> a DDF per method -> scores per pair -> summaries, tables, ``eval_metrics``.

- :mod:`.pairs`: :class:`PairSpec` (the files of a pair), :class:`Pair` (tensors on the fixed grid), loaders.
- :mod:`.methods`: methods ``pair -> MethodOutput`` (identity, true DDF, network, ``register`` with a bundle
  or bundle-free, optimisation, precomputed DDFs); :mod:`.peers`: ANTs / elastix / greedy as optional plug-ins.
- :mod:`.scoring`: metric plug-ins ``(pair, output) -> {name: value}`` (Dice per label, TRE in mm, folding, SDlogJ,
  DDF error, displacement, image similarity); a bundle passes its own metrics alongside.
- :mod:`.runner`: :func:`evaluate_pairs`, the loop.
- :mod:`.summary`: :func:`statistics`, Markdown tables, results files, :func:`update_eval_metrics`.

Bundles' ``scripts/evaluate.py`` are specifications on top of this package: which pairs, which methods, which
metrics, which numbers go into ``configs/metadata.json``.
"""

from __future__ import annotations

from .compare import KNOWN_METHODS, compare_methods, known_ddf_metrics, speed_table
from .methods import (
    PIPELINE_OPTIONS,
    Method,
    MethodOutput,
    identity,
    network,
    optimisation,
    precomputed,
    register_bundle,
    register_pipeline,
    select_methods,
    true_ddf,
)
from .pairs import Pair, PairSpec, load_pair, preprocess_pair, read_pairs
from .peers import PEERS, configure_threads, peer_available, peer_method
from .runner import evaluate_pair_files, evaluate_pairs
from .scoring import (
    Metric,
    ddf_error,
    default_metrics,
    dice,
    dice_argmax,
    displacement,
    folding,
    image_similarity,
    region,
    score_pair,
    sdlogj,
    tre,
    warped_image,
    warped_label,
)
from .script import (
    add_method_arguments,
    before_after_figures,
    evaluate_bundle_on_pairs,
    evaluate_bundle_splits,
    load_networks,
    method_label,
    method_names,
    parse_script_args,
    publish,
    script_parser,
    splits_markdown,
)
from .summary import (
    Column,
    eval_metrics_spec,
    format_stat,
    markdown_table,
    mean_std,
    results_by_method,
    round_metrics,
    run_environment,
    select_eval_metrics,
    statistics,
    summarise,
    update_eval_metrics,
    write_results,
    write_text,
)

__all__ = [
    "PairSpec",
    "Pair",
    "read_pairs",
    "load_pair",
    "preprocess_pair",
    "MethodOutput",
    "Method",
    "identity",
    "true_ddf",
    "network",
    "register_bundle",
    "register_pipeline",
    "PIPELINE_OPTIONS",
    "optimisation",
    "precomputed",
    "select_methods",
    "PEERS",
    "configure_threads",
    "peer_available",
    "peer_method",
    "Metric",
    "warped_image",
    "warped_label",
    "region",
    "dice",
    "dice_argmax",
    "tre",
    "folding",
    "sdlogj",
    "ddf_error",
    "displacement",
    "image_similarity",
    "default_metrics",
    "score_pair",
    "evaluate_pairs",
    "evaluate_pair_files",
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
    "KNOWN_METHODS",
    "known_ddf_metrics",
    "compare_methods",
    "speed_table",
]
