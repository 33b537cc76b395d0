"""Reading checkpoints written by semseg.train, with clear errors for anything else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from semseg.checkpoints.format import CHECKPOINT_FORMAT, CHECKPOINT_KEY, upgrade_meta
from semseg.errors import SemsegError

if TYPE_CHECKING:  # the models are imported only by load_model, which builds one
    from lightning.pytorch.callbacks import ModelCheckpoint

    from semseg.models.module import SegmentationModule


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by semseg.train, or raise a SemsegError saying what is wrong.

    Loads with `weights_only=True`, so a checkpoint cannot run code while it is read. The
    `semseg` entry comes back in the current format, whatever format the file has.
    """
    path = Path(path)
    if not path.is_file():
        raise SemsegError(
            f"checkpoint {path} not found. Pass ckpt_path=<run dir>/checkpoints/best.ckpt "
            "from a semseg.train run (runs live under logs/train/runs/)."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for non-checkpoint files
        raise SemsegError(
            f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}). "
            "Pass a .ckpt file written by semseg.train."
        ) from None
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not meta or "model_config" not in meta:
        raise SemsegError(
            f"{path} is a checkpoint, but not one written by semseg.train (it has no "
            f"'{CHECKPOINT_KEY}' entry). Pass a .ckpt from logs/train/runs/<time>/checkpoints/."
        )
    if meta.get("format", 0) > CHECKPOINT_FORMAT:
        raise SemsegError(f"{path} was written by a newer semseg (format {meta['format']}); upgrade semseg.")
    checkpoint[CHECKPOINT_KEY] = upgrade_meta(meta)
    return checkpoint


def read_checkpoint_meta(path: str | Path) -> dict:
    """The semseg entry of a checkpoint: class names, normalisation, palette and the model config."""
    return read_checkpoint(path)[CHECKPOINT_KEY]


def load_model(path: str | Path) -> tuple[SegmentationModule, dict]:
    """Rebuild the LightningModule stored in a checkpoint, with its weights, in eval mode."""
    from omegaconf import OmegaConf

    from semseg.utils.config import instantiate

    checkpoint = read_checkpoint(path)
    meta = checkpoint[CHECKPOINT_KEY]
    model = instantiate(OmegaConf.create(meta["model_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), meta


def best_score(checkpoint: ModelCheckpoint) -> float | None:
    """The monitored score of the best checkpoint, also after `ddp_spawn`, which drops it.

    Spawned workers hand back the best checkpoint's path but not its score; the score is in the
    checkpoint file, in the checkpoint callback's state.
    """
    if checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    if not checkpoint.best_model_path:
        return None
    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    for state in saved.get("callbacks", {}).values():
        if state.get("best_model_path") == checkpoint.best_model_path and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None
