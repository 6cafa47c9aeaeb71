"""Where the seconds of ``register`` (with a bundle) and ``monai-reg predict`` go, step by step, in a warm process.

Each named step of :mod:`monai_reg_ext.api.register` (and the file writers of :class:`RegistrationResult`) is wrapped
by a timer: ``prepare_inputs`` (reading and checking the files), ``predict_network`` (min-max, resize to the network
grid, the network), within it the network call and, for a ``RegistrationNet``, its backbone, the velocity integration
and its internal warp, ``to_native`` (DDF resized to the fixed grid, moving image warped), ``score`` (labels warped,
Dice, folding), and in ``save`` the NIfTI files, ``metrics.csv`` and the PNG. Times are inclusive (a step's time holds
its sub-steps'); per pair, median over ``repeats`` rounds after one warm-up round, pairs interleaved within a round.

Usage (1 thread, the machine is shared)::

    nice -n 5 python scripts/profile_network_path.py --repeats 3 --output profile.json
    PYTHONPATH=/path/to/old/checkout nice -n 5 python scripts/profile_network_path.py   # the same on older code

``--predict`` also times ``monai-reg predict`` (``monai_reg_ext.cli.predict``) on the pairs file, in the same process
(warm), as seconds per pair.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import fire
import torch

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"


class StepTimer:
    """Wraps attributes of modules or objects so that each call adds its wall time to ``seconds[label]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        if not hasattr(owner, name):
            return
        original = getattr(owner, name)
        label = label or name

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        out = dict(self.seconds)
        self.seconds.clear()
        return out

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def instrument(timer: StepTimer, model: Any) -> None:
    """Wrap the named steps of ``register`` and the writers of its result (whichever exist in this version)."""
    import importlib

    # ``monai_reg_ext.api.register`` is also the function's name in the package: import the modules by name
    names = ("api.register", "api.result", "io", "networks.registration")
    reg, res, mio, netmod = (importlib.import_module(f"monai_reg_ext.{m}") for m in names)

    for name in ("prepare_inputs", "predict_network", "to_native", "score", "resize_image", "check_world_overlap"):
        timer.wrap(reg, name)
    timer.wrap(res.RegistrationResult, "save", "save (all files)")
    timer.wrap(res.RegistrationResult, "_figure", "save: registration.png")
    timer.wrap(mio, "save_image", "save: NIfTI images")
    timer.wrap(mio, "save_ddf", "save: ddf.nii.gz")
    timer.wrap(netmod, "dvf_to_ddf", "network: integrate (dvf_to_ddf)")
    timer.wrap(netmod, "integrate_velocity", "network: integrate (integrate_velocity)")
    timer.wrap(netmod, "warp_image", "network: warp at network grid")
    net = model.network
    timer.wrap(net, "forward", "network (whole call)")
    if hasattr(net, "backbone"):
        timer.wrap(net.backbone, "forward", "network: backbone")


def _pairs(pairs_file: Path, max_pairs: int | None) -> list[dict[str, str]]:
    items = json.loads(pairs_file.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    out = []
    for it in items[: max_pairs or None]:
        keys = [k for k in ("moving", "fixed", "moving_label", "fixed_label") if k in it]
        out.append({k: str(pairs_file.parent / it[k]) for k in keys})
    return out


def _median_table(rounds: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for r in rounds for k in r))
    return {k: statistics.median(r.get(k, 0.0) for r in rounds) for k in keys}


def profile_register(model: Any, pairs: list[dict[str, str]], repeats: int, figure: bool) -> dict[str, Any]:
    """Per-pair step times of ``register(...) + result.save(...)`` (medians over rounds and pairs)."""
    from monai_reg_ext.api import register

    timer = StepTimer()
    instrument(timer, model)
    rows: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(int(repeats) + 1):
                for i, p in enumerate(pairs):
                    timer.take()
                    start = time.perf_counter()
                    result = register(p["moving"], p["fixed"], bundle=model, device="cpu",
                                      moving_label=p.get("moving_label"), fixed_label=p.get("fixed_label"))  # fmt: skip
                    mid = time.perf_counter()
                    result.save(Path(tmp) / f"r{r}_{i}", figure=figure)
                    end = time.perf_counter()
                    steps = timer.take()
                    steps.update({"register() call": mid - start, "register() + save": end - start})
                    if r > 0:
                        rows.append(steps)
    finally:
        timer.restore()
    return {"steps_seconds_median": _median_table(rows), "n": len(rows), "figure": bool(figure)}


def profile_predict(bundle: Path, pairs_file: Path, repeats: int) -> dict[str, Any]:
    """Seconds per pair of ``monai_reg_ext.cli.predict`` on the whole pairs file in this (warm) process."""
    import contextlib
    import io

    from monai_reg_ext import cli

    n = len(_pairs(pairs_file, None))
    per_pair = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(int(repeats) + 1):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                cli.predict(str(bundle), str(pairs_file), str(Path(tmp) / f"r{r}"), device="cpu")
            if r > 0:
                per_pair.append((time.perf_counter() - start) / n)
    return {"seconds_per_pair_median": statistics.median(per_pair), "seconds_per_pair": per_pair, "pairs": n}


def main(
    bundle: str = str(BUNDLE),
    pairs: str | None = None,
    repeats: int = 3,
    max_pairs: int | None = None,
    threads: int = 1,
    figure: bool = True,
    predict: bool = False,
    output: str | None = None,
) -> dict[str, Any]:
    """Profile ``register`` (and with ``--predict`` the ``predict`` command) on a bundle's test pairs."""
    import monai_reg_ext
    from monai_reg_ext.bundle import load_bundle

    torch.set_num_threads(int(threads))
    pairs_file = Path(pairs) if pairs else Path(bundle) / "data" / "test" / "pairs.json"
    model = load_bundle(bundle, device="cpu")
    report: dict[str, Any] = {
        "command": " ".join(["python", "scripts/profile_network_path.py", *sys.argv[1:]]),
        "package": str(Path(monai_reg_ext.__file__).parent),
        "threads": torch.get_num_threads(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
        "register": profile_register(model, _pairs(pairs_file, max_pairs), repeats, figure),
    }
    if predict:
        report["predict"] = profile_predict(Path(bundle), pairs_file, repeats)
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    for k, v in report["register"]["steps_seconds_median"].items():
        print(f"{k:42s} {v:7.3f} s")
    if predict:
        print(f"{'predict, per pair (warm process)':42s} {report['predict']['seconds_per_pair_median']:7.3f} s")
    print(f"load average start {report['load_average_start']}, end {report['load_average_end']}")
    if output:
        Path(output).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":

    @functools.wraps(main)
    def _cli(*args: Any, **kwargs: Any) -> None:  # main's signature for --help; the report is printed, not returned
        main(*args, **kwargs)

    fire.Fire(_cli)
