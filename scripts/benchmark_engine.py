"""Per-iteration time of monai-reg's Ignite training engine versus a bare PyTorch loop doing the same work.

Both run the same network, loss, optimiser and in-memory batches; blocks of iterations are interleaved
(engine, bare, engine, bare, ...) so that load changes on a shared machine hit both alike. Reports medians.

Usage::

    python scripts/benchmark_engine.py --size 48 --iterations 10 --rounds 3 --output engine_overhead.json
"""

from __future__ import annotations

import statistics
import time

import fire
import torch
from ignite.engine import Events
from monai.data import DataLoader

from monai_reg_ext.engines import create_trainer, prepare_registration_batch
from monai_reg_ext.losses import GradientNormLoss, LocalNormalizedCrossCorrelationLoss, RegistrationLoss
from monai_reg_ext.networks import RegistrationNet
from monai_reg_ext.reporting import emit_report


def _setup(size: int, seed: int = 0):
    torch.manual_seed(seed)
    net = RegistrationNet("localnet", "ddf", backbone_kwargs={"num_channel_initial": 8, "extract_levels": (0, 1, 2, 3)})
    loss = RegistrationLoss(
        LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7), None, GradientNormLoss(), (1.0, 0.0, 0.1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    data = [
        {
            "moving_image": torch.rand(1, size, size, size, generator=g),
            "fixed_image": torch.rand(1, size, size, size, generator=g),
        }
        for _ in range(4)
    ]
    return net, loss, opt, data


def _bare_loop(net, loss, opt, loader, iterations: int) -> list[float]:
    times = []
    net.train()
    while len(times) < iterations:
        for batch in loader:
            start = time.perf_counter()
            moving, targets, args, kwargs = prepare_registration_batch(batch)
            opt.zero_grad(set_to_none=True)
            value = loss(net(moving, *args, **kwargs), targets)
            value.backward()
            opt.step()
            times.append(time.perf_counter() - start)
            if len(times) == iterations:
                break
    return times


def _engine(net, loss, opt, loader, iterations: int) -> list[float]:
    trainer = create_trainer(net, loss, opt, loader, max_epochs=iterations // len(loader) + 1, log_interval=10**9)
    times: list[float] = []
    state = {}
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: state.__setitem__("t", time.perf_counter()))

    def _stop(engine):
        times.append(time.perf_counter() - state["t"])
        if len(times) >= iterations:
            engine.terminate()

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _stop)
    trainer.run()
    return times


def main(size: int = 48, iterations: int = 10, rounds: int = 3, threads: int = 2, output: str | None = None) -> dict:
    """Interleave ``rounds`` blocks of ``iterations`` training iterations of each runner; report medians (s)."""
    torch.set_num_threads(int(threads))
    net, loss, opt, data = _setup(size)
    loader = DataLoader(data, batch_size=1, num_workers=0)
    _bare_loop(net, loss, opt, loader, 2)  # warm-up
    engine_t, bare_t = [], []
    for _ in range(int(rounds)):
        engine_t += _engine(net, loss, opt, loader, iterations)
        bare_t += _bare_loop(net, loss, opt, loader, iterations)
    med_e, med_b = statistics.median(engine_t), statistics.median(bare_t)
    report = {
        "size": [size] * 3,
        "threads": int(threads),
        "iterations_per_runner": len(engine_t),
        "engine_seconds_per_iteration_median": med_e,
        "bare_loop_seconds_per_iteration_median": med_b,
        "overhead_ratio": med_e / med_b,
        "torch": torch.__version__,
    }
    return emit_report(report, output)


if __name__ == "__main__":
    fire.Fire(main)
