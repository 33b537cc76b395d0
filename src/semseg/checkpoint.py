"""Reading checkpoints written by semseg.train, with clear errors for anything else."""

from pathlib import Path

import torch
from omegaconf import OmegaConf

from semseg.errors import SemsegError
from semseg.models.module import CHECKPOINT_FORMAT, CHECKPOINT_KEY, SegmentationModule
from semseg.utils.config import instantiate


def read_checkpoint_meta(path: str | Path) -> dict:
    """Return the semseg metadata of a checkpoint: class names and the model config."""
    return read_checkpoint(path)[CHECKPOINT_KEY]


def load_model(path: str | Path) -> tuple[SegmentationModule, dict]:
    """Rebuild the LightningModule stored in a checkpoint, with its weights, in eval mode."""
    checkpoint = read_checkpoint(path)
    meta = checkpoint[CHECKPOINT_KEY]
    model = instantiate(OmegaConf.create(meta["model_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), meta


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by semseg.train, or raise a SemsegError saying what is wrong.

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
    return checkpoint
