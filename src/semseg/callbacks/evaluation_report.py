"""The full evaluation report `semseg.eval` writes to `<run>/report/`.

    confusion.csv   pixel counts; rows: ground truth, columns: prediction (class names on both)
    per_class.csv   class, iou, acc, dice, pixels
    summary.json    mIoU, mAcc, aAcc, fwIoU, mDice (semseg.models.metrics.report_from_confusion)
    per_image.csv   every image's own mIoU and pixel accuracy, worst first
    worst/          overlays (image | ground truth | prediction) of the `num_worst` worst images

and the per-class table in the terminal. The split's numbers come from the same confusion
matrix as `test/mIoU`; per-image scores use the same conventions on one image's pixels.
"""

import csv
import heapq
import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from semseg.callbacks.figures import batch_image, overlay_panel
from semseg.models.metrics import (
    image_confusion,
    report_from_confusion,
    scores_from_confusion,
)


def _gather(records: list) -> list:
    """Every process's records on every process (a no-op in one process)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return records
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, records)
    return [record for part in gathered for record in part]


class EvaluationReport(L.Callback):
    def __init__(self, output_dir: str | Path, num_worst: int = 8):
        self.output_dir, self.num_worst = Path(output_dir), num_worst
        self.images: list[dict] = []
        self.worst: list[tuple] = []  # a heap of (-mIoU, order, picture): the num_worst worst so far

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.images, self.worst = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        classes = len(pl_module.class_names)
        for index, prediction in enumerate(outputs):
            h, w = prediction.shape
            mask = batch["mask"][index, :h, :w]
            scores = scores_from_confusion(image_confusion(prediction, mask, classes))
            record = {"image": batch["name"][index], "mIoU": float(scores["mIoU"]), "pixel_acc": float(scores["pixel_acc"])}
            self.images.append(record)
            if not np.isfinite(record["mIoU"]) or self.num_worst <= 0:  # no labelled pixel: nothing to score
                continue
            key = (-record["mIoU"], len(self.images))  # the heap's top is the best of the kept worst
            if len(self.worst) == self.num_worst and key <= self.worst[0][:2]:
                continue
            picture = {
                "name": record["image"], "mIoU": record["mIoU"], "mask": mask.cpu().numpy().astype(np.uint8),
                "image": batch_image(batch["image"][index, :, :h, :w], trainer.datamodule),
                "prediction": prediction.cpu().numpy().astype(np.uint8),
            }
            push = heapq.heappush if len(self.worst) < self.num_worst else heapq.heapreplace
            push(self.worst, (*key, picture))

    def on_test_end(self, trainer, pl_module) -> None:
        images, worst = _gather(self.images), _gather([entry[2] for entry in self.worst])
        if not trainer.is_global_zero or "test" not in pl_module.last_confusion:
            return
        names = pl_module.class_names
        confusion = pl_module.last_confusion["test"]
        report = report_from_confusion(confusion)
        folder = self.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        self._write_tables(folder, names, confusion, report, images)
        worst = sorted(worst, key=lambda p: p["mIoU"])[: self.num_worst]
        palette = getattr(trainer.datamodule, "palette", None)
        (folder / "worst").mkdir(exist_ok=True)
        for rank, item in enumerate(worst, start=1):
            panel = overlay_panel(item["image"], item["mask"], item["prediction"], palette)
            safe = item["name"].replace("/", "__")
            Image.fromarray(panel).save(folder / "worst" / f"{rank:02d}_{safe}.png")
        print_table(names, report)

    @staticmethod
    def _write_tables(folder: Path, names: list[str], confusion: torch.Tensor, report: dict, images: list[dict]) -> None:
        with open(folder / "confusion.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["ground truth \\ prediction", *names])
            writer.writerows([name, *row] for name, row in zip(names, confusion.long().tolist()))
        per_class = report["per_class"]
        with open(folder / "per_class.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["class", "iou", "acc", "dice", "pixels"])
            for c, name in enumerate(names):
                writer.writerow([name, *(float(per_class[k][c]) for k in ("iou", "acc", "dice")), int(per_class["pixels"][c])])
        summary = {key: value if np.isfinite(value) else None for key, value in report["summary"].items()}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))  # null where undefined
        # worst first; images without a labelled pixel (mIoU NaN) last
        ordered = sorted(images, key=lambda r: (not np.isfinite(r["mIoU"]), r["mIoU"], r["image"]))
        with open(folder / "per_image.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["image", "mIoU", "pixel_acc"])
            writer.writeheader()
            writer.writerows(ordered)


def print_table(names: list[str], report: dict) -> None:
    table = Table("class", "IoU", "Acc", "Dice", "pixels", title="evaluation report")
    per_class = report["per_class"]
    for c, name in enumerate(names):
        table.add_row(name, *(f"{float(per_class[k][c]):.4f}" for k in ("iou", "acc", "dice")), str(int(per_class["pixels"][c])))
    summary = report["summary"]
    Console().print(table)
    Console().print("  ".join(f"{key} {value:.4f}" for key, value in summary.items()))
