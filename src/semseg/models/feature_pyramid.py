"""A simple feature pyramid for plain ViTs (Li et al., ViTDet, 2022).

A plain ViT gives one map at the patch stride (16), but the decoders fuse maps at strides 4 to
32. As in ViTDet, the pyramid is built from the last map alone: two ×2 transposed convolutions
for stride 4, one for stride 8, the map itself for 16, a 2×2 max-pool for 32. Channels halve per
upsampling, so the fine levels stay cheap.
"""

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 16  # the pyramid's middle level; maps of other patch sizes are resampled to it


def _up(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)


class SimpleFeaturePyramid(nn.Module):
    """Maps a stride-16 map (B, C, H/16, W/16) to maps at strides 4, 8, 16 and 32.

    Args:
        channels: C, the ViT's width.
        max_stride: 32 for the whole pyramid, 16 to stop at the ViT's own stride.
    """

    def __init__(self, channels: int, max_stride: int = 32):
        super().__init__()
        levels = [
            nn.Sequential(_up(channels, channels // 2), nn.BatchNorm2d(channels // 2), nn.GELU(),
                          _up(channels // 2, channels // 4)),
            _up(channels, channels // 2),
            nn.Identity(),
            nn.MaxPool2d(2),
        ]
        keep = [r <= max_stride for r in (4, 8, 16, 32)].count(True)
        self.levels = nn.ModuleList(levels[:keep])
        self.reductions = [4, 8, 16, 32][:keep]
        self.channels = [channels // 4, channels // 2, channels, channels][:keep]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
        """`x`: the ViT's last map; `size`: the stride-16 grid of the input, (H/16, W/16).

        A patch size other than 16 (14 for DINOv2 and EVA-02, 8) gives another grid; it is
        resampled to the stride-16 one so every level has an exact stride.
        """
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return [level(x) for level in self.levels]
