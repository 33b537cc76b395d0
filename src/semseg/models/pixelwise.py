"""A per-pixel classifier (1×1 convolutions only): the no-context baseline.

It sees one pixel's colour (its bands) and nothing around it. On the synthetic dataset, where colours are
random and classes are textures, it cannot do much better than guessing the majority class,
which shows that the dataset needs spatial context.
"""

import torch
from torch import nn


class PixelwiseClassifier(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 64, depth: int = 3, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels  # the image bands (data.in_channels)
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Conv2d(width, num_classes, 1))
        self.layers = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.output_stride = 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)
