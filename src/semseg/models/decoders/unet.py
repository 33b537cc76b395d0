"""U-Net-style decoder (Ronneberger et al., 2015): at every scale, upsample the coarser map,
concatenate the encoder's skip features and refine with two 3×3 convolutions. A last block
runs at full resolution when the encoder's first features are already strided.
"""

import torch
import torch.nn.functional as F
from torch import nn

from semseg.models.decoders.layers import conv_bn_relu


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class UNetDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        decoder_channels: list[int] | None = None,
    ):
        """`decoder_channels[i]` is the width after fusing skip level i (default: the encoder's)."""
        super().__init__()
        widths = list(decoder_channels) if decoder_channels else list(channels)
        if len(widths) != len(channels):
            raise ValueError(f"decoder_channels needs {len(channels)} entries, got {len(widths)}")
        self.blocks = nn.ModuleList()
        coarse = channels[-1]
        for level in range(len(channels) - 2, -1, -1):
            self.blocks.append(_block(coarse + channels[level], widths[level]))
            coarse = widths[level]
        self.first_stride = reductions[0]
        self.full_resolution = _block(coarse, coarse) if self.first_stride > 1 else nn.Identity()
        self.classifier = nn.Conv2d(coarse, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        if self.first_stride > 1:
            x = F.interpolate(x, scale_factor=self.first_stride, mode="bilinear", align_corners=False)
        return self.classifier(self.full_resolution(x))
