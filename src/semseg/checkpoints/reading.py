"""Reading checkpoints written by semseg.train, with clear errors for anything else."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from semseg.checkpoints.allowlist import check_buildable
from semseg.checkpoints.description import check_description
from semseg.checkpoints.format import CHECKPOINT_FORMAT, CHECKPOINT_KEY, RENAMED_TARGETS, upgrade_meta
from semseg.errors import SemsegError

ENCODER_TARGET = "semseg.models.encoders.TimmEncoder"

if TYPE_CHECKING:  # the models are imported only by load_model, which builds one
    from lightning.pytorch.callbacks import ModelCheckpoint

    from semseg.models.module import SegmentationModule


def read_checkpoint(path: str | Path, trusted_targets: Iterable[str] = ()) -> dict:
    """Load a checkpoint written by semseg.train, or raise a SemsegError saying what is wrong.

    Loads with `weights_only=True`, so a checkpoint cannot run code while it is read, and checks
    its stored model config and data description as untrusted data (semseg.checkpoints.allowlist,
    .description), so building what it describes cannot either. The `semseg` entry comes back in
    the current format, whatever format the file has. `trusted_targets`: `_target_`s the user
    vouches for besides semseg's own.
    """
    path = Path(path)
    if path.is_dir():
        raise SemsegError(folder_message(path))
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
    if not isinstance(meta, dict) or "model_config" not in meta:
        raise SemsegError(
            f"{path} is a checkpoint, but not one written by semseg.train (it has no "
            f"'{CHECKPOINT_KEY}' entry). Pass a .ckpt from logs/train/runs/<time>/checkpoints/."
        )
    version = meta.get("format", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise SemsegError(f"{path}: its stored format {version!r} is not a version number; it was not written by semseg.train.")
    if version > CHECKPOINT_FORMAT:
        raise SemsegError(f"{path} was written by a newer semseg (format {version}); upgrade semseg.")
    check_buildable(meta["model_config"], path, [*trusted_targets, *RENAMED_TARGETS])  # before the upgrade reads it
    meta = upgrade_meta(meta)
    check_buildable(meta["model_config"], path, trusted_targets)
    check_description(meta, path)
    if meta["model_config"].get("class_names", meta["class_names"]) != list(meta["class_names"]):
        raise SemsegError(
            f"{path}: its class names {list(meta['class_names'])} and those of its model config "
            f"{meta['model_config'].get('class_names')!r} differ; it was not written by semseg.train."
        )
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise SemsegError(f"{path} has no state_dict of weights; pass a .ckpt file written by semseg.train.")
    checkpoint[CHECKPOINT_KEY] = meta
    return checkpoint


def folder_message(folder: Path) -> str:
    """What to pass instead of a folder: its checkpoints when it is a training run, else where they are."""
    found = sorted(p.name for p in (folder / "checkpoints").glob("*.ckpt"))
    if found:
        best = "best.ckpt" if "best.ckpt" in found else found[0]
        return f"ckpt_path={folder} is a run folder; pass one of its checkpoints, e.g. ckpt_path={folder / 'checkpoints' / best} (it has {', '.join(found)})."
    return (
        f"ckpt_path={folder} is a folder without checkpoints (an eval, predict or export run keeps none); pass a "
        ".ckpt file of a training run: logs/train/runs/<time>/checkpoints/best.ckpt."
    )


def load_model(path: str | Path, trusted_targets: Iterable[str] = ()) -> tuple[SegmentationModule, dict]:
    """Rebuild the LightningModule stored in a checkpoint, with its weights, in eval mode."""
    from omegaconf import OmegaConf

    from semseg.utils.config import instantiate

    checkpoint = read_checkpoint(path, trusted_targets)
    meta = checkpoint[CHECKPOINT_KEY]
    try:
        model = instantiate(OmegaConf.create(without_pretrained_weights(meta["model_config"])))
    except SemsegError as error:
        raise SemsegError(f"{path}: its model config does not build: {error}") from None
    except Exception as error:  # the checked config reached a constructor with values it refuses
        raise SemsegError(f"{path}: its model config does not build ({type(error).__name__}: {str(error)[:200]}).") from None
    if not hasattr(model, "load_state_dict") or not hasattr(model, "net"):
        raise SemsegError(f"{path}: its model config does not build a SegmentationModule; it was not written by semseg.train.")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, KeyError) as error:  # missing, unexpected or misshapen weights
        first = str(error).strip().splitlines()[0][:300]
        raise SemsegError(f"{path}: its weights do not fit the model its config builds ({first}). Pass an unmodified .ckpt from semseg.train.") from None
    return model.eval(), meta


def without_pretrained_weights(node):
    """The model config with every encoder built at random: the checkpoint's weights replace them.

    So rebuilding needs neither the hub nor the weights file the run started from, which another
    machine may not have.
    """
    if isinstance(node, list):
        return [without_pretrained_weights(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: without_pretrained_weights(value) for key, value in node.items()}
    if node.get("_target_") == ENCODER_TARGET and "pretrained" in node:
        node["pretrained"] = False
    return node


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
