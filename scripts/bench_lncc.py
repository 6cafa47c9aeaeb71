"""Forward+backward time of MONAI's LNCC loss vs ``FastLNCCLoss`` (same value) on this machine's CPU.

Each loss is timed as an optimiser uses it: the same fixed image at every call (so ``FastLNCCLoss`` reuses the fixed
image's window sums), gradient w.r.t. the warped moving image only. Timing: median of ``--repeats`` calls after
``--warmup`` untimed ones, on ``--threads`` intra-op threads.

Example::

    python scripts/bench_lncc.py --size 96 112 96 --kernel-size 7 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time


def time_loss(loss, pred, target, warmup: int, repeats: int) -> float:
    """Median seconds of ``loss(pred, target).backward()`` over ``repeats`` calls after ``warmup`` calls."""
    times = []
    for i in range(warmup + repeats):
        pred.grad = None
        start = time.perf_counter()
        loss(pred, target).backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print a Markdown table and return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[96, 112, 96], help="image shape (2 or 3 numbers)")
    parser.add_argument("--kernel-size", type=int, nargs="+", default=[7], help="window widths to time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    import torch
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from monai_reg_ext.losses.fast_lncc import FastLNCCLoss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ndim = len(args.size)
    target = torch.rand(1, 1, *args.size)
    pred = (0.5 * target + 0.5 * torch.rand(1, 1, *args.size)).requires_grad_(True)
    rows = []
    for k in args.kernel_size:
        losses = {
            "MONAI LocalNormalizedCrossCorrelationLoss": LocalNormalizedCrossCorrelationLoss(ndim, kernel_size=k),
            "FastLNCCLoss (cached target)": FastLNCCLoss(ndim, kernel_size=k),
            "FastLNCCLoss (cache_target=False)": FastLNCCLoss(ndim, kernel_size=k, cache_target=False),
        }
        with torch.no_grad():
            reference = next(iter(losses.values()))(pred, target).item()
        for name, loss in losses.items():
            seconds = time_loss(loss, pred, target, args.warmup, args.repeats)
            with torch.no_grad():
                value = loss(pred, target).item()
            rows.append(
                {"loss": name, "kernel": k, "ms": 1e3 * seconds, "rel_diff": abs(value - reference) / abs(reference)}
            )
    shape = "x".join(str(s) for s in args.size)
    print(f"LNCC forward+backward, {shape} float32, {args.threads} thread(s), median of {args.repeats}\n")
    print("| loss | kernel | ms | speed-up | rel. diff. of value |\n|---|---|---|---|---|")
    for row in rows:
        base = next(r["ms"] for r in rows if r["kernel"] == row["kernel"])
        print(
            f"| {row['loss']} | {row['kernel']} | {row['ms']:.1f} | {base / row['ms']:.2f}x | {row['rel_diff']:.1e} |"
        )
    return rows


if __name__ == "__main__":
    main()
