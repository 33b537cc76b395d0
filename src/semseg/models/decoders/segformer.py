"""SegFormer's all-MLP head (Xie et al., 2021): every level projected to one width, upsampled to
stride 4, concatenated, fused and classified, all by per-pixel linear layers (1×1 convolutions).

The head has no spatial convolution at all: it relies on the encoder's context (a transformer's,
in the paper) and is the cheapest of the multi-level decoders.
"""

import torch
from torch import nn

from semseg.models.decoders.layers import classifier, conv_bn_relu, pyramid_levels, resize, to_input_size


class SegFormerDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        width: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.levels = pyramid_levels(reductions)
        self.project = nn.ModuleList(nn.Conv2d(channels[level], width, 1) for level in self.levels)
        self.fuse = conv_bn_relu(len(self.levels) * width, width, 1)
        self.classifier = classifier(width, num_classes, dropout)
        self.finest_stride = reductions[self.levels[0]]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[self.levels[0]].shape[-2:]
        projected = [resize(project(features[level]), size) for project, level in zip(self.project, self.levels)]
        return to_input_size(self.classifier(self.fuse(torch.cat(projected, dim=1))), self.finest_stride)
