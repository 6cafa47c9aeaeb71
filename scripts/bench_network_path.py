"""Speed and accuracy of variants of a bundle network's CPU path, on the bundle's test pairs, side by side.

Variants (each a copy of the bundle network with its trained weights):

- ``im2col``: PyTorch's own choice of convolution (its heuristic sends most 3-D layers of the bundles to the im2col
  ``slow_conv3d``), i.e. the network before :mod:`monai_reg_ext.networks.onednn`;
- ``onednn_contiguous``: every 3-D convolution on oneDNN, inputs and weights in PyTorch's default (contiguous) layout;
- ``onednn``: every 3-D convolution on oneDNN with inputs and weights in ``torch.channels_last_3d`` (what
  :class:`~monai_reg_ext.networks.RegistrationNet` does now, :mod:`monai_reg_ext.networks.onednn`);
- ``compile`` (``--compile``): ``torch.compile`` (inductor, ``freezing``) of the oneDNN network; its first call
  (compilation) is timed apart.

For every pair and variant: the bare network call (``network_ddf``, as ``register`` calls the network, on the
pair's network inputs; a compiled network is called as ``network(moving, fixed)``) and the whole ``register`` call
(reading the files, the network, warping, scoring), interleaved (each round runs every variant on every pair, in
alternating order), medians after one warm-up round, with ``--threads`` torch threads; Dice per label of every
variant and its largest difference to ``im2col`` (the accuracy check: equal within 1e-4), and the largest DDF
difference.

``--coarse "[[48,64,48]]"`` also runs the trained network (as it is, not retrained) on coarser grids and reports the
mean Dice and the network part of ``register`` (``result.seconds``) per grid: what predicting the DDF at a coarser grid
and upsampling it would cost in accuracy without retraining.

Usage::

    nice -n 5 python scripts/bench_network_path.py --repeats 3 --output network_path.json
    nice -n 5 python scripts/bench_network_path.py --compile --variants "['onednn','compile']"
    nice -n 5 python scripts/bench_network_path.py --repeats 1 --coarse "[[48,64,48],[32,40,32]]"
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "bundles" / "unpaired_mr_brain"
VARIANTS = ("im2col", "onednn_contiguous", "onednn", "compile")


class ContiguousOneDNNConv3d(nn.Conv3d):
    """oneDNN on PyTorch's default layout (no channels-last), for the comparison."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        from monai_reg_ext.networks.onednn import onednn_usable

        if not onednn_usable(self, input):
            return self._conv_forward(input, self.weight, self.bias)
        args = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        return torch.ops.aten.mkldnn_convolution(input, self.weight, self.bias, *args)


def build_variant(name: str, network: nn.Module, example: tuple[torch.Tensor, torch.Tensor]) -> tuple[nn.Module, float]:
    """The variant ``name`` of ``network`` (a copy) and the seconds its preparation took (compilation)."""
    from monai_reg_ext.networks.onednn import use_onednn_convolutions

    net = copy.deepcopy(network).eval()
    start = time.perf_counter()
    if name == "im2col":
        use_onednn_convolutions(net, enabled=False)
    elif name == "onednn":
        use_onednn_convolutions(net)
    elif name == "onednn_contiguous":
        for sub in use_onednn_convolutions(net).modules():
            if isinstance(sub, nn.Conv3d):
                sub.__class__ = ContiguousOneDNNConv3d
    elif name == "compile":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # weights as constants: inductor folds them into oneDNN kernels
        net = torch.compile(use_onednn_convolutions(net))
        with torch.inference_mode():
            net(*example)  # the first call compiles
    else:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {name!r}.")
    return net, time.perf_counter() - start


