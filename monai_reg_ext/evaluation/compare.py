"""Registration methods compared on pairs whose true displacement is known (the ``unpaired_mr_brain`` protocol).

Every method is reduced to a DDF on the fixed grid (:mod:`.methods`, :mod:`.peers`) and scored against the pair's
true DDF with :func:`known_ddf_metrics`:

- Dice per label: the moving one-hot labels with a background channel warped bilinearly, argmax, binary Dice against
  the fixed labels (:func:`~.scoring.dice_argmax`);
- ``error_mm``: mean ``|R (ddf - ddf_true)|`` in mm inside the fixed labels (``R`` the fixed affine's linear part);
- ``folding_pct``: % of voxels inside the fixed labels with Jacobian determinant ``<= 0``; ``sdlogj`` there;
- ``seconds``: wall time of the registration only (network: the whole ``register`` call on the two files, the bundle
  loaded before and one untimed warm-up call; ``network_seconds`` is the network part ``register`` reports);
  ``cpu_seconds``: process CPU time of the same span.

``true_ddf`` (the stored true DDF, the ceiling of the label protocol) is always added. Summary: mean and population
std over the pairs. :func:`compare_methods` writes ``results.json``, ``results.csv``, ``results.md`` and
``error_maps.png``.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .methods import MethodOutput, select_methods
from .pairs import Pair
from .peers import PEERS, configure_threads
from .runner import evaluate_pair_files
from .scoring import Metric, ddf_error, dice_argmax, folding, sdlogj
from .summary import format_stat, write_results

__all__ = ["KNOWN_METHODS", "known_ddf_metrics", "compare_methods", "speed_table"]

KNOWN_METHODS = ("none", "network", *PEERS)
"""Method names :func:`compare_methods` accepts (``true_ddf`` is always added)."""


def known_ddf_metrics(names: Sequence[str] = ("gm", "wm")) -> list[Metric]:
    """Dice per label (argmax protocol, keys ``dice_<name>``), ``error_mm``, ``folding_pct`` and ``sdlogj`` inside
    the fixed labels."""
    return [dice_argmax(names), ddf_error("label"), folding("label", percent=True), sdlogj("label", key="sdlogj")]


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    import monai

    out = {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__}
    for dist in ("numpy", "nibabel", "antspyx", "itk", "itk-elastix", "picsl_greedy"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "not installed"
    return out


def _load_average() -> list[float] | None:
    """1, 5 and 15 min load averages (the machine may be shared: timings are only as good as this)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return None


def speed_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]], names: Sequence[str] = ("gm", "wm")) -> str:
    """Markdown: method | s/pair | Dice per label | error mm | folding % | SDlogJ | speed ratio vs ants_syn."""
    ref = summary.get("ants_syn", {}).get("seconds", {}).get("mean")
    dice_titles = " | ".join(f"Dice {n.upper()}" for n in names)
    lines = [
        f"| method | s/pair | {dice_titles} | error mm | folding % | SDlogJ | speed ratio vs ants_syn |",
        "|---" * (6 + len(names)) + "|",
    ]
    for m, s in summary.items():
        sec = s.get("seconds")
        if m in ("none", "true_ddf") or sec is None or not sec.get("n"):
            sec_txt, ratio = ("0" if m == "none" else "–"), "–"
        else:
            sec_txt = format_stat(sec, 2)
            ratio = f"{ref / sec['mean']:.1f}×" if ref and sec["mean"] > 0 else "–"
        dice = " | ".join(format_stat(s.get(f"dice_{n}"), 4) for n in names)
        cells = [format_stat(s.get(k), 3) for k in ("error_mm", "folding_pct", "sdlogj")]
        lines.append(f"| {m} | {sec_txt} | {dice} | " + " | ".join(cells) + f" | {ratio} |")
    lines += [
        "",
        "Mean ± population std over pairs. s/pair: registration wall time (network: whole `register` call); "
        "speed ratio = s/pair of ants_syn / s/pair of the method (> 1: faster than ANTs SyN). Error: mean "
        "|ddf - ddf_true| in mm in the fixed labels; folding % and SDlogJ in the fixed labels.",
    ]
    return "\n".join(lines) + "\n"


