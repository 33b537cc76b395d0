"""mIoU from the accumulated confusion matrix equals a plain numpy reference."""

import numpy as np
import torch

from semseg.models.metrics import SegmentationScores

IGNORE = 255


def numpy_reference(preds: list[np.ndarray], targets: list[np.ndarray], num_classes: int):
    """The VOC / Cityscapes convention, written out with numpy."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, target in zip(preds, targets):
        keep = target != IGNORE
        np.add.at(confusion, (target[keep], pred[keep]), 1)
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return np.nanmean(iou), tp.sum() / confusion.sum(), iou


def test_miou_matches_numpy_with_ignore_pixels_and_absent_classes():
    rng = np.random.default_rng(0)
    num_classes = 6  # class 5 never occurs in targets or predictions
    preds, targets = [], []
    metric = SegmentationScores(num_classes)
    for _ in range(3):  # accumulate over several batches, like a validation epoch
        target = rng.integers(0, 4, size=(2, 17, 23))  # classes 0..3 in the ground truth
        target[rng.random(target.shape) < 0.2] = IGNORE
        pred = rng.integers(0, 5, size=(2, 17, 23))  # class 4 only ever predicted
        pred[target == IGNORE] = 5  # predictions on ignored pixels must not count
        metric.update(torch.from_numpy(pred), torch.from_numpy(target))
        preds.append(pred)
        targets.append(target)
    scores = metric.compute()
    miou, pixel_acc, iou = numpy_reference(preds, targets, num_classes)
    assert np.isnan(iou[5]) and iou[4] == 0.0  # absent class skipped; predicted-only class is 0
    np.testing.assert_allclose(scores["IoU"].numpy(), iou, equal_nan=True)
    assert abs(scores["mIoU"].item() - miou) < 1e-12
    assert abs(scores["pixel_acc"].item() - pixel_acc) < 1e-12


def test_dataset_level_miou_is_not_a_mean_of_per_image_scores():
    metric = SegmentationScores(2)
    # image 1: 1 pixel of class 1, predicted right; image 2: 99 pixels of class 1, all wrong
    metric.update(torch.tensor([[1, 0]]), torch.tensor([[1, 0]]))
    metric.update(torch.zeros(1, 99, dtype=torch.long), torch.ones(1, 99, dtype=torch.long))
    iou = metric.compute()["IoU"]
    assert abs(iou[1].item() - 1 / 100) < 1e-12
    assert abs(iou[0].item() - 1 / 100) < 1e-12


def test_all_ignored_gives_nan_not_a_crash():
    metric = SegmentationScores(3)
    metric.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), IGNORE))
    scores = metric.compute()
    assert torch.isnan(scores["mIoU"]) and torch.isnan(scores["IoU"]).all()
