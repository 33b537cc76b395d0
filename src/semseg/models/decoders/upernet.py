"""UPerNet (Xiao et al., 2018): a pyramid pooling module on the deepest features, a feature
pyramid network (FPN) down to stride 4, and one fusion of every pyramid level.

The pooling module (PSPNet's) averages the deepest map over 1×1, 2×2, 3×3 and 6×6 grids and
concatenates the results, so every pixel sees the image's global layout. The FPN carries that
context down: each finer level is a 1×1 projection of the encoder's map plus the coarser level,
upsampled, then smoothed by a 3×3 convolution. All levels, upsampled to stride 4, are
concatenated and fused by a 3×3 convolution before the classifier.
"""

import torch
from torch import nn

from semseg.models.decoders.layers import classifier, conv_bn_relu, pyramid_levels, resize, to_input_size


def pooling_weights(length: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, length) weights that average `length` positions into `bins` as adaptive average
    pooling splits them: bin i covers [floor(i·L/bins), ceil((i+1)·L/bins))."""
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * length, bins, rounding_mode="floor")
    end = torch.div((index + 1) * length + bins - 1, bins, rounding_mode="floor")
    positions = torch.arange(length, device=like.device)
    inside = (positions >= start[:, None]) & (positions < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


class AdaptiveAvgPool(nn.Module):
    """`nn.AdaptiveAvgPool2d(bins)` as two weight matrices computed from the input's size.

    The ONNX exporter writes adaptive pooling to a grid other than 1×1 with the bin boundaries of
    the example input fixed in the graph, so the file fails (or is wrong) at other sizes; these
    weights follow the size, so `semseg.export`'s file takes any H, W.
    """

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = pooling_weights(x.shape[-2], self.bins, x)
        columns = pooling_weights(x.shape[-1], self.bins, x)
        return torch.einsum("ih,bchw,jw->bcij", rows, x, columns)


class PoolingPyramid(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, grid_sizes: list[int]):
        super().__init__()
        # no BatchNorm on the pooled maps: the 1×1 grid has one value per channel and image,
        # which a batch of one cannot normalise
        self.pools = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool(size), nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))
            for size in grid_sizes
        )
        self.bottleneck = conv_bn_relu(in_channels + len(grid_sizes) * out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return self.bottleneck(torch.cat([x] + [resize(pool(x), size) for pool in self.pools], dim=1))


class UPerNetDecoder(nn.Module):
    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        num_classes: int,
        width: int = 256,
        pool_sizes: tuple[int, ...] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.levels = pyramid_levels(reductions)
        finer = self.levels[:-1]
        self.pooling = PoolingPyramid(channels[self.levels[-1]], width, list(pool_sizes))
        self.laterals = nn.ModuleList(conv_bn_relu(channels[level], width, 1) for level in finer)
        self.smooth = nn.ModuleList(conv_bn_relu(width, width) for _ in finer)
        self.fuse = conv_bn_relu(len(self.levels) * width, width)
        self.classifier = classifier(width, num_classes, dropout)
        self.finest_stride = reductions[self.levels[0]]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        maps = [features[level] for level in self.levels]
        top = self.pooling(maps[-1])
        pyramid = [top]
        for lateral, smooth, x in reversed(list(zip(self.laterals, self.smooth, maps[:-1]))):
            top = lateral(x) + resize(top, x.shape[-2:])
            pyramid.insert(0, smooth(top))
        size = pyramid[0].shape[-2:]
        fused = self.fuse(torch.cat([resize(level, size) for level in pyramid], dim=1))
        return to_input_size(self.classifier(fused), self.finest_stride)