def _error_maps(path: Path, pair: Pair, ddfs: Mapping[str, torch.Tensor]) -> None:
    """Mid-axial slice of a pair: fixed image, then the displacement-error map (mm) of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed, mask = pair.fixed_image[0, 0].numpy(), (pair.fixed_label[0].amax(0) > 0.5).numpy()
    z, rot = fixed.shape[2] // 2, np.asarray(pair.fixed_affine)[:3, :3]
    fig, axes = plt.subplots(1, len(ddfs) + 1, figsize=(1.9 * (len(ddfs) + 1), 2.4), dpi=90)
    axes[0].imshow(np.rot90(fixed[:, :, z]), cmap="gray")
    axes[0].set_title("fixed", fontsize=8)
    im = None
    for ax, (name, ddf) in zip(axes[1:], ddfs.items()):
        diff = (ddf[0] - pair.true_ddf[0]).double().numpy()[:, :, :, z]
        err = np.sqrt((np.einsum("ij,j...->i...", rot, diff) ** 2).sum(0)) * mask[:, :, z]
        im = ax.imshow(np.rot90(err), cmap="magma", vmin=0, vmax=6)
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.tolist(), fraction=0.02, label="error (mm)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _write_csv(path: Path, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    flat = [
        {"pair": i, "method": m, **{k: v for k, v in r.items() if k != "pair"}}
        for m, rs in rows.items()
        for i, r in enumerate(rs)
    ]
    keys = list(dict.fromkeys(k for r in flat for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        for r in flat:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _shown(path: Any) -> str:
    """``path`` as written into results: relative to the working directory when inside it (no machine paths)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def compare_methods(
    pairs: str | os.PathLike,
    bundle: str | os.PathLike | None = None,
    methods: Sequence[str] = KNOWN_METHODS[:5],
    output: str | os.PathLike = "compare_results",
    device: str = "cpu",
    threads: int = 2,
    figure: bool = True,
    warmup: bool = True,
    names: Sequence[str] = ("gm", "wm"),
    metrics: Sequence[Metric] = (),
) -> dict[str, Any]:
    """Register every pair of ``pairs`` (JSON list of ``{moving, fixed, moving_label, fixed_label, ddf}`` relative to
    the file) with each method, score it against the true DDF (:func:`known_ddf_metrics`) and write
    ``results.{json,csv,md}`` (and ``error_maps.png``, pair 0, mid-axial slice) to ``output``.

    Args:
        pairs: the pairs JSON (a list, or ``{"pairs": [...]}``); moving and fixed on one grid.
        bundle: bundle folder for the ``network`` method.
        methods: among :data:`KNOWN_METHODS` (list or comma-separated string); peers whose package cannot be
            imported are skipped with a note.
        output: output folder (created).
        device: torch device of the network.
        threads: threads for torch, ITK/elastix, ANTs and greedy.
        figure: also write ``error_maps.png``.
        warmup: one untimed ``register`` call before timing the network.
        names: names of the label channels (Dice keys ``dice_<name>``).
        metrics: further metric plug-ins, after :func:`known_ddf_metrics`.

    Returns:
        The results written to ``results.json`` (``summary`` and ``pairs`` by method).

    Raises:
        ValueError: an unknown method, or ``network`` without a bundle.
    """
    env_threads, load_start = configure_threads(threads), _load_average()
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.strip("[]()").replace("'", "").replace('"', "").split(",") if m.strip()]
    unknown = [m for m in methods if m not in KNOWN_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {KNOWN_METHODS}.")
    if "network" in methods and bundle is None:
        raise ValueError("method 'network' needs --bundle.")
    models, load_seconds = {}, None
    if "network" in methods:
        from ..bundle import load_bundle

        start = time.perf_counter()
        models["network"] = load_bundle(bundle, device=device)
        load_seconds = time.perf_counter() - start
    run, skipped = select_methods([*methods, "true_ddf"], models, device)
    first: dict[str, Any] = {}

    def keep(set_name: str, pair: Pair, name: str, out: MethodOutput) -> None:
        if first.get("pair", pair) is pair:
            first.update(pair=pair, **{name: out.ddf})

    sets = evaluate_pair_files(
        {"pairs": pairs},
        run,
        [*known_ddf_metrics(names), *metrics],
        warmup=["network"] if warmup else [],
        on_output=keep,
    )
    res = sets["pairs"]
    out = Path(output)
    results = {
        "description": __doc__.split("\n\n", 1)[1].replace("\n", " "),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None,
        "pairs_file": _shown(pairs),
        "bundle": None if bundle is None else _shown(bundle),
        "methods": list(run),
        "skipped": skipped,
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "device": device,
            **env_threads,
            "versions": _versions(),
            "load_average_1_5_15min": {"start": load_start, "end": _load_average()},
            "bundle_load_seconds": load_seconds,
            "network_warmup": bool(warmup and models),
            "peers": {m: PEERS[m] for m in run if m in PEERS},
        },
        **res,
    }
    table = speed_table(res["summary"], names)
    write_results(out, results, table)
    _write_csv(out / "results.csv", res["pairs"])
    if figure and "pair" in first:
        pair = first.pop("pair")
        _error_maps(out / "error_maps.png", pair, first)
    print(table, flush=True)
    return results
