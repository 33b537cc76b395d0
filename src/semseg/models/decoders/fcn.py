"""FCN-32s / 16s / 8s (Long, Shelhamer & Darrell, 2015).

The deepest features are scored by a small head; each skip level adds its own 1×1 scores after
the coarser scores are upsampled ×2 by a learned, bilinear-initialised transposed convolution;
a final learned upsampling returns to the input resolution. `num_skips` = 0, 1, 2 gives 32s,
16s, 8s on a stride-32 backbone.
"""

import torch
from torch import nn

from semseg.errors import SemsegError
from semseg.models.decoders.layers import conv_bn_relu, upsample


class FCNDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        num_skips: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        if not 0 <= num_skips < len(channels):
            raise SemsegError(
                f"model.net.decoder.num_skips={num_skips}, but the encoder gives {len(channels)} feature levels "
                f"(strides {reductions}): use num_skips in [0, {len(channels) - 1}] (model=fcn32s, fcn16s), or leave "
                "out model.net.encoder.out_indices (all levels)."
            )
        self.levels = list(range(len(channels) - 1, len(channels) - 2 - num_skips, -1))
        deepest = channels[-1]
        self.head = nn.Sequential(
            conv_bn_relu(deepest, max(deepest // 4, num_classes)),
            nn.Dropout2d(dropout),
            nn.Conv2d(max(deepest // 4, num_classes), num_classes, 1),
        )
        self.skip_scores = nn.ModuleList()
        self.skip_upsamples = nn.ModuleList()
        for coarse, fine in zip(self.levels, self.levels[1:]):
            score = nn.Conv2d(channels[fine], num_classes, 1)
            nn.init.zeros_(score.weight)  # as in FCN: a new skip starts as a no-op
            nn.init.zeros_(score.bias)
            self.skip_scores.append(score)
            self.skip_upsamples.append(upsample(num_classes, reductions[coarse] // reductions[fine]))
        self.final_upsample = upsample(num_classes, reductions[self.levels[-1]])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        scores = self.head(features[self.levels[0]])
        for level, score, up in zip(self.levels[1:], self.skip_scores, self.skip_upsamples):
            scores = up(scores) + score(features[level])
        return self.final_upsample(scores)
