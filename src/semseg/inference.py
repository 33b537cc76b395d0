"""Whole-image and tiled (sliding-window) inference, with flip and multi-scale test-time augmentation.

Tiling follows mmsegmentation's `slide_inference`: windows start every `stride` pixels, the last
one is pulled back flush with the image edge, and each pixel's logits are averaged over the
windows covering it (optionally weighted by a Gaussian that trusts window centres more). Memory
then depends on the crop size, not the image size.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from semseg.errors import SemsegError
from semseg.models.net import SegmentationNet, checked_net

Net = Callable[[torch.Tensor], torch.Tensor]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets along one axis: every `stride`, the last window flush with the edge."""
    count = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(count)]


def window_grid(image_size: tuple[int, int], crop_size, stride) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of every window over an image of (H, W) pixels."""
    (h, w), (crop_h, crop_w), (stride_h, stride_w) = image_size, _pair(crop_size), _pair(stride)
    return [
        (top, left, min(top + crop_h, h), min(left + crop_w, w))
        for top in window_starts(h, crop_h, stride_h)
        for left in window_starts(w, crop_w, stride_w)
    ]


def check_tiling(crop_size, stride, output_stride: int = 1, key: str = "inference") -> None:
    """Refuse tilings that leave gaps or crops the model cannot process; `key` is the config's name in messages."""
    crop, step = _pair(crop_size), _pair(stride)
    if min(crop) < output_stride:
        raise SemsegError(
            f"{key}.crop_size={list(crop)} is smaller than the model's output stride "
            f"{output_stride}; use a crop of at least {output_stride} pixels (e.g. a multiple of it)."
        )
    if min(step) < 1 or any(s > c for s, c in zip(step, crop)):
        raise SemsegError(
            f"{key}.stride={list(step)} must be between 1 and {key}.crop_size={list(crop)}, "
            "or pixels between windows are never predicted; use a stride <= crop_size."
        )


def gaussian_window(height: int, width: int, sigma_scale: float = 0.125) -> torch.Tensor:
    """(H, W) weights peaking at 1 in the centre, sigma = sigma_scale × side (nnU-Net's choice)."""

    def ramp(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(sigma_scale * n, 1e-6)) ** 2)

    weights = torch.outer(ramp(height), ramp(width))
    return weights.clamp(min=1e-3)  # edges keep some weight, so every pixel counts


def slide_inference(
    model: SegmentationNet | Net,
    image: torch.Tensor,
    crop_size: int | Sequence[int],
    stride: int | Sequence[int],
    num_classes: int,
    gaussian: bool = False,
    batch_size: int = 4,
) -> torch.Tensor:
    """Logits (B, num_classes, H, W) of `model` run on overlapping crops of `image` (B, 3, H, W).

    Windows are processed `batch_size` at a time (per image); overlapping logits are averaged by
    a count map, or by the summed Gaussian weights with `gaussian=True`.
    """
    check_tiling(crop_size, stride, model.output_stride if isinstance(model, SegmentationNet) else 1)
    b, _, h, w = image.shape
    windows = window_grid((h, w), crop_size, stride)
    y0, x0, y1, x1 = windows[0]  # every window has this size
    weight = gaussian_window(y1 - y0, x1 - x0) if gaussian else torch.ones(y1 - y0, x1 - x0)
    weight = weight.to(image.device, image.dtype)
    logits = image.new_zeros(b, num_classes, h, w)
    counts = image.new_zeros(1, 1, h, w)
    for start in range(0, len(windows), batch_size):
        group = windows[start : start + batch_size]
        crops = torch.cat([image[..., y0:y1, x0:x1] for y0, x0, y1, x1 in group])
        out = model(crops).view(len(group), b, num_classes, *weight.shape)
        for (y0, x0, y1, x1), window_logits in zip(group, out):
            logits[..., y0:y1, x0:x1] += window_logits * weight
            counts[..., y0:y1, x0:x1] += weight
    return logits / counts


def tta(infer: Net, image: torch.Tensor, flip: bool = False, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Mean logits over rescaled (and horizontally flipped) copies, resized back to the image."""
    size = image.shape[-2:]
    total = None
    for scale in scales:
        scaled = image if scale == 1 else F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False)
        views = [infer(scaled)]
        if flip:
            views.append(infer(scaled.flip(-1)).flip(-1))
        for logits in views:
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
    return total / (len(scales) * (2 if flip else 1))


class Inference:
    """How eval and predict turn a net into logits: `inference.mode=whole|slide`, plus TTA.

    Built from the `inference` config group; calling it runs `net` on a (B, 3, H, W) batch. `key`
    is where the settings sit in the run's config (`test_inference` in train), for error messages.
    """

    def __init__(
        self,
        mode: str = "whole",
        crop_size: int | Sequence[int] = 512,
        stride: int | Sequence[int] = 341,
        gaussian: bool = False,
        batch_size: int = 4,
        flip: bool = False,
        scales: Sequence[float] = (1.0,),
        key: str = "inference",
    ):
        if mode not in ("whole", "slide"):
            raise SemsegError(f"{key}.mode={mode!r}; choose 'whole' or 'slide'.")
        if not scales or min(scales) <= 0:
            raise SemsegError(f"{key}.scales={list(scales)} must be a non-empty list of positive factors.")
        if mode == "slide":
            check_tiling(crop_size, stride, key=key)
        self.mode, self.crop_size, self.stride = mode, crop_size, stride
        self.gaussian, self.batch_size = gaussian, batch_size
        self.flip, self.scales = flip, [float(s) for s in scales]
        self.key = key

    def check(self, net: SegmentationNet) -> None:
        """Refuse a net without the contract, or a crop it cannot process (smaller than its output stride)."""
        checked_net(net)
        if self.mode == "slide":
            check_tiling(self.crop_size, self.stride, net.output_stride, self.key)

    def __call__(self, net: SegmentationNet, images: torch.Tensor) -> torch.Tensor:
        if self.mode == "whole":
            run = net
        else:
            def run(x: torch.Tensor) -> torch.Tensor:
                return slide_inference(net, x, self.crop_size, self.stride, net.num_classes, self.gaussian, self.batch_size)
        return tta(run, images, self.flip, self.scales)
