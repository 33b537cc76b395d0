"""Checkpoint what Lightning leaves out but an exact resume needs.

Lightning restores weights, optimizer, scheduler, loop progress and callback states. It does not
restore the global RNGs, which dropout and pixel sampling draw from, nor does it know which W&B
run to continue. This callback stores both: the RNG states in its own checkpoint entry, the W&B
run id in the `semseg` entry, where the run set-up (`semseg.run_setup`) reads it before the loggers are built. On
resume it also restarts the training data mid-epoch (semseg.data.resumable).
"""

import random
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import torch

from semseg.callbacks.model_checkpoint import rehomed_state
from semseg.checkpoints.format import CHECKPOINT_KEY
from semseg.data.resumable import restart_data_at, resume_position
from semseg.errors import SemsegError
from semseg.loggers import wandb_run_id


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


def relocate_checkpoint_state(state: dict, dirpath: Path, source: Path, copy: bool = True) -> dict:
    """A ModelCheckpoint state pointed at `dirpath`, its kept checkpoints copied there from
    `source`, the folder of the checkpoint resumed from (never from the paths the state names)."""
    state = rehomed_state(state, dirpath)
    for path in state["best_k_models"]:
        original, target = source / Path(path).name, Path(path)
        if copy and original.is_file() and original.resolve() != target.resolve():
            dirpath.mkdir(parents=True, exist_ok=True)
            shutil.copy2(original, target)
    return state


def check_rng_states(states) -> None:
    """Refuse stored RNG states that would not restore, trying them on throwaway generators."""
    try:
        random.Random().setstate(states["python"])
        kind, keys, position, has_gauss, gauss = states["numpy"]
        np.random.RandomState().set_state((kind, keys.numpy(), position, has_gauss, gauss))
        torch.Generator().set_state(states["torch"])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as error:
        raise SemsegError(f"the checkpoint's RNG states do not restore ({type(error).__name__}); it was not written by semseg.train.") from None


class RunState(L.Callback):
    """Saves the RNG states and the W&B run id; on resume, restarts the data and the RNGs.

    Both happen in `on_train_start`, once Lightning has restored the loops, in the order of the
    uninterrupted run: a DataLoader draws from the RNG when its iterator starts, which happened
    before the checkpoint when it was written mid-epoch, and after it when written between epochs.
    """

    def __init__(self):
        self._rng_to_restore: dict | None = None

    def state_dict(self) -> dict:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        rngs = state_dict.get("rng") if isinstance(state_dict, dict) else None
        if rngs is not None:
            check_rng_states(rngs)
        self._rng_to_restore = rngs

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Carry the best checkpoints into this run's folder, so their scores still count.

        A resumed run writes to a new folder, and ModelCheckpoint forgets the best score of a
        checkpoint written elsewhere: the first validation after resuming would become "best".
        """
        states = checkpoint.get("callbacks", {})
        source = Path(trainer.ckpt_path).parent if trainer.ckpt_path else None
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            if state is not None and callback.dirpath and source is not None:
                states[callback.state_key] = relocate_checkpoint_state(state, Path(callback.dirpath), source, copy=trainer.is_global_zero)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rngs, self._rng_to_restore = self._rng_to_restore, None
        if not trainer.ckpt_path:
            return
        epoch, batches = resume_position(trainer)
        if batches:
            restart_data_at(trainer, epoch, batches)
        if rngs is not None:
            set_rng_states(rngs)
        if not batches:
            restart_data_at(trainer, epoch, batches)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        run_id = wandb_run_id(trainer)
        if run_id:
            checkpoint.setdefault(CHECKPOINT_KEY, {})["wandb_id"] = run_id
