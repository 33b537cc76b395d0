"""Reading checkpoints written by semseg.train, with clear errors for anything else."""

from pathlib import Path

import torch

from semseg.errors import SemsegError
from semseg.models.module import CHECKPOINT_FORMAT, CHECKPOINT_KEY


def read_checkpoint_meta(path: str | Path) -> dict:
    """Return the semseg metadata of a checkpoint: class names and the model config.

    Loads with `weights_only=True`, so a checkpoint cannot run code while it is read.
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
    return meta
