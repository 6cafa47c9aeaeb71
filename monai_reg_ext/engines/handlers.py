"""Ignite handlers for registration workflows (used beside MONAI's own StatsHandler, CheckpointSaver...)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointSaver

from .resume import RngState

__all__ = [
    "DatasetEpochHandler",
    "LossTermsHandler",
    "StopOnNonFiniteLoss",
    "AtomicCheckpointSaver",
    "attach_progress_bar",
]


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


class StopOnNonFiniteLoss:
    """Stop training with a clear error as soon as the loss is NaN or infinite, *before* the optimiser step.

    Attached to MONAI's ``IterationEvents.LOSS_COMPLETED`` (fired by ``SupervisedTrainer`` after the loss and before
    ``backward`` / ``optimizer.step``), so the weights keep their last finite values: a ``CheckpointSaver`` with
    ``save_final`` then writes those, never NaN weights. Ignite's ``TerminateOnNan`` runs after the step (the weights
    are already NaN) and lets the run "complete", which writes them.

    Args:
        loss_key: key of the loss in the trainer output dict.

    Raises:
        FloatingPointError: naming the epoch, the iteration and the loss value.
    """

    def __init__(self, loss_key: str = "loss") -> None:
        self.loss_key = loss_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        outputs = engine.state.output
        for out in outputs if isinstance(outputs, list) else [outputs]:
            loss = out.get(self.loss_key) if isinstance(out, dict) else None
            if loss is None:
                continue
            value = float(loss.detach().float().sum()) if hasattr(loss, "detach") else float(loss)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"training stopped: the loss is {value} at epoch {engine.state.epoch}, iteration "
                    f"{engine.state.iteration} (before the optimiser step: the weights are the last finite ones); "
                    "check the inputs for NaN/inf and lower the learning rate."
                )


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing every file atomically (temporary file, then ``os.replace``), with the RNG
    states in every checkpoint that holds a ``trainer``.

    MONAI builds its Ignite ``DiskSaver`` with ``atomic=False`` (for group/other read permission, which Ignite's
    atomic writer now restores itself), so a run killed while saving can leave a truncated ``model.pt`` or
    ``checkpoint_epoch=N.pt``. This subclass switches the savers to atomic writes. When ``save_dict`` has a
    ``trainer`` (a resumable checkpoint) and no ``rng``, an :class:`~monai_reg_ext.engines.resume.RngState` of the
    trainer's DataLoader is saved as ``rng``, which :class:`~monai_reg_ext.engines.resume.ResumeCheckpointLoader`
    restores. The arguments are ``CheckpointSaver``'s.
    """

    def __init__(self, save_dir: str, save_dict: dict, *args: Any, **kwargs: Any) -> None:
        save_dict = dict(save_dict)
        if "trainer" in save_dict and "rng" not in save_dict:
            save_dict["rng"] = RngState(getattr(save_dict["trainer"], "data_loader", None))
        super().__init__(save_dir, save_dict, *args, **kwargs)
        for ckpt in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ckpt is not None:
                ckpt.save_handler._atomic = True


def _loss_of(output: Any) -> dict[str, float]:
    """``{"loss": value}`` of an engine's iteration output (a dict with ``loss``, or a list of them), else ``{}``."""
    if isinstance(output, (list, tuple)) and output:
        output = output[0]
    loss = output.get("loss") if isinstance(output, dict) else None
    try:
        return {} if loss is None else {"loss": float(loss.detach()) if hasattr(loss, "detach") else float(loss)}
    except (TypeError, ValueError, RuntimeError):  # a non-scalar loss: shown by the StatsHandler, not here
        return {}


def attach_progress_bar(engine: Engine, desc: str | None = None, persist: bool = True, **tqdm_kwargs: Any) -> Any:
    """Attach Ignite's tqdm ``ProgressBar`` to ``engine``: iterations of the current epoch, and the iteration loss
    (the ``loss`` of the engine's output, as MONAI's ``SupervisedTrainer`` returns it) when there is one.

    Args:
        engine: an Ignite engine (e.g. a bundle's ``train#trainer`` or ``validate#evaluator``).
        desc: text before the bar (default: Ignite's ``Epoch [e/E]`` for a trainer).
        persist: keep each epoch's bar on screen after the epoch.
        tqdm_kwargs: further ``tqdm`` arguments (``file``, ``ncols``...).

    Returns:
        The attached ``ignite.handlers.ProgressBar``.
    """
    from ignite.handlers import ProgressBar

    kwargs = {"desc": desc} if desc is not None else {}
    bar = ProgressBar(persist=persist, **kwargs, **tqdm_kwargs)
    bar.attach(engine, output_transform=_loss_of)
    return bar
