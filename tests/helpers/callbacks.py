"""Test-only callbacks: disturb a real training run at a chosen global step, or record what each rank runs."""

import json
import os
import signal
from pathlib import Path

import lightning as L
import torch


class SignalAt(L.Callback):
    """Sends this process a real signal as training batch `step` starts, as a scheduler would."""

    def __init__(self, step: int, signum: int = signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class PoisonBatch(L.Callback):
    """Turns the images of training batch `step` into NaN, so its loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            batch["image"].fill_(torch.nan)


class RankProbe(L.Callback):
    """Writes rank<N>.json into the run folder: what this process trains with, once training starts."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "decoder": type(pl_module.net.decoder).__name__,
        }
        out = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(record))


class FixedScore(L.Callback):
    """Reports the same val/mIoU after every validation, so the best checkpoint stays the first."""

    def on_validation_end(self, trainer, pl_module) -> None:
        trainer.callback_metrics["val/mIoU"] = torch.tensor(0.5)
