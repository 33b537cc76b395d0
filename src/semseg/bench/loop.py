"""The plain PyTorch training step and validation that the benchmarks use outside Lightning."""

import torch
import torch.nn.functional as F

from semseg.models.net import IGNORE_INDEX
from semseg.models.metrics import SegmentationScores


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict, scheduler=None) -> None:
    """Cross-entropy (255 ignored), backward, optimiser step, then the per-step schedule if any."""
    loss = F.cross_entropy(net(batch["image"]), batch["mask"], ignore_index=IGNORE_INDEX)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


@torch.no_grad()
def val_miou(net: torch.nn.Module, loader, num_classes: int) -> float:
    """mIoU of `net` over the whole loader, with semseg's dataset-level metric."""
    scores = SegmentationScores(num_classes)
    net.eval()
    for batch in loader:
        scores.update(net(batch["image"]).argmax(1), batch["mask"])
    return float(scores.compute()["mIoU"])
