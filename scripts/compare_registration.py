"""Compare registration methods on image pairs whose true displacement is known: a thin wrapper over
:func:`monai_reg_ext.evaluation.compare_methods` (methods, metrics and files are described there).

Usage::

    python scripts/compare_registration.py --pairs bundles/unpaired_mr_brain/data/test/pairs.json \\
        --bundle bundles/unpaired_mr_brain --methods "['none','network','ants_syn','greedy']" --output out/ --threads 2

(``bundles/unpaired_mr_brain/scripts/evaluate.py`` runs it for that bundle's README and ``eval_metrics``.)

The helpers below keep the dict interface that ``scripts/benchmark.py`` and ``scripts/instance_optimisation_table.py``
use (``load_pair``, ``evaluate_ddf``, ``run_method``): each is one call into the package.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_reg_ext import evaluation as ev

__all__ = ["PEERS", "METRIC_KEYS", "configure_threads", "load_pair", "evaluate_ddf", "run_method", "main"]

PEERS = ev.PEERS
METRIC_KEYS = ("seconds", "dice_gm", "dice_wm", "error_mm", "folding_pct", "sdlogj")
METRICS = ev.known_ddf_metrics(("gm", "wm"))
configure_threads = ev.configure_threads
_peer_available = ev.peer_available
main = ev.compare_methods


def load_pair(item: dict, root: Path) -> dict[str, Any]:
    """One pairs.json entry as a dict: ``pair`` (the :class:`monai_reg_ext.evaluation.Pair`), ``paths``, ``moving`` /
    ``fixed`` ``(*S)`` arrays and ``ddf_true`` ``(3, *S)`` in fixed voxels."""
    pair = ev.load_pair(ev.PairSpec.from_entry(item, root))
    paths = {"moving": Path(pair.spec.moving), "fixed": Path(pair.spec.fixed)}
    arrays = {k: getattr(pair, f"{k}_image")[0, 0].numpy() for k in ("moving", "fixed")}
    return {"pair": pair, "paths": paths, **arrays, "ddf_true": pair.true_ddf[0].numpy()}


def evaluate_ddf(pair: dict[str, Any], ddf: np.ndarray) -> dict[str, float]:
    """Dice GM/WM, displacement error (mm), folding % and SDlogJ in the fixed brain for one DDF ``(3, *S)``."""
    return ev.score_pair(pair["pair"], ev.MethodOutput(torch.as_tensor(np.asarray(ddf))[None], 0.0), METRICS)


def run_method(method: str, pair: dict[str, Any], model=None, device: str = "cpu") -> dict[str, Any]:
    """Register one pair with ``method`` (``none``, ``true_ddf``, ``network`` with ``model``, or a peer); returns
    ``{"ddf": (3, *S) fixed voxels, "seconds": ..., **extras}``."""
    methods, skipped = ev.select_methods([method], {"network": model} if model is not None else {}, device, log=None)
    if method in skipped:
        raise ValueError(f"{method}: its package is not importable ({skipped[method]}).")
    out = methods[method](pair["pair"])
    return {"ddf": out.ddf[0].double().numpy(), "seconds": out.seconds, **out.extras}


@functools.wraps(main)
def _cli(*args: Any, **kwargs: Any) -> None:
    """Command-line entry: :func:`main` without printing the returned dict."""
    main(*args, **kwargs)


if __name__ == "__main__":
    import fire

    fire.Fire(_cli)
