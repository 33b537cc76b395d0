"""Building blocks shared by the decoders."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 separable: bool = False) -> nn.Sequential:
    """Convolution, BatchNorm, ReLU; `separable`: a depthwise then a 1×1 convolution (fewer FLOPs)."""
    padding = dilation * (kernel_size // 2)
    if separable and kernel_size > 1:
        conv = [nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, dilation=dilation,
                          groups=in_channels, bias=False),
                nn.Conv2d(in_channels, out_channels, 1, bias=False)]
    else:
        conv = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False)]
    return nn.Sequential(*conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resampling to `size` (the identity when it already has it)."""
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def to_input_size(logits: torch.Tensor, stride: int) -> torch.Tensor:
    """Logits at `stride` upsampled bilinearly to stride 1, the decoder contract."""
    if stride == 1:
        return logits
    return F.interpolate(logits, scale_factor=stride, mode="bilinear", align_corners=False)


def pyramid_levels(reductions: list[int], finest: int = 4) -> list[int]:
    """Indices of the levels at stride `finest` or coarser (all levels if none is).

    Multi-level heads (UPerNet, SegFormer) fuse strides 4 to 32; a stride-2 map (ResNet's stem)
    would double the cost of every fused level for detail the stride-4 map mostly has.
    """
    levels = [index for index, reduction in enumerate(reductions) if reduction >= finest]
    return levels or list(range(len(reductions)))


def classifier(in_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout, then a 1×1 convolution to class logits."""
    return nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(in_channels, num_classes, 1))


def bilinear_kernel(factor: int) -> torch.Tensor:
    """The (2f, 2f) kernel with which a stride-f transposed conv does bilinear interpolation."""
    size = 2 * factor
    center = factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    return torch.from_numpy(np.outer(ramp, ramp)).float()


class LearnedUpsample(nn.Module):
    """Learnable ×factor upsampling: a ConvTranspose2d initialised to bilinear interpolation.

    As initialised, the output equals `F.interpolate(x, scale_factor=factor, mode="bilinear",
    align_corners=False)` exactly, borders included: the input is edge-padded by one pixel
    (interpolate clamps at the border) and the output is cropped to `factor` × the input size.
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"LearnedUpsample needs an even factor >= 2, got {factor}")
        self.factor = factor
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
        with torch.no_grad():
            self.deconv.weight.zero_()
            kernel = bilinear_kernel(factor)
            for channel in range(channels):
                self.deconv.weight[channel, channel] = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        start = 3 * self.factor // 2
        return out[..., start : start + h * self.factor, start : start + w * self.factor]


def upsample(channels: int, factor: int) -> nn.Module:
    """A LearnedUpsample, or the identity for factor 1."""
    return nn.Identity() if factor == 1 else LearnedUpsample(channels, factor)
