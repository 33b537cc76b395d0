"""The historical sliding-window segmenter: classify the k×k patch around each pixel.

A patch classifier (unpadded convolutions and poolings, then fully-connected layers) predicts the
class of the patch's centre pixel. The same weights run in two ways:

- naive: cut one patch per pixel (reflect padding at the borders) and classify each, in bounded
  chunks; overlapping patches recompute the same features, which is what FCN removed;
- dense: the FCN view. Fully-connected layers become convolutions over the whole image, and every
  stride is turned into a dilation of the layers after it (à trous), so the output keeps one
  prediction per pixel and equals the naive one.

Training samples `num_samples` pixel positions per image (see `sample_for_loss`).
"""

import torch
import torch.nn.functional as F
from torch import nn

from semseg.errors import SemsegError

MODES = ("naive", "dense")


class PatchClassifier(nn.Module):
    """Maps (B, in_channels, H, W) to (B, num_classes, H, W) by classifying the patch centred at each pixel.

    Args:
        num_classes: output classes.
        patch_size: odd side k of the square patch around each pixel.
        stages: output channels of each stage; a stage is two unpadded 3×3 conv-BN-ReLU layers
            and a 2×2 max-pool with stride 2.
        hidden: width of the fully-connected layer.
        mode: "naive" or "dense" (same logits, very different cost).
        num_samples: pixel positions per image that training classifies.
        chunk_size: patches classified at once in naive mode (bounds memory).
        in_channels: the image bands (data.in_channels).
    """

    def __init__(
        self,
        num_classes: int,
        patch_size: int = 33,
        stages: tuple[int, ...] = (32, 64),
        hidden: int = 64,
        mode: str = "dense",
        num_samples: int = 64,
        chunk_size: int = 4096,
        in_channels: int = 3,
    ):
        super().__init__()
        if patch_size < 3 or patch_size % 2 == 0:
            raise SemsegError(
                f"model.net.patch_size={patch_size}: the patch must have a centre pixel; use an odd "
                "size >= 3, e.g. 33."
            )
        layers: list[nn.Module] = []
        width = self.in_channels = in_channels
        for out in stages:
            for _ in range(2):
                layers += [nn.Conv2d(width, out, 3, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                width = out
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        side = self._feature_side(patch_size, len(stages))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.feature_shape = (width, side, side)
        self.mode = mode
        self.num_samples = num_samples
        self.chunk_size = chunk_size
        self.output_stride = 1

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise SemsegError(f"model.net.mode={mode!r}; choose one of {list(MODES)}.")
        self._mode = mode

    def _feature_side(self, patch_size: int, num_stages: int) -> int:
        try:
            with torch.no_grad():
                side = self.features.eval()(torch.zeros(1, self.in_channels, patch_size, patch_size)).shape[-1]
        except RuntimeError:  # a layer's input became smaller than its kernel
            side = 0
        self.features.train()
        if side < 1:
            raise SemsegError(
                f"model.net.patch_size={patch_size} is too small for {num_stages} "
                "stages of unpadded convolutions; use a larger patch or fewer stages."
            )
        return side

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """Reflect-pad by k // 2, so every pixel has a full patch centred on it."""
        half = self.patch_size // 2
        h, w = images.shape[-2:]
        if half >= min(h, w):
            raise SemsegError(
                f"image of {w}x{h} pixels is too small for reflect padding of a {self.patch_size}-pixel "
                f"patch; images must be larger than {half} pixels per side (or use a smaller patch_size)."
            )
        return F.pad(images, (half, half, half, half), mode="reflect")

    def classify_at(self, padded: torch.Tensor, batch: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Classify the patches whose centres are pixels (ys, xs) of images `batch`: (N, C) logits."""
        offsets = torch.arange(self.patch_size, device=padded.device)
        rows = (ys[:, None] + offsets)[:, :, None]  # (N, k, 1)
        cols = (xs[:, None] + offsets)[:, None, :]  # (N, 1, k)
        patches = padded.permute(0, 2, 3, 1)[batch[:, None, None], rows, cols]  # (N, k, k, in_channels)
        return self.classifier(self.features(patches.permute(0, 3, 1, 2)))

    def naive(self, images: torch.Tensor) -> torch.Tensor:
        """One patch per pixel, classified `chunk_size` at a time."""
        b, _, h, w = images.shape
        padded = self.pad(images)
        index = torch.arange(b * h * w, device=images.device)
        logits = images.new_empty(b * h * w, self.num_classes)
        for chunk in index.split(self.chunk_size):
            logits[chunk] = self.classify_at(padded, chunk // (h * w), chunk // w % h, chunk % w)
        return logits.view(b, h, w, self.num_classes).permute(0, 3, 1, 2)

    def dense(self, images: torch.Tensor) -> torch.Tensor:
        """The same network as convolutions over the whole image, strides turned into dilations."""
        h, w = images.shape[-2:]
        x = self.pad(images)
        dilation = 1
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, layer.weight, layer.bias, dilation=dilation * layer.dilation[0])
                dilation *= layer.stride[0]
            elif isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, layer.kernel_size, stride=1, dilation=dilation)
                dilation *= layer.stride
            else:  # per-position layers (BatchNorm in eval mode, ReLU) apply unchanged
                x = layer(x)
        _, fc, relu, out = self.classifier
        x = F.conv2d(x, fc.weight.view(-1, *self.feature_shape), fc.bias, dilation=dilation)
        x = F.conv2d(relu(x), out.weight[:, :, None, None], out.bias)
        return x[..., :h, :w]  # floor-mode pooling may leave extra positions at the far edges

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.dense(images) if self.mode == "dense" else self.naive(images)

    def sample_for_loss(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: classify `num_samples` random pixels per image.

        Returns (B, C, 1, N) logits and (B, 1, N) targets: the samples of each image as a 1×N
        strip, the image shape every segmentation loss takes.
        """
        b, _, h, w = images.shape
        n = self.num_samples
        batch = torch.arange(b, device=images.device).repeat_interleave(n)
        ys = torch.randint(h, (b * n,), device=images.device)
        xs = torch.randint(w, (b * n,), device=images.device)
        logits = self.classify_at(self.pad(images), batch, ys, xs)
        return logits.view(b, 1, n, -1).permute(0, 3, 1, 2), masks[batch, ys, xs].view(b, 1, n)
