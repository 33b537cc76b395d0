"""Lightning's ModelCheckpoint, with `last.ckpt` written at the end of every epoch.

With `save_last=True` the pinned Lightning rewrites `last.ckpt` only when it also saves a top-k
checkpoint, so after a hard kill `last.ckpt` could be many epochs old (it held epoch 0 of a run
whose score stopped improving after it). Here it is also written whenever an epoch (or a
validation) ends without any other save. The class keeps Lightning's name, so the callback
state stored in checkpoints keeps its key.

A resumed checkpoint's callback state is data from a file: the paths Lightning would later
delete (older top-k files, the previous `last.ckpt`) are checked to be plain `.ckpt` names and
re-pointed into this run's checkpoint folder, and nothing outside that folder is ever removed.
"""

import re
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from semseg.errors import SemsegError

PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")
CHECKPOINT_NAME = re.compile(r"[^/\\]+\.ckpt")


def _is_score(value) -> bool:
    return (torch.is_tensor(value) and value.numel() == 1) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _checked_name(path, key: str) -> str:
    """The file name of a stored checkpoint path; refused unless it is a plain `.ckpt` name."""
    if path in (None, ""):
        return ""
    name = Path(path).name if isinstance(path, str) else None
    if name is None or not CHECKPOINT_NAME.fullmatch(name) or name.startswith("."):
        raise SemsegError(f"the checkpoint's ModelCheckpoint state has {key} = {str(path)[:120]!r}, which is not a checkpoint file; it was not written by semseg.train.")
    return name


def rehomed_state(state, dirpath: str | Path) -> dict:
    """A stored ModelCheckpoint state with every path a plain `.ckpt` name inside `dirpath`.

    Refuses a state of the wrong types, or a path that is no checkpoint file name (`..`, a
    folder, any other file): Lightning deletes and copies the paths it holds.
    """
    if not isinstance(state, dict) or not isinstance(state.get("best_k_models", {}), dict):
        raise SemsegError("the checkpoint's ModelCheckpoint state is not a dict of paths and scores; it was not written by semseg.train.")
    for score in (*state.get("best_k_models", {}).values(), state.get("best_model_score"), state.get("kth_value")):
        if score is not None and not _is_score(score):
            raise SemsegError("the checkpoint's ModelCheckpoint state holds a score that is not a number; it was not written by semseg.train.")
    home = Path(dirpath)
    kept = {str(home / _checked_name(path, "best_k_models")): score for path, score in state.get("best_k_models", {}).items()}
    paths = {key: _checked_name(state.get(key), key) for key in PATH_KEYS}
    return {**state, "best_k_models": kept, **{key: str(home / name) if name else "" for key, name in paths.items()},
            "dirpath": str(home)}


class ModelCheckpoint(LightningModelCheckpoint):
    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(rehomed_state(state_dict, self.dirpath) if self.dirpath else state_dict)

    def _should_remove_checkpoint(self, trainer: L.Trainer, previous: str, current: str) -> bool:
        """Only a `.ckpt` file directly in this callback's folder is ever removed."""
        inside = bool(self.dirpath) and Path(previous).resolve().parent == Path(self.dirpath).resolve()
        return inside and Path(previous).suffix == ".ckpt" and super()._should_remove_checkpoint(trainer, previous, current)

    def _save_last_if_nothing_saved(self, trainer: L.Trainer) -> None:
        # _should_skip_saving_checkpoint: sanity check, fast_dev_run, or already saved at this step
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # when validation ends an epoch, Lightning saves in on_train_epoch_end, which comes after
        if trainer.state.fn == "fit" and not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_nothing_saved(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_nothing_saved(trainer)
