"""Dataset-level segmentation scores from one accumulated confusion matrix.

This is the convention of the Pascal VOC and Cityscapes evaluation scripts: sum the confusion
matrix over the whole split, then IoU_c = TP / (TP + FP + FN). Classes whose union is empty
(absent from both ground truth and predictions) are NaN and left out of the mean. Pixels labelled
255 are ignored.
"""

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from semseg.models.net import IGNORE_INDEX


class SegmentationScores(MulticlassConfusionMatrix):
    """A torchmetrics confusion matrix (synced across processes) that reports IoU scores."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, validate_args=False)

    def compute(self) -> dict[str, torch.Tensor]:
        return scores_from_confusion(super().compute())


def scores_from_confusion(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """`confusion[t, p]` counts pixels of true class t predicted as p."""
    confusion = confusion.double()
    true_positive = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.nan)
    total = confusion.sum()
    return {
        "mIoU": iou.nanmean() if (union > 0).any() else torch.tensor(torch.nan, dtype=torch.float64),
        "pixel_acc": true_positive.sum() / total if total > 0 else torch.tensor(torch.nan),
        "IoU": iou,
        "confusion": confusion,
    }


def image_confusion(prediction: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The confusion matrix of one (H, W) prediction against its mask, label 255 left out."""
    labelled = mask != IGNORE_INDEX
    index = mask[labelled] * num_classes + prediction[labelled]
    return torch.bincount(index.flatten(), minlength=num_classes**2).view(num_classes, num_classes)


def report_from_confusion(confusion: torch.Tensor) -> dict:
    """Per-class IoU, accuracy, Dice and ground-truth pixels, and their summaries.

    IoU, mIoU and aAcc are `scores_from_confusion`'s (so mIoU is `test/mIoU`). Conventions (those
    of mmsegmentation's evaluation and the VOC/Cityscapes scripts): Dice_c = 2 TP / (2 TP + FP +
    FN), NaN, like IoU, for a class absent from both ground truth and predictions; Acc_c = TP /
    (TP + FN), the class's recall, NaN for a class absent from the ground truth. mDice and mAcc
    average over the non-NaN classes; fwIoU weighs each class's IoU by its share of the
    ground-truth pixels.
    """
    scores = scores_from_confusion(confusion)
    confusion, iou = scores["confusion"], scores["IoU"]
    true_positive, truth, predicted = confusion.diag(), confusion.sum(1), confusion.sum(0)
    nan = torch.tensor(torch.nan, dtype=torch.float64)
    dice = torch.where(iou.isnan(), nan, 2 * true_positive / (truth + predicted).clamp(min=1))
    accuracy = torch.where(truth > 0, true_positive / truth.clamp(min=1), nan)
    total = truth.sum()
    return {
        "per_class": {"iou": iou, "acc": accuracy, "dice": dice, "pixels": truth},
        "summary": {
            "mIoU": float(scores["mIoU"]),
            "mAcc": float(accuracy.nanmean()),
            "aAcc": float(scores["pixel_acc"]),
            "fwIoU": float((truth / total * iou.nan_to_num(0.0)).sum()) if total > 0 else float("nan"),
            "mDice": float(dice.nanmean()),
        },
    }
