"""Dataset-level segmentation scores from one accumulated confusion matrix.

This is the convention of the Pascal VOC and Cityscapes evaluation scripts: sum the confusion
matrix over the whole split, then IoU_c = TP / (TP + FP + FN). Classes whose union is empty
(absent from both ground truth and predictions) are NaN and left out of the mean. Pixels labelled
255 are ignored.
"""

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from semseg.data.io import IGNORE_INDEX


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
