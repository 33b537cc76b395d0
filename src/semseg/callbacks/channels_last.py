"""NHWC memory format for the network and its input images, faster convolutions on tensor cores."""

import lightning as L
import torch


class ChannelsLast(L.Callback):
    """Convert the model once and every batch's images as they arrive (train, val and test)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def _convert(self, batch: dict) -> None:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._convert(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._convert(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._convert(batch)
