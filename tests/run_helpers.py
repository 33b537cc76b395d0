"""Test-only callbacks that disturb a real training run at a chosen global step."""

import os
import signal

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
