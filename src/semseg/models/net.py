"""The contract every segmentation net keeps, declared once and checked once.

Training, evaluation, tiled inference, export and ONNX inference rely on it: a net maps
(B, C, H, W) images (C = data.in_channels, 3 for RGB) to (B, num_classes, H, W) logits for any
H, W, says its class count and its output stride (the smallest tile it can process), and may score
only sampled pixels in training.
"""

from typing import Protocol, runtime_checkable

import torch

from semseg.errors import SemsegError

IGNORE_INDEX = 255  # the target label no loss or metric counts: datasets, losses and metrics share it


@runtime_checkable
class SegmentationNet(Protocol):
    num_classes: int
    output_stride: int  # 1 for nets without downsampling

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SampledLossNet(Protocol):
    """A net that trains on sampled pixels (the patch classifier): logits and targets for the loss."""

    def sample_for_loss(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def checked_net(net) -> SegmentationNet:
    """`net`, or one SemsegError naming what it lacks (for a custom `model.net._target_`)."""
    missing = [name for name in ("num_classes", "output_stride") if not hasattr(net, name)]
    if missing or not callable(net):
        lacking = ", ".join(missing) if missing else "a call from images to logits"
        raise SemsegError(
            f"model.net ({type(net).__name__}) lacks {lacking}: a segmentation net needs num_classes, "
            "output_stride (1 without downsampling) and a call from (B, in_channels, H, W) images to "
            "(B, num_classes, H, W) logits; see semseg.models.net.SegmentationNet."
        )
    return net
