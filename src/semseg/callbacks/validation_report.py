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

from semseg.callbacks.figures import IMAGENET_MEAN, IMAGENET_STD, confusion_figure, overlay_panel, to_display
from semseg.data.palette import IGNORE_INDEX
from semseg.models.metrics import scores_from_confusion


class ValidationReport(L.Callback):
    """Args:
    output_dir: where the PNG/CSV files go (the run folder's `validation/`).
    num_images: how many validation images to show; always the first ones, so epochs compare.
    mean, std: the input normalisation to undo for display.
    """

    def __init__(self, output_dir: str, num_images: int = 4, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.mean, self.std = mean, std
        self.samples: list[dict] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.samples = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        missing = self.num_images - len(self.samples)
        if trainer.sanity_checking or missing <= 0:
            return
        predictions = outputs.argmax(1)
        for index in range(min(missing, len(predictions))):
            self.samples.append({
                "image": to_display(batch["image"][index].float().cpu().numpy(), self.mean, self.std),
                "target": batch["mask"][index].cpu().numpy().astype(np.uint8),
                "prediction": predictions[index].cpu().numpy().astype(np.uint8),
                "name": batch["name"][index],
            })

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or "val" not in pl_module.last_confusion:
            return
        names = pl_module.class_names
        confusion = pl_module.last_confusion["val"].numpy()
        iou = scores_from_confusion(pl_module.last_confusion["val"])["IoU"].numpy()
        table = [[name, float(value), int(confusion[c].sum())] for c, (name, value) in enumerate(zip(names, iou))]
        panels = [overlay_panel(s["image"], s["target"], s["prediction"]) for s in self.samples]
        heatmap = confusion_figure(confusion, names)
        self._save_files(trainer.current_epoch, panels, heatmap, table)
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                self._log_wandb(logger, names, heatmap, table, step)
            elif isinstance(logger, TensorBoardLogger):
                for index, panel in enumerate(panels):
                    logger.experiment.add_image(f"val/prediction_{index}", panel, step, dataformats="HWC")
                logger.experiment.add_image("val/confusion_matrix", heatmap, step, dataformats="HWC")

    def _save_files(self, epoch: int, panels: list, heatmap: np.ndarray, table: list) -> None:
        folder = self.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        if panels:
            Image.fromarray(np.concatenate(panels, axis=0)).save(folder / f"epoch_{epoch:03d}_predictions.png")
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
