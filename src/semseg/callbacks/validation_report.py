"""After every validation epoch: prediction overlays, the confusion matrix and per-class IoU.

Pictures go to every logger that takes them (W&B with mask layers you can toggle, TensorBoard
images) and are also written under `<run dir>/validation/`, so runs without W&B show them too.
"""

import csv
from pathlib import Path

import lightning as L
import numpy as np
import wandb
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from semseg.callbacks.figures import (
    batch_image,
    confusion_figure,
    legend,
    overlay_panel,
    stack_rows,
)
from semseg.models.net import IGNORE_INDEX
from semseg.models.metrics import scores_from_confusion


def spread(count: int, wanted: int) -> list[int]:
    """`wanted` positions evenly spread over 0..count-1, first and last included."""
    return sorted({round(i * (count - 1) / max(wanted - 1, 1)) for i in range(min(wanted, count))})


class ValidationReport(L.Callback):
    """Args:
    output_dir: where the PNG/CSV files go (the run folder's `validation/`).
    num_images: how many validation images to show: the same ones every epoch, spread evenly
        over the split (consecutive frames of a video dataset look alike).
    """

    def __init__(self, output_dir: str, num_images: int = 4):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.samples: list[dict] = []
        self.positions: list[int] = []
        self.batch_size = 1

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        """Choose the positions, in this process's stream of val images, whose results to show."""
        self.samples, self.positions = [], []
        loader = trainer.val_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        if loader is None or not loader.batch_size:
            return
        self.batch_size = loader.batch_size
        seen = len(loader.sampler)  # under DDP, this process's share
        batches = trainer.num_val_batches[0] if trainer.num_val_batches else float("inf")
        if batches != float("inf"):  # limit_val_batches
            seen = min(seen, int(batches) * self.batch_size)
        self.positions = spread(seen, self.num_images)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking or not self.positions:
            return
        for index, prediction in enumerate(outputs):
            if batch_idx * self.batch_size + index not in self.positions:
                continue
            h, w = prediction.shape
            self.samples.append({
                "image": batch_image(batch["image"][index, :, :h, :w], trainer.datamodule),
                "target": batch["mask"][index, :h, :w].cpu().numpy().astype(np.uint8),
                "prediction": prediction.cpu().numpy().astype(np.uint8),
                "name": batch["name"][index],
            })

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or "val" not in pl_module.last_confusion:
            return
        names = pl_module.class_names
        confusion = pl_module.last_confusion["val"].numpy()
        iou = scores_from_confusion(pl_module.last_confusion["val"])["IoU"].numpy()
        table = [[name, float(value), int(confusion[c].sum())] for c, (name, value) in enumerate(zip(names, iou))]
        palette = getattr(trainer.datamodule, "palette", None)
        panels = [overlay_panel(s["image"], s["target"], s["prediction"], palette) for s in self.samples]
        if panels:
            stacked = stack_rows(panels)
            panels = [np.concatenate([stacked, legend(names, palette, stacked.shape[1])], axis=0)]
        heatmap = confusion_figure(confusion, names)
        self._save_files(trainer.current_epoch, panels, heatmap, table)
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                self._log_wandb(logger, names, heatmap, table, step)
            elif isinstance(logger, TensorBoardLogger):
                for panel in panels:
                    logger.experiment.add_image("val/predictions", panel, step, dataformats="HWC")
                logger.experiment.add_image("val/confusion_matrix", heatmap, step, dataformats="HWC")

    def _save_files(self, epoch: int, panels: list, heatmap: np.ndarray, table: list) -> None:
        folder = self.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        if panels:
            Image.fromarray(panels[0]).save(folder / f"epoch_{epoch:03d}_predictions.png")
        Image.fromarray(heatmap).save(folder / f"epoch_{epoch:03d}_confusion.png")
        with open(folder / f"epoch_{epoch:03d}_iou.csv", "w", newline="") as file:
            csv.writer(file).writerows([["class", "IoU", "pixels"], *table])

    def _log_wandb(self, logger: WandbLogger, names: list[str], heatmap, table, step: int) -> None:
        labels = {index: name for index, name in enumerate(names)} | {IGNORE_INDEX: "ignore"}
        images = [
            wandb.Image(
                s["image"],
                caption=s["name"],
                masks={
                    "ground_truth": {"mask_data": s["target"], "class_labels": labels},
                    "prediction": {"mask_data": s["prediction"], "class_labels": labels},
                },
            )
            for s in self.samples
        ]
        logger.experiment.log({
            "val/predictions": images,
            "val/confusion_matrix": wandb.Image(heatmap),
            "val/per_class_iou": wandb.Table(columns=["class", "IoU", "pixels"], data=table),
            "trainer/global_step": step,
        })
