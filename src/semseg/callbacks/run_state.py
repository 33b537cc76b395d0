"""Checkpoint what Lightning leaves out but an exact resume needs.

Lightning restores weights, optimizer, scheduler, loop progress and callback states. It does not
restore the global RNGs, which dropout and pixel sampling draw from, nor does it know which W&B
run to continue. This callback stores both: the RNG states in its own checkpoint entry, the W&B
run id in the `semseg` entry, where `semseg.resume` reads it before the loggers are built. On
resume it also restarts the training data mid-epoch (semseg.data.resumable).
"""

import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from semseg.data.resumable import restart_where_resumed
from semseg.models.module import CHECKPOINT_KEY


def rng_states() -> dict:
    """The global RNG states, as tensors and ints, so `torch.load(weights_only=True)` reads them."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy(), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def wandb_run_id(trainer: L.Trainer) -> str | None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.version
    return None


class RunState(L.Callback):
    """Saves the RNG states and the W&B run id; on resume, restarts the data, then the RNGs.

    Both happen in `on_train_start`, after Lightning has restored the loops and built the data
    iterators, so the draws a DataLoader makes when it starts are overwritten as they would have
    been in the uninterrupted run, where they happened before the checkpoint was written.
    """

    def __init__(self):
        self._rng_to_restore: dict | None = None

    def state_dict(self) -> dict:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._rng_to_restore = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path:
            restart_where_resumed(trainer)
        if self._rng_to_restore is not None:
            set_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        run_id = wandb_run_id(trainer)
        if run_id:
            checkpoint.setdefault(CHECKPOINT_KEY, {})["wandb_id"] = run_id
