"""U-Net-style decoder (Ronneberger et al., 2015): at every scale, upsample the coarser map,
concatenate the encoder's skip features and refine with two 3×3 convolutions. A last block
runs at full resolution when the encoder's first features are already strided.

The decoder's widths decide most of its cost: a block at stride 2 costs as much as one four times
as wide at stride 8. `max_width_per_stride` caps each width in proportion to the stride, so a
full-width encoder (ResNet-50: 64 to 2048 channels) gets a narrow decoder while a narrow one
keeps its own widths.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semseg.errors import SemsegError
from semseg.models.decoders.layers import conv_bn_relu


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


def decoder_widths(channels: list[int], reductions: list[int], decoder_channels: Sequence[int] | None,
                   max_width_per_stride: int | None) -> list[int]:
    """The width of each level's block: as given, or the encoder's, capped in proportion to the stride."""
    if decoder_channels is None:
        cap = max_width_per_stride or max(channels)
        return [min(width, cap * reduction) for width, reduction in zip(channels, reductions)]
    widths = list(decoder_channels) if isinstance(decoder_channels, Sequence) else [decoder_channels]
    if len(widths) != len(channels) or not all(isinstance(w, int) and w > 0 for w in widths):
        raise SemsegError(
            f"model.net.decoder.decoder_channels={widths}: this encoder has {len(channels)} levels (strides "
            f"{reductions}), so give {len(channels)} positive widths, shallowest first (the deepest is unused), "
            "or null to derive them from the encoder."
        )
    return widths


class UNetDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        decoder_channels: list[int] | None = None,
        max_width_per_stride: int | None = None,
    ):
        """`decoder_channels[i]` is the width after fusing skip level i, one per encoder level
        (the deepest entry is unused: that level is the decoder's input). None: the encoder's
        widths, each capped at `max_width_per_stride` × the level's stride when that is set."""
        super().__init__()
        widths = decoder_widths(channels, reductions, decoder_channels, max_width_per_stride)
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
