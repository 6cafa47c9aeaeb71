"""Time ``monai_reg_ext.register`` on a bundle's pairs: network part and whole call with file I/O.

Usage::

    python scripts/benchmark_register.py --bundle bundles/unpaired_mr_brain \
        --pairs bundles/unpaired_mr_brain/data/test/pairs.json --repeats 5 --device cpu --output timing.json

Reports medians over repeats after one warm-up call, with the device (GPU name or CPU thread count).
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import fire
import torch

from monai_reg_ext.api import register
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.reporting import emit_report


def main(
    bundle: str, pairs: str, repeats: int = 5, device: str = "cpu", output: str | None = None, save: bool = True
) -> dict:
    """Time registration of every pair in ``pairs`` (JSON list with moving/fixed paths relative to the file).

    With ``save=False`` the whole-call time covers loading and registering but not writing the outputs.
    """
    pairs_path = Path(pairs)
    items = json.loads(pairs_path.read_text())
    items = items.get("pairs", items) if isinstance(items, dict) else items
    model = load_bundle(bundle, device=device)
    net_times, call_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(int(repeats) + 1):
            for i, item in enumerate(items):
                mov = pairs_path.parent / (item.get("moving") or item["moving_image"])
                fix = pairs_path.parent / (item.get("fixed") or item["fixed_image"])
                start = time.perf_counter()
                result = register(mov, fix, bundle=model, device=device)
                if save:
                    result.save(Path(tmp) / f"r{r}_p{i}", figure=False)
                elapsed = time.perf_counter() - start
                if r > 0:  # the first round is the warm-up
                    net_times.append(result.seconds)
                    call_times.append(elapsed)
    dev = torch.device(device)
    report = {
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or 'x86_64'})",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "spatial_size": list(model.spatial_size),
        "pairs": len(items),
        "repeats": int(repeats),
        "network_seconds_median": statistics.median(net_times),
        "register_call_seconds_median": statistics.median(call_times),
        "call_includes_writing_outputs": bool(save),
    }
    return emit_report(report, output)


if __name__ == "__main__":
    fire.Fire(main)
