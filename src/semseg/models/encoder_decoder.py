"""Encoder + decoder = a segmentation network for inputs of any size."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class EncoderDecoder(nn.Module):
    """Maps (B, in_channels, H, W) images to (B, num_classes, H, W) logits for any H, W.

    The input is zero-padded up to a multiple of the encoder's output stride, so every feature
    map aligns exactly with the next, and the logits are cropped back to H × W.
    """

    def __init__(self, encoder: nn.Module, decoder: Callable[..., nn.Module], num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.num_classes = num_classes
        self.decoder = decoder(
            channels=encoder.channels, reductions=encoder.reductions, num_classes=num_classes
        )
        self.output_stride = max(encoder.reductions)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        stride = self.output_stride
        padded = F.pad(images, (0, -w % stride, 0, -h % stride))
        logits = self.decoder(self.encoder(padded))
        return logits[..., :h, :w]