def network_inputs(model: Any, moving: str, fixed: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two network inputs of a pair, as ``register`` makes them (min-max, resized to the network grid)."""
    from monai_reg_ext.api.register import prepare_inputs
    from monai_reg_ext.api.result import minmax
    from monai_reg_ext.spatial import resize_image

    pair = prepare_inputs(moving, fixed, len(model.spatial_size), None, None)

    def to_net(x: torch.Tensor) -> torch.Tensor:
        return resize_image(minmax(x.as_tensor()[:1])[None], model.spatial_size, anti_aliasing=model.anti_aliasing)

    return to_net(pair.moving_on_fixed), to_net(pair.fixed)


def _pairs(pairs_file: Path, max_pairs: int | None) -> list[dict[str, str]]:
    items = json.loads(pairs_file.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    keys = ("moving", "fixed", "moving_label", "fixed_label")
    return [{k: str(pairs_file.parent / it[k]) for k in keys if k in it} for it in items[: max_pairs or None]]


def _one_round(nets, model, pairs, inputs, record: bool, times, dice, ddfs, reverse: bool) -> None:
    from monai_reg_ext.api import register
    from monai_reg_ext.api.register import network_ddf
    from monai_reg_ext.bundle import BundleModel

    for i, p in enumerate(pairs):
        for name, net in list(nets.items())[:: -1 if reverse else 1]:  # alternate the order between rounds
            with torch.inference_mode():
                start = time.perf_counter()
                network_ddf(net, *inputs[i])
                bare = time.perf_counter() - start
            variant = BundleModel(network=net, spatial_size=model.spatial_size, anti_aliasing=model.anti_aliasing)
            start = time.perf_counter()
            res = register(p["moving"], p["fixed"], bundle=variant, device="cpu",
                           moving_label=p.get("moving_label"), fixed_label=p.get("fixed_label"))  # fmt: skip
            call = time.perf_counter() - start
            if record:
                times[name]["network"].append(bare)
                times[name]["register"].append(call)
            dice[name][i] = {k: v for k, v in res.metrics.items() if k.startswith("dice") and k.endswith("after")}
            ddfs[name][i] = res.ddf


def coarse_grids(model: Any, pairs: list[dict[str, str]], sizes: list[list[int]]) -> list[dict[str, Any]]:
    """Mean Dice (over labels and pairs) and median network seconds of ``register`` with the bundle network run on
    each grid of ``sizes`` (the trained grid first), without retraining."""
    from monai_reg_ext.api import register
    from monai_reg_ext.bundle import BundleModel

    rows = []
    for size in [list(model.spatial_size), *sizes]:
        variant = BundleModel(network=model.network, spatial_size=tuple(int(s) for s in size), anti_aliasing=False)
        dice, seconds = [], []
        for p in pairs:
            res = register(p["moving"], p["fixed"], bundle=variant, device="cpu",
                           moving_label=p.get("moving_label"), fixed_label=p.get("fixed_label"))  # fmt: skip
            dice += [v for k, v in res.metrics.items() if k.startswith("dice") and k.endswith("after")]
            seconds.append(res.seconds)
        rows.append({"grid": size, "mean_dice": statistics.mean(dice), "seconds_median": statistics.median(seconds)})
        print(f"grid {size}: mean Dice {rows[-1]['mean_dice']:.4f}, network part {rows[-1]['seconds_median']:.3f} s")
    return rows


def main(
    bundle: str = str(BUNDLE),
    pairs: str | None = None,
    variants: list[str] | str = VARIANTS[:3],
    compile: bool = False,
    repeats: int = 3,
    max_pairs: int | None = None,
    threads: int = 1,
    coarse: list[list[int]] | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Time and score the variants (module docstring); ``--compile`` adds ``compile`` to the variants; ``--coarse``
    adds the coarser-grid check."""
    from monai_reg_ext.bundle import load_bundle

    torch.set_num_threads(int(threads))
    names = [
        v.strip() for v in (variants.strip("[]").replace("'", "").split(",") if isinstance(variants, str) else variants)
    ]
    names += ["compile"] if compile and "compile" not in names else []
    names = ["im2col"] + [n for n in names if n != "im2col"]  # the reference for the accuracy check
    pairs_file = Path(pairs) if pairs else Path(bundle) / "data" / "test" / "pairs.json"
    items = _pairs(pairs_file, max_pairs)
    model = load_bundle(bundle, device="cpu")
    inputs = [network_inputs(model, p["moving"], p["fixed"]) for p in items]
    load_start = [round(v, 2) for v in os.getloadavg()]
    nets, prep = {}, {}
    for n in names:
        nets[n], prep[n] = build_variant(n, model.network, inputs[0])
    times = {n: {"network": [], "register": []} for n in names}
    dice: dict[str, dict[int, dict[str, float]]] = {n: {} for n in names}
    ddfs: dict[str, dict[int, torch.Tensor]] = {n: {} for n in names}
    for r in range(int(repeats) + 1):
        _one_round(nets, model, items, inputs, r > 0, times, dice, ddfs, reverse=bool(r % 2))
    rows = []
    base = times["im2col"]
    for n in names:
        d = max(abs(v - dice["im2col"][i][k]) for i in dice[n] for k, v in dice[n][i].items())
        ddf = max(float((ddfs[n][i] - ddfs["im2col"][i]).abs().max()) for i in ddfs[n])
        net_s, reg_s = statistics.median(times[n]["network"]), statistics.median(times[n]["register"])
        rows.append({
            "variant": n, "network_seconds_median": net_s, "register_seconds_median": reg_s,
            "network_speedup_vs_im2col": statistics.median(base["network"]) / net_s,
            "register_speedup_vs_im2col": statistics.median(base["register"]) / reg_s,
            "preparation_seconds": prep[n], "max_abs_dice_difference_vs_im2col": d,
            "max_abs_ddf_difference_vs_im2col_voxels": ddf,
        })  # fmt: skip
    report = {
        "command": " ".join(["python", "scripts/bench_network_path.py", *sys.argv[1:]]),
        "bundle": Path(bundle).name,
        "spatial_size": list(model.spatial_size),
        "pairs": len(items),
        "repeats": int(repeats),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_start": load_start,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "rows": rows,
        "dice": {n: dice[n] for n in names},
        "seconds": times,
    }
    print(f"{'variant':22s} {'network s':>9s} {'x':>6s} {'register s':>10s} {'x':>6s} {'prep s':>7s} {'max dDice':>9s}")
    for r in rows:
        print(
            f"{r['variant']:22s} {r['network_seconds_median']:9.3f} {r['network_speedup_vs_im2col']:6.2f} "
            f"{r['register_seconds_median']:10.3f} {r['register_speedup_vs_im2col']:6.2f} "
            f"{r['preparation_seconds']:7.1f} {r['max_abs_dice_difference_vs_im2col']:9.1e}"
        )
    if coarse:
        report["coarse_grids"] = coarse_grids(model, items, [list(map(int, c)) for c in coarse])
    print(f"load average start {report['load_average_start']}, end {report['load_average_end']}")
    if output:
        Path(output).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    import functools

    import fire

    @functools.wraps(main)
    def _cli(*args: Any, **kwargs: Any) -> None:  # main's signature for --help; the report is printed, not returned
        main(*args, **kwargs)

    fire.Fire(_cli)
