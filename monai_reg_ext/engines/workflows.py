"""Registration training and evaluation on MONAI's Ignite workflows (``SupervisedTrainer`` / ``SupervisedEvaluator``).

Bundles wire the same pieces in JSON; :func:`create_trainer` / :func:`create_evaluator` do it from Python.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (
    EarlyStopHandler,
    LrScheduleHandler,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
)
from monai.inferers import SimpleInferer
from torch.utils.data import DataLoader

from .batch import prepare_registration_batch
from .handlers import AtomicCheckpointSaver, DatasetEpochHandler, LossTermsHandler, StopOnNonFiniteLoss
from .resume import FreshLoaderEachEpoch, ResumeCheckpointLoader, check_resume_checkpoint

__all__ = ["create_trainer", "create_evaluator"]


def _loss_value(output: Any) -> float:
    """The scalar loss of a trainer output (a dict, or a list of per-sample dicts)."""
    out = output[0] if isinstance(output, list) else output
    return float(out["loss"].detach()) if hasattr(out["loss"], "detach") else float(out["loss"])


def create_evaluator(
    network: torch.nn.Module,
    val_loader: DataLoader,
    metrics: Mapping[str, Metric],
    key_metric: str | None = None,
    device: str | torch.device = "cpu",
    output_dir: str | None = None,
    save_best: bool = True,
) -> SupervisedEvaluator:
    """Build a ``SupervisedEvaluator`` that runs the registration network on validation pairs.

    Args:
        network: a registration network returning a dict (``RegistrationNet``).
        val_loader: yields batch dicts (see :func:`prepare_registration_batch`).
        metrics: Ignite metrics on the evaluator output ``{"pred": {...}, "label": {...}}``; the first one (or
            ``key_metric``) is the key metric, where higher is better.
        key_metric: name of the key metric in ``metrics``.
        device: where to run.
        output_dir: where ``best_model.pt`` (network weights at the best key metric) is written when ``save_best``.
        save_best: keep the weights of the best validation epoch.
    """
    if not metrics:
        raise ValueError("create_evaluator: at least one metric is needed (the key metric).")
    key = key_metric or next(iter(metrics))
    if key not in metrics:
        raise ValueError(f"create_evaluator: key_metric {key!r} is not one of {sorted(metrics)}.")
    handlers: list[Any] = [StatsHandler(iteration_log=False, output_transform=lambda x: None)]
    if output_dir is not None:
        handlers.append(
            TensorBoardStatsHandler(log_dir=output_dir, iteration_log=False, output_transform=lambda x: None)
        )
        if save_best:
            handlers.append(
                AtomicCheckpointSaver(
                    save_dir=output_dir,
                    save_dict={"network": network},
                    save_key_metric=True,
                    key_metric_filename="best_model.pt",
                )
            )
    return SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=val_loader,
        network=network,
        inferer=SimpleInferer(),
        prepare_batch=prepare_registration_batch,
        key_val_metric={key: metrics[key]},
        additional_metrics={k: v for k, v in metrics.items() if k != key} or None,
        val_handlers=handlers,
        decollate=False,
    )


def create_trainer(
    network: torch.nn.Module,
    loss_function: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    max_epochs: int,
    device: str | torch.device = "cpu",
    output_dir: str | None = None,
    evaluator: SupervisedEvaluator | None = None,
    val_interval: int = 1,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    early_stop_patience: int | None = None,
    checkpoint_interval: int = 1,
    resume_from: str | None = None,
    log_interval: int = 10,
    amp: bool = False,
    progress_bar: bool = False,
) -> SupervisedTrainer:
    """Build a ``SupervisedTrainer`` for registration with the usual handlers.

    Handlers: a NaN/inf loss stops training with ``FloatingPointError`` before the optimiser step
    (:class:`StopOnNonFiniteLoss`), per-epoch dataset reseeding (staged sampling), loss terms, stats every
    ``log_interval`` iterations, TensorBoard and checkpoints in ``output_dir`` (``checkpoint_epoch=N.pt`` with network,
    optimizer and trainer state for resuming, and ``model.pt`` with the final network weights; written atomically by
    :class:`AtomicCheckpointSaver`), validation every ``val_interval`` epochs, an LR scheduler stepped per epoch, and
    early stopping on the evaluator's key metric after ``early_stop_patience``
    validations without improvement.

    Args:
        network: registration network (dict output).
        loss_function: ``RegistrationLoss``-like module called as ``loss(pred_dict, targets_dict)``.
        optimizer: optimiser over ``network`` parameters.
        train_loader: yields training batch dicts.
        max_epochs: number of epochs to train (in total, counting resumed ones).
        device: where to train.
        output_dir: folder for logs and checkpoints (created); None disables them.
        evaluator: validation evaluator (see :func:`create_evaluator`).
        val_interval: validate every this many epochs.
        lr_scheduler: stepped at each epoch end.
        early_stop_patience: stop when the key metric has not improved for this many validations.
        checkpoint_interval: save a resumable checkpoint every this many epochs.
        resume_from: a checkpoint written by this trainer: network, optimizer, iteration and the RNG states
            (:class:`~monai_reg_ext.engines.resume.RngState`) are restored, so the run continues as if it had not
            stopped.
        log_interval: log the loss every this many iterations.
        amp: automatic mixed precision (GPU).
        progress_bar: show an Ignite progress bar with the running loss.

    Raises:
        FileNotFoundError / ValueError: a ``resume_from`` that is missing, truncated, corrupt, pickled or not a
            training checkpoint (one line naming the file, before anything is built or written).
    """
    # checked first: a bad checkpoint is one clear error before any folder is made (the file is read again on STARTED)
    resume_keys = None if resume_from is None else check_resume_checkpoint(resume_from)
    handlers: list[Any] = [
        StopOnNonFiniteLoss(),
        FreshLoaderEachEpoch(),
        DatasetEpochHandler(train_loader),
        LossTermsHandler(),
        StatsHandler(
            tag_name="train_loss",
            output_transform=_loss_value,
            iteration_print_logger=None,
            epoch_log=True,
            iteration_log=lambda engine, event: engine.state.iteration % max(int(log_interval), 1) == 0,
        ),
    ]
    if lr_scheduler is not None:
        handlers.append(LrScheduleHandler(lr_scheduler=lr_scheduler, print_lr=False))
    if evaluator is not None:
        handlers.append(ValidationHandler(validator=evaluator, interval=int(val_interval), epoch_level=True))
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(
            TensorBoardStatsHandler(log_dir=output_dir, tag_name="train_loss", output_transform=_loss_value)
        )
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=int(max_epochs),
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function,
        inferer=SimpleInferer(),
        prepare_batch=prepare_registration_batch,
        train_handlers=handlers,
        amp=amp,
        decollate=False,
    )
    if output_dir is not None:
        AtomicCheckpointSaver(
            save_dir=output_dir,
            save_dict={"network": network, "optimizer": optimizer, "trainer": trainer},
            save_interval=int(checkpoint_interval),
            epoch_level=True,
            n_saved=2,
        ).attach(trainer)
        AtomicCheckpointSaver(
            save_dir=output_dir, save_dict={"network": network}, save_final=True, final_filename="model.pt"
        ).attach(trainer)
    if progress_bar:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(trainer, output_transform=lambda out: {"loss": _loss_value(out)})
    if evaluator is not None and early_stop_patience:
        EarlyStopHandler(
            patience=int(early_stop_patience),
            score_function=lambda engine: engine.state.metrics[engine.state.key_metric_name],
            trainer=trainer,
            epoch_level=True,
        ).attach(evaluator)
    if resume_from is not None:
        ResumeCheckpointLoader(
            load_path=resume_from,
            load_dict={"network": network, "optimizer": optimizer, "trainer": trainer},
            keys=resume_keys,
            map_location=torch.device(device),
        ).attach(trainer)
    return trainer
