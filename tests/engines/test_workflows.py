from __future__ import annotations

import os

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.handlers import IgniteMetricHandler

from monai_reg_ext.engines import create_evaluator, create_trainer, prepare_registration_batch
from monai_reg_ext.losses import GradientNormLoss, RegistrationLoss, SumSquaredDifferenceLoss
from monai_reg_ext.metrics import RegistrationDiceMetric, registration_output_transform
from monai_reg_ext.networks import RegistrationNet


def blob(center, size=16, radius=4.0):
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    d2 = sum((grid[k] - c) ** 2 for k, c in enumerate(center))
    return torch.exp(-d2 / (2 * radius**2))[None]


def pairs(n=2):
    items = []
    for i in range(n):
        mov, fix = blob((7 + i, 8, 8)), blob((9, 8 - i, 8))
        items.append(
            {
                "moving_image": mov,
                "fixed_image": fix,
                "moving_label": (mov > 0.5).float(),
                "fixed_label": (fix > 0.5).float(),
            }
        )
    return items


def make(seed=0):
    torch.manual_seed(seed)
    net = RegistrationNet("localnet", "ddf", backbone_kwargs={"num_channel_initial": 4, "extract_levels": (0, 1, 2)})
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), None, GradientNormLoss(), weights=(1.0, 0.0, 0.01))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    return net, loss, opt


def test_prepare_batch_splits_keys():
    batch = {k: v[None] for k, v in pairs(1)[0].items()}
    inputs, targets, args, kwargs = prepare_registration_batch(batch)
    assert inputs.shape == (1, 1, 16, 16, 16) and args[0].shape == inputs.shape
    assert set(targets) == {"fixed_image", "moving_image", "fixed_label"} and set(kwargs) == {"moving_label"}


def test_loss_falls_and_checkpoints(tmp_path):
    net, loss, opt = make()
    loader = DataLoader(pairs(), batch_size=2)
    losses = []
    trainer = create_trainer(net, loss, opt, loader, max_epochs=15, output_dir=str(tmp_path), progress_bar=True)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    trainer.run()
    assert losses[-1] < 0.5 * losses[0], losses
    assert "loss_image" in trainer.state.metrics and "loss_regulariser" in trainer.state.metrics
    assert os.path.isfile(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(net.state_dict())


def test_resume_continues_from_saved_iteration(tmp_path):
    net, loss, opt = make()
    loader = DataLoader(pairs(), batch_size=1)
    create_trainer(net, loss, opt, loader, max_epochs=2, output_dir=str(tmp_path / "a")).run()
    ckpt = sorted((tmp_path / "a").glob("checkpoint_epoch=2.pt"))
    assert ckpt, list((tmp_path / "a").iterdir())
    net2, loss2, opt2 = make(seed=1)
    seen = []
    trainer = create_trainer(
        net2, loss2, opt2, loader, max_epochs=3, output_dir=str(tmp_path / "b"), resume_from=str(ckpt[0])
    )
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append(e.state.iteration))
    trainer.run()
    assert seen == [5, 6]  # epoch 3 = iterations 5 and 6 of one-pair batches
    assert trainer.state.epoch == 3
    assert opt2.state_dict()["state"], "the optimizer state was restored"


def test_evaluator_reports_dice(tmp_path):
    net, loss, opt = make()
    loader = DataLoader(pairs(), batch_size=1)
    dice = IgniteMetricHandler(
        metric_fn=RegistrationDiceMetric(),
        output_transform=registration_output_transform("pred_fixed_label", "fixed_label"),
    )
    evaluator = create_evaluator(net, loader, {"val_dice": dice}, output_dir=str(tmp_path))
    trainer = create_trainer(net, loss, opt, loader, max_epochs=2, evaluator=evaluator, val_interval=1)
    trainer.run()
    assert 0.0 < evaluator.state.metrics["val_dice"] <= 1.0
    assert (tmp_path / "best_model.pt").is_file()


def test_early_stopping_and_lr_schedule(tmp_path):
    net, loss, opt = make()
    loader = DataLoader(pairs(), batch_size=1)
    dice = IgniteMetricHandler(
        metric_fn=RegistrationDiceMetric(),
        output_transform=registration_output_transform("pred_fixed_label", "fixed_label"),
    )
    evaluator = create_evaluator(net, loader, {"val_dice": dice})
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trainer = create_trainer(
        net, loss, opt, loader, max_epochs=50, evaluator=evaluator, early_stop_patience=1, lr_scheduler=sched
    )
    trainer.run()
    assert trainer.state.epoch < 50  # the key metric stops improving long before 50 epochs at a halving lr
    assert opt.param_groups[0]["lr"] < 1e-2 * 0.5 ** (trainer.state.epoch - 1) * 1.01
