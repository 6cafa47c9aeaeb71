"""Resumed training repeats the uninterrupted run: the checkpoint carries the RNG states (torch, numpy, Python
``random``, the DataLoader's generator, the random transforms of its dataset); a bad ``resume_from`` is one clear
error naming the file (docs/reliability.md, issue 20)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Lambda, RandGaussianNoised
from monai.utils import set_determinism

from monai_reg_ext.engines import RngState, create_trainer
from monai_reg_ext.losses import GradientNormLoss, RegistrationLoss, SumSquaredDifferenceLoss
from monai_reg_ext.networks import RegistrationNet
from tests.reliability import train_tiny

EPOCH_LENGTH = train_tiny.EPOCH_LENGTH


def _global_jitter(d: dict) -> dict:
    """Scale the fixed image by draws of the three global RNGs (torch, numpy, Python)."""
    s = 1.0 + 0.05 * float(torch.rand(())) + 0.05 * float(np.random.rand()) + 0.05 * random.random()
    return {**d, "fixed_image": d["fixed_image"] * s}


def _loader(seed: int, generator: bool = True) -> DataLoader:
    """Shuffled (by its own generator, else by torch's global RNG); a MONAI random transform (own ``R``) and the
    global RNGs in the transform."""
    transform = Compose([RandGaussianNoised(keys="moving_image", prob=1.0, std=0.05), Lambda(_global_jitter)])
    ds = Dataset(train_tiny.pairs(), transform=transform)
    gen = torch.Generator().manual_seed(seed) if generator else None
    return DataLoader(ds, batch_size=1, shuffle=True, num_workers=0, generator=gen)


def _train(output_dir, max_epochs: int, resume_from=None, seed: int = 0, generator: bool = True) -> dict[int, float]:
    set_determinism(seed=seed)
    net = RegistrationNet("localnet", "ddf", backbone_kwargs={"num_channel_initial": 2, "extract_levels": (0, 1)})
    loss = RegistrationLoss(SumSquaredDifferenceLoss(), None, GradientNormLoss(), weights=(1.0, 0.0, 0.01))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    trainer = create_trainer(
        net, loss, opt, _loader(seed, generator), max_epochs, output_dir=str(output_dir), resume_from=resume_from
    )
    losses: dict[int, float] = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.update({e.state.iteration: float(e.state.output["loss"].detach())})
    )
    trainer.run()
    set_determinism(seed=None)
    return losses


@pytest.mark.parametrize("generator", [True, False], ids=["loader_generator", "global_rng"])
def test_resumed_run_matches_uninterrupted(tmp_path, generator):
    full = _train(tmp_path / "full", 3, generator=generator)
    first = _train(tmp_path / "first", 2, generator=generator)
    assert sorted(full) == list(range(1, 3 * EPOCH_LENGTH + 1))
    for it, value in first.items():  # same seed, same first two epochs
        assert value == full[it], it
    ckpt = tmp_path / "first" / "checkpoint_epoch=2.pt"
    assert "rng" in torch.load(ckpt, weights_only=True)
    resumed = _train(tmp_path / "resumed", 3, resume_from=str(ckpt), generator=generator)
    assert sorted(resumed) == list(range(2 * EPOCH_LENGTH + 1, 3 * EPOCH_LENGTH + 1))
    for it, value in resumed.items():
        assert value == pytest.approx(full[it], rel=1e-6, abs=1e-9), (it, value, full[it])


def test_rng_state_round_trip_weights_only(tmp_path):
    loader = _loader(3)
    rng = RngState(loader)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    torch.save({"rng": rng.state_dict()}, tmp_path / "rng.pt")
    state = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]

    def draws():
        noise = loader.dataset.transform.transforms[0]
        return (
            float(torch.rand(())),
            float(np.random.rand()),
            random.random(),
            int(torch.randint(100, (), generator=loader.generator)),
            float(noise.rand_gaussian_noise.R.rand()),
        )

    expected = draws()
    draws()  # move every RNG on
    rng.load_state_dict(state)
    assert draws() == expected


def test_old_checkpoint_without_rng_resumes_with_a_warning(tmp_path):
    first = tmp_path / "first"
    _train(first, 1)
    ckpt = first / "checkpoint_epoch=1.pt"
    state = torch.load(ckpt, weights_only=True)
    del state["rng"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match=r"old\.pt.*no RNG state"):
        resumed = _train(tmp_path / "resumed", 2, resume_from=str(tmp_path / "old.pt"))
    assert sorted(resumed) == list(range(EPOCH_LENGTH + 1, 2 * EPOCH_LENGTH + 1))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "weights_only", "pickle", "directory"])
def test_create_trainer_bad_resume_from(kind, tmp_path):
    _train(tmp_path / "run", 1)
    good = tmp_path / "run" / "checkpoint_epoch=1.pt"
    bad = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "garbage":
        bad.write_bytes(b"\x00not a checkpoint" * 10)
    elif kind == "weights_only":
        bad = tmp_path / "run" / "model.pt"
    elif kind == "pickle":
        import pickle

        bad.write_bytes(pickle.dumps({"network": object()}))
    else:
        bad.mkdir()
    with pytest.raises((ValueError, IsADirectoryError)) as info:
        _train(tmp_path / "resumed", 2, resume_from=str(bad))
    message = str(info.value)
    assert str(bad) in message and "\n" not in message, message
    assert "resume_from" in message
    assert not (tmp_path / "resumed").exists() or not list((tmp_path / "resumed").glob("*.pt"))
