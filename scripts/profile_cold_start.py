"""Where the seconds of a cold ``monai-reg register`` go (issue 22): imports by package, and the steps of the command.

Runs ``monai-reg register`` of a bundle's example pair (as ``scripts/benchmark.py::cold_start`` does: ``--device cpu
--threads 1 --overwrite --quiet``) in fresh Python processes, twice:

1. under ``python -X importtime``: self import time summed by top-level package, and whether ITK's compiled modules
   were loaded (the lazy ``itk`` package itself is imported by MONAI, at no cost);
2. under ``cProfile``: cumulative seconds of the steps (imports, bundle config and weights, reading the pair, the
   network, resampling, scoring, writing each output).

Usage::

    OMP_NUM_THREADS=1 python scripts/profile_cold_start.py [--bundle bundles/unpaired_mr_brain] [--nofigure]

Prints a Markdown table of each; the numbers include the profilers' own overhead (cProfile adds ~10-20 %).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: steps of a register, as ``(label, cProfile function key: (file suffix, function name))``
STEPS = (
    ("load bundle (config parse, network build, weights)", ("monai_reg_ext/bundle.py", "load_bundle")),
    ("  parse config + build network", ("monai/bundle/config_parser.py", "get_parsed_content")),
    ("  torch.load weights", ("torch/serialization.py", "load")),
    ("read + check the pair", ("monai_reg_ext/api/register.py", "prepare_inputs")),
    ("network (resize, forward)", ("monai_reg_ext/api/register.py", "predict_network")),
    ("DDF to native grid + warp", ("monai_reg_ext/api/register.py", "to_native")),
    ("scores (Dice, Jacobian)", ("monai_reg_ext/api/register.py", "score")),
    ("write all outputs (save)", ("monai_reg_ext/api/result.py", "save")),
    ("  warped image (save_image)", ("monai_reg_ext/io/images.py", "save_image")),
    ("  DDF (save_ddf)", ("monai_reg_ext/io/ddf.py", "save_ddf")),
    ("  figure (registration.png)", ("monai_reg_ext/api/result.py", "_figure")),
)

CHILD = """
import cProfile, pstats, sys, time, json
t0 = time.perf_counter()
prof = cProfile.Profile()
prof.enable()
from monai_reg_ext.cli import main
main(sys.argv[2:])
prof.disable()
total = time.perf_counter() - t0
stats = pstats.Stats(prof).stats
itk = sorted(m for m in sys.modules if m.startswith("itk.") and m.endswith("Python"))
rows = {f"{k[0]}:{k[2]}": v[3] for k, v in stats.items()}
imports = sum(v[3] for k, v in stats.items() if k[2] == "_find_and_load" and k[0].startswith("<frozen"))
json.dump({"total": total, "cum": rows, "itk_modules": len(itk)}, open(sys.argv[1], "w"))
"""


def _command(bundle: Path, out: Path, figure: bool) -> list[str]:
    example = bundle / "data" / "example"
    args = ["register", str(example / "moving.nii.gz"), str(example / "fixed.nii.gz"), str(out), "--bundle",
            str(bundle), "--device", "cpu", "--threads", "1", "--overwrite", "--quiet"]  # fmt: skip
    return args + ([] if figure else ["--nofigure"])


def import_times(args: list[str], env: dict[str, str]) -> tuple[Counter, float, int]:
    """Self import seconds by top-level package, their total, and the number of ITK compiled modules loaded."""
    code = "import sys; from monai_reg_ext.cli import main; main(sys.argv[1:])"
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True,
                         env=env, cwd=ROOT)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"register failed:\n{res.stderr[-3000:]}")
    by_package: Counter = Counter()
    itk = 0
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            by_package[m[3].split(".")[0]] += int(m[1]) / 1e6
            itk += bool(re.fullmatch(r"itk\.\S*Python", m[3]))
    return by_package, sum(by_package.values()), itk


def step_times(args: list[str], env: dict[str, str]) -> dict:
    """cProfile of the command: ``{"total", "cum": {"file:function": cumulative s}, "itk_modules"}``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prof.json"
        res = subprocess.run([sys.executable, "-c", CHILD, str(out), *args], capture_output=True, text=True, env=env,
                             cwd=ROOT)  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"register failed:\n{res.stderr[-3000:]}")
        return json.loads(out.read_text())


def _cum(found: dict, file_suffix: str, name: str) -> float:
    return max((v for k, v in found["cum"].items() if k.endswith(f"{file_suffix}:{name}")), default=0.0)


def main() -> None:
    """Parse the options, profile, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=str(ROOT / "bundles" / "unpaired_mr_brain"))
    parser.add_argument("--nofigure", action="store_true", help="profile register --nofigure")
    parser.add_argument("--top", type=int, default=15, help="packages shown in the import table")
    opts = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        args = _command(Path(opts.bundle), Path(tmp) / "o", not opts.nofigure)
        by_package, total_imports, itk = import_times(args, env)
        found = step_times(args, env)
    print(f"`monai-reg {' '.join(args[:1])} <example pair> --bundle {opts.bundle} --device cpu --threads 1`\n")
    print("| package (self import time) | s |\n|---|---|")
    for name, sec in by_package.most_common(opts.top):
        print(f"| {name} | {sec:.2f} |")
    print(f"| **all imports** | **{total_imports:.2f}** |\n\nITK compiled modules loaded: {itk}\n")
    print(f"| step (cProfile, cumulative) | s |\n|---|---|\n| whole command | {found['total']:.2f} |")
    imports = _cum(found, "<frozen importlib._bootstrap>", "_find_and_load")
    print(f"| imports (all, wherever they happen) | {imports:.2f} |")
    for label, (file_suffix, name) in STEPS:
        print(f"| {label} | {_cum(found, file_suffix, name):.2f} |")


if __name__ == "__main__":
    main()
