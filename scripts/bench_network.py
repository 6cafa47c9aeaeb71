"""Forward+backward time and peak memory of a RegistrationNet on this machine's CPU (or a GPU with --device cuda).

Each measurement runs in a fresh subprocess, so its peak resident set size (``ru_maxrss``) belongs to that one
configuration. Timing: median of ``--repeats`` forward+backward passes after ``--warmup`` untimed ones.

Example::

    python scripts/bench_network.py --size 64 --backbone localnet --method ddf --num-channel-initial 16
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(args: argparse.Namespace) -> dict:
    """Run the benchmark in this process and return its figures."""
    import torch

    from monai_reg_ext.networks import RegistrationNet

    torch.manual_seed(0)
    device = torch.device(args.device)
    size = (args.size,) * args.spatial_dims
    kwargs = {"num_channel_initial": args.num_channel_initial}
    if args.backbone == "localnet":
        kwargs["extract_levels"] = tuple(range(args.depth + 1))
    elif args.backbone in ("regunet", "globalnet"):
        kwargs["depth"] = args.depth
    elif args.backbone == "voxelmorph":
        kwargs = {}  # paper defaults
    net = RegistrationNet(
        args.backbone,
        args.method,
        spatial_dims=args.spatial_dims,
        image_size=size if args.backbone == "globalnet" else None,
        backbone_kwargs=kwargs,
    ).to(device)
    moving = torch.rand(args.batch, 1, *size, device=device)
    fixed = torch.rand(args.batch, 1, *size, device=device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)

    times = []
    for i in range(args.warmup + args.repeats):
        net.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = net(moving, fixed)
        loss = (out["pred_fixed_image"] - fixed).pow(2).mean() + out["ddf"].pow(2).mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {
        "backbone": args.backbone,
        "method": args.method,
        "config": net.config,
        "input": [args.batch, 1, *size],
        "params": sum(p.numel() for p in net.parameters()),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "times_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_passes_mib": round(rss_before, 1),
    }
    if device.type == "cuda":
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="localnet", choices=["localnet", "regunet", "globalnet", "voxelmorph"])
    parser.add_argument("--method", default="ddf", choices=["ddf", "dvf", "affine"])
    parser.add_argument("--spatial-dims", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="edge length of the cubic (square) input")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--num-channel-initial", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3, help="LocalNet: extract_levels = (0, ..., depth)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--in-process", action="store_true", help="measure in this process (used by the subprocess)")
    args = parser.parse_args(argv)
    if args.in_process:
        result = measure(args)
    else:
        cmd = [sys.executable, __file__, "--in-process", *(argv if argv is not None else sys.argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(done.returncode)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
