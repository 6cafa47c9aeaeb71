"""Interrupted training (SIGKILL then resume), atomic checkpoints, NaN losses and determinism on CPU."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Events

from monai_reg_ext.data import UnpairedDataset
from monai_reg_ext.engines import AtomicCheckpointSaver
from tests.data.test_fixtures import make_unpaired
from tests.reliability import train_tiny

ROOT = Path(__file__).resolve().parents[2]


def _losses(path: Path) -> dict[int, float]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return {int(i): float(v) for i, v in rows}


def test_sigkill_mid_epoch_then_resume(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(Path(train_tiny.__file__)), str(out)], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 90
        # wait until the first checkpoint exists and the run is inside a later epoch (not at its boundary)
        while time.time() < deadline:
            done = _losses(out / "losses.txt") if (out / "losses.txt").exists() else {}
            ckpts = list(out.glob("checkpoint_epoch=*.pt"))
            if ckpts and done and max(done) % train_tiny.EPOCH_LENGTH == 2:
                break
            assert proc.poll() is None, "the training run ended early"
            time.sleep(0.01)
        else:
            pytest.fail("no checkpoint within 90 s")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before = _losses(out / "losses.txt")
    assert max(before) % train_tiny.EPOCH_LENGTH != 0, "killed at an epoch boundary"
    ckpt = max(out.glob("checkpoint_epoch=*.pt"), key=lambda p: int(p.stem.split("=")[1]))
    saved = torch.load(ckpt, weights_only=True)
    saved_iter = int(saved["trainer"]["iteration"])
    assert saved_iter == int(ckpt.stem.split("=")[1]) * train_tiny.EPOCH_LENGTH
    assert max(before) > saved_iter  # killed after the checkpoint, mid-epoch
    assert not list(out.glob("tmp*")) or all(p.stat().st_size >= 0 for p in out.glob("tmp*"))

    net, opt, trainer = train_tiny.build(
        str(tmp_path / "resumed"), max_epochs=saved_iter // 4 + 2, resume_from=str(ckpt)
    )
    seen, losses, restored = [], {}, {}

    @trainer.on(Events.STARTED)  # after CheckpointLoader (attached first, on STARTED)
    def _restored(engine):
        restored["opt"] = copy.deepcopy(opt.state_dict())
        restored["iteration"] = engine.state.iteration
        restored["params"] = {k: v.clone() for k, v in net.state_dict().items()}

    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append(e.state.iteration))
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.update({e.state.iteration: float(e.state.output["loss"].detach())})
    )
    trainer.run()
    # continues at the saved iteration, with the saved weights and optimizer state (Adam step and moments)
    assert restored["iteration"] == saved_iter and seen[0] == saved_iter + 1
    for k, v in saved["network"].items():
        assert torch.equal(restored["params"][k], v), k
    for idx, state in saved["optimizer"]["state"].items():
        got = restored["opt"]["state"][idx]
        assert float(got["step"]) == float(state["step"]) == saved_iter
        assert torch.equal(got["exp_avg"], state["exp_avg"]) and torch.equal(got["exp_avg_sq"], state["exp_avg_sq"])
    # the loss curve continues: the resumed run repeats the killed run's iterations after the checkpoint
    for it in range(saved_iter + 1, max(before) + 1):
        assert losses[it] == pytest.approx(before[it], rel=1e-4, abs=1e-7), it
    assert losses[saved_iter + 1] < 0.8 * before[1]  # not back at the start


def _savers(trainer) -> list:
    found = []
    for handlers in trainer._event_handlers.values():
        for h, _, _ in handlers:
            owner = getattr(h, "__self__", None)
            if owner is not None and type(owner).__name__.endswith("CheckpointSaver") and owner not in found:
                found.append(owner)
    return found


def test_checkpoints_are_atomic(tmp_path, monkeypatch):
    _, _, trainer = train_tiny.build(str(tmp_path), max_epochs=1)
    savers = _savers(trainer)
    assert len(savers) == 2 and all(isinstance(s, AtomicCheckpointSaver) for s in savers)
    for s in savers:
        for ckpt in (s._final_checkpoint, s._interval_checkpoint, s._key_metric_checkpoint):
            assert ckpt is None or ckpt.save_handler._atomic is True
    trainer.run()
    good = (tmp_path / "model.pt").read_bytes()
    # a crash while writing (simulated: half the bytes, then an error) leaves the previous model.pt intact
    real_save = torch.save

    def crash(obj, f, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crash)
    _, _, trainer = train_tiny.build(str(tmp_path), max_epochs=1)
    with pytest.raises(OSError, match="simulated crash"):
        trainer.run()
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "model.pt").read_bytes() == good
    torch.load(tmp_path / "model.pt", weights_only=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp")], list(tmp_path.iterdir())
    # the bundle wires the same savers
    config = (ROOT / "bundles" / "unpaired_mr_brain" / "configs" / "train.json").read_text()
    assert '"CheckpointSaver"' not in config and config.count("monai_reg_ext.engines.AtomicCheckpointSaver") == 3


class _NanAfter(torch.nn.Module):
    """A registration loss that returns NaN from the ``n``-th call on."""

    def __init__(self, loss, n):
        super().__init__()
        self.loss, self.n, self.calls = loss, n, 0

    def forward(self, pred, target):
        self.calls += 1
        value = self.loss(pred, target)
        return value * float("nan") if self.calls >= self.n else value


def test_nan_loss_stops_training_before_the_step(tmp_path):
    from monai_reg_ext.losses import RegistrationLoss, SumSquaredDifferenceLoss

    loss = _NanAfter(RegistrationLoss(SumSquaredDifferenceLoss(), None, None), n=3)
    net, _, trainer = train_tiny.build(str(tmp_path), max_epochs=5, loss=loss)
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, iteration 3"):
        trainer.run()
    assert trainer.state.iteration == 3
    assert all(torch.isfinite(p).all() for p in net.parameters()), "NaN weights after a NaN loss"
    for path in tmp_path.glob("*.pt"):  # whatever was written holds finite weights
        state = torch.load(path, weights_only=True)
        state = state.get("network", state)
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path
    handlers = json.loads((ROOT / "bundles" / "unpaired_mr_brain" / "configs" / "train.json").read_text())
    targets = [h["_target_"] for h in handlers["train"]["handlers"]]
    assert "monai_reg_ext.engines.StopOnNonFiniteLoss" in targets


def test_two_seeded_cpu_runs_give_identical_weights():
    weights = []
    for _ in range(2):
        net, _, trainer = train_tiny.build(max_epochs=2, seed=3)
        trainer.run()
        weights.append({k: v.clone() for k, v in net.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
    net, _, trainer = train_tiny.build(max_epochs=2, seed=4)
    trainer.run()
    assert any(not torch.equal(weights[0][k], v) for k, v in net.state_dict().items())


def test_sampling_reproducible_per_epoch(tmp_path):
    root = make_unpaired(tmp_path, 8, labeled=False)
    a = UnpairedDataset(root, labeled=False, seed=5, shuffle=True)
    b = UnpairedDataset(root, labeled=False, seed=5, shuffle=True)
    epochs = [a.pairs(e) for e in range(4)]
    assert epochs == [b.pairs(e) for e in range(4)]
    assert all(len(p) == 4 for p in epochs)
    assert len({tuple(p) for p in epochs}) > 1, "every epoch served the same pairs"
    assert a.pairs(2) == epochs[2]  # asking again (or in another worker) gives the same pairs
    assert UnpairedDataset(root, labeled=False, seed=6, shuffle=True).pairs(0) != epochs[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP needs a CUDA device")
def test_amp_matches_fp32_on_gpu():
    """Mixed precision on GPU: same loss curve as fp32 within 5 % after 20 iterations (docs/reliability.md)."""
    from monai.data import DataLoader

    from monai_reg_ext.engines import create_trainer
    from monai_reg_ext.losses import GradientNormLoss, RegistrationLoss, SumSquaredDifferenceLoss
    from monai_reg_ext.networks import RegistrationNet

    curves = {}
    for amp in (False, True):
        torch.manual_seed(0)
        net = RegistrationNet(
            "localnet", "ddf", backbone_kwargs={"num_channel_initial": 4, "extract_levels": (0, 1, 2)}
        )
        net = net.cuda()
        loss = RegistrationLoss(SumSquaredDifferenceLoss(), None, GradientNormLoss(), weights=(1.0, 0.0, 0.01))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        data = [{k: v.repeat(1, 1, 2, 2, 2)[:, :, :24, :24, :24] for k, v in p.items()} for p in train_tiny.pairs()]
        loader = DataLoader(data, batch_size=2)
        trainer = create_trainer(net, loss, opt, loader, max_epochs=10, device="cuda", amp=amp)
        values = []
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED, lambda e, v=values: v.append(float(e.state.output["loss"].detach()))
        )
        trainer.run()
        curves[amp] = values
    assert all(torch.isfinite(torch.tensor(v)).all() for v in curves.values())
    assert curves[True][-1] == pytest.approx(curves[False][-1], rel=0.05), curves
