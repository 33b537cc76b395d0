"""Checkpoint writes that a crash cannot turn into a broken file."""

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from semseg.utils.atomic import replaced_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, then renames it into place.

    Lightning's own writer truncates the old file before writing the new one, so a crash, a kill
    or a full disk mid-write destroys `last.ckpt`. Remote paths (`s3://...`) go through
    Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with replaced_atomically(path) as file:
            torch.save(checkpoint, file)
