"""DeepLabV3+ (Chen et al., 2018): atrous spatial pyramid pooling (ASPP) on the deepest features,
fused with one low-level map at stride 4.

ASPP looks at the deepest map through parallel 3×3 convolutions at several dilation rates, a 1×1
convolution and an image-level average, so each pixel sees context at several ranges. Its output,
upsampled to the low-level map, is concatenated with a 1×1 projection of that map to 48 channels
(few, so the semantics of the deep branch dominate), refined by two 3×3 convolutions and
classified; the logits are upsampled to the input. Convolutions are depthwise-separable by
default, as in the paper. The encoder's `output_stride` (16 by default in `model=deeplabv3plus`,
8 for finer maps at 4× the ASPP cost) comes from dilating the backbone, not from this decoder.
"""

import torch
from torch import nn

from semseg.errors import SemsegError
from semseg.models.decoders.layers import classifier, conv_bn_relu, resize, to_input_size

PAPER_RATES = (6, 12, 18)  # at output stride 16; they scale with the stride, keeping the field of view


class ASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, rates: list[int], separable: bool):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, out_channels, 1)]
            + [conv_bn_relu(in_channels, out_channels, 3, dilation=rate, separable=separable) for rate in rates]
        )
        # no BatchNorm on the image-level branch: one value per channel and image, which a batch
        # of one cannot normalise
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1),
                                        nn.ReLU(inplace=True))
        self.project = conv_bn_relu((len(rates) + 2) * out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


def low_level_index(reductions: list[int]) -> int:
    """The coarsest level at stride 4 or finer (the paper's), else the finest level."""
    fine = [index for index, reduction in enumerate(reductions) if reduction <= 4]
    return fine[-1] if fine else 0


class DeepLabV3PlusDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        width: int = 256,
        atrous_rates: list[int] | None = None,
        low_level_channels: int = 48,
        separable: bool = True,
        dropout: float = 0.1,
    ):
        """`atrous_rates`: ASPP's dilations; None scales the paper's (6, 12, 18) at stride 16 to the
        encoder's deepest stride ((12, 24, 36) at 8, (3, 6, 9) at 32)."""
        super().__init__()
        self.low_level = low_level_index(reductions)
        if reductions[self.low_level] >= reductions[-1]:
            raise SemsegError(
                f"model=deeplabv3plus needs a low-level feature map finer than the deepest one, but the encoder "
                f"gives strides {reductions}. Leave out model.net.encoder.out_indices (all levels) or include a "
                "stride-4 level in it."
            )
        deepest = reductions[-1]
        rates = list(atrous_rates) if atrous_rates else [max(1, round(rate * 16 / deepest)) for rate in PAPER_RATES]
        self.aspp = ASPP(channels[-1], width, rates, separable)
        self.project_low_level = conv_bn_relu(channels[self.low_level], low_level_channels, 1)
        self.fuse = nn.Sequential(conv_bn_relu(width + low_level_channels, width, separable=separable),
                                  conv_bn_relu(width, width, separable=separable))
        self.classifier = classifier(width, num_classes, dropout)
        self.low_level_stride = reductions[self.low_level]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low_level = self.project_low_level(features[self.low_level])
        context = resize(self.aspp(features[-1]), low_level.shape[-2:])
        logits = self.classifier(self.fuse(torch.cat([context, low_level], dim=1)))
        return to_input_size(logits, self.low_level_stride)
