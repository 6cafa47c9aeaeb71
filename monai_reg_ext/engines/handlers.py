"""Ignite handlers for registration workflows (used beside MONAI's own StatsHandler, CheckpointSaver...)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ignite.engine import Engine, Events

__all__ = ["DatasetEpochHandler", "LossTermsHandler"]


class DatasetEpochHandler:
    """Call ``dataset.set_epoch(epoch)`` (and the sampler's) at each epoch start, so staged random sampling
    draws new pairs every epoch, reproducibly for a given seed (and consistently across torch.distributed ranks).

    Args:
        dataset: an object with ``set_epoch(int)`` (e.g. ``UnpairedDataset``), or a DataLoader whose ``dataset``
            and ``sampler`` are checked for ``set_epoch``.
    """

    def __init__(self, dataset: Any) -> None:
        self.targets = [dataset]
        for attr in ("dataset", "sampler"):
            if hasattr(dataset, attr):
                self.targets.append(getattr(dataset, attr))
        self.targets = [t for t in self.targets if callable(getattr(t, "set_epoch", None))]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        for target in self.targets:
            target.set_epoch(engine.state.epoch - 1)  # Ignite counts epochs from 1


class LossTermsHandler:
    """Average the loss terms that ``RegistrationLoss`` stores in ``output["pred"]["loss_terms"]`` over an epoch and
    publish them as ``engine.state.metrics["loss_<term>"]`` (so StatsHandler and TensorBoard log them).
    """

    def __init__(self, prefix: str = "loss_") -> None:
        self.prefix = prefix
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _reset(self, engine: Engine) -> None:
        self._sums.clear()
        self._count = 0

    def _accumulate(self, engine: Engine) -> None:
        outputs = engine.state.output
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for out in outputs:
            pred = out.get("pred") if isinstance(out, dict) else None
            terms = pred.get("loss_terms") if isinstance(pred, dict) else None
            if not terms:
                continue
            for name, value in terms.items():
                self._sums[name] += float(value)
            self._count += 1

    def _publish(self, engine: Engine) -> None:
        for name, total in self._sums.items():
            engine.state.metrics[f"{self.prefix}{name}"] = total / max(self._count, 1)
