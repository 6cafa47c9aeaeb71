"""A tiny registration training run for the reliability tests (in-memory pairs, checkpoint every epoch).

Run as a script (``python tests/reliability/train_tiny.py OUTPUT_DIR [RESUME_FROM]``) it trains until killed and
appends ``iteration loss`` to ``OUTPUT_DIR/losses.txt`` after every iteration (flushed), sleeping ``--sleep`` seconds
per iteration so that a test can kill it mid-epoch.
"""

from __future__ import annotations

import sys
import time

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.utils import set_determinism

from monai_reg_ext.engines import create_trainer
from monai_reg_ext.losses import GradientNormLoss, RegistrationLoss, SumSquaredDifferenceLoss
from monai_reg_ext.networks import RegistrationNet

EPOCH_LENGTH = 4


def _blob(center, size=12, radius=3.0) -> torch.Tensor:
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    return torch.exp(-sum((grid[k] - c) ** 2 for k, c in enumerate(center)) / (2 * radius**2))[None]


def pairs(n: int = EPOCH_LENGTH) -> list[dict]:
    return [{"moving_image": _blob((5 + i % 2, 6, 6)), "fixed_image": _blob((7, 6 - i % 3, 6))} for i in range(n)]


def build(output_dir=None, max_epochs=100, resume_from=None, seed=0, loss=None, lr=1e-2, data=None):
    """Network, optimiser and trainer (create_trainer), seeded; batches of one pair, no shuffling."""
    set_determinism(seed=seed)
    net = RegistrationNet("localnet", "ddf", backbone_kwargs={"num_channel_initial": 2, "extract_levels": (0, 1)})
    loss = loss or RegistrationLoss(SumSquaredDifferenceLoss(), None, GradientNormLoss(), weights=(1.0, 0.0, 0.01))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loader = DataLoader(data if data is not None else pairs(), batch_size=1, shuffle=False, num_workers=0)
    trainer = create_trainer(
        net, loss, opt, loader, max_epochs=max_epochs, output_dir=output_dir, resume_from=resume_from, log_interval=1000
    )
    return net, opt, trainer


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    output_dir = argv[0]
    resume = argv[1] if len(argv) > 1 and argv[1] != "-" else None
    sleep = float(argv[2]) if len(argv) > 2 else 0.05
    _, _, trainer = build(output_dir, resume_from=resume)
    log = open(f"{output_dir}/losses.txt", "a")

    @trainer.on(Events.ITERATION_COMPLETED)
    def _log(engine):
        log.write(f"{engine.state.iteration} {float(engine.state.output['loss'].detach()):.9g}\n")
        log.flush()
        time.sleep(sleep)

    trainer.run()


if __name__ == "__main__":
    main(sys.argv[1:])
