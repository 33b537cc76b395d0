"""Transforms that work on images of any number of bands, and the pipeline rules for them.

`Normalize` replaces albumentations.Normalize in the transform configs. albumentations multiplies
mean and std by `max_pixel_value` (255), right for uint8 and wrong for semseg's float 0-1 images
(TIFFs, `data.in_channels` other than 3: semseg.data.io). Here uint8 images go through exactly
albumentations' arithmetic (the same pixels as before), float images through (x - mean) / std,
one mean and std per band.

albumentations 2.0.8 runs its geometric transforms (RandomScale, PadIfNeeded, RandomCrop, flips,
Rotate, Affine, Resize) on any number of float32 bands (it splits cv2 calls into chunks of 4
channels), band by band exactly as on one band. Its image-only transforms that assume RGB colour
(colour spaces, hue, gray/sepia, weather and lens effects) refuse other band counts: those, listed
in RGB_ONLY_TRANSFORMS (measured: each fails on 4- and 13-band float images), are dropped from the
pipelines of data with `data.in_channels` other than 3 (`drop_rgb_only`), with one log line.
Band-agnostic image-only transforms (blur, noise, brightness/contrast, gamma, ...) stay.
"""

import logging
from collections.abc import Callable

import albumentations as A
import numpy as np
from albucore import normalize  # what albumentations.Normalize calls

from semseg.errors import SemsegError

log = logging.getLogger(__name__)

RGB_ONLY_TRANSFORMS = frozenset({
    "CLAHE", "ChromaticAberration", "ColorJitter", "Equalize", "HEStain", "HueSaturationValue", "ISONoise",
    "PlanckianJitter", "RGBShift", "RandomFog", "RandomGravel", "RandomRain", "RandomSnow", "RandomSunFlare",
    "Spatter", "ToGray", "ToRGB", "ToSepia",
})


class Normalize(A.Normalize):
    """(pixel - mean) / std per band, on the 0-1 scale: uint8 pixels are divided by 255 first
    (exactly as albumentations.Normalize does), float pixels are taken as they are."""

    def __init__(self, mean, std, p: float = 1.0):
        mean, std = tuple(np.atleast_1d(mean).tolist()), tuple(np.atleast_1d(std).tolist())
        if len(mean) != len(std) or not all(v > 0 for v in std):
            raise SemsegError(
                f"data.mean={list(mean)} and data.std={list(std)} must hold one value per band each, every std above 0."
            )
        super().__init__(mean=mean, std=std, max_pixel_value=255.0, p=p)
        self.float_mean = np.array(mean, dtype=np.float32)
        self.float_denominator = np.reciprocal(np.array(std, dtype=np.float32))

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        bands = 1 if img.ndim == 2 else img.shape[-1]
        if len(self.float_mean) not in (1, bands):
            raise SemsegError(
                f"data.mean / data.std hold {len(self.float_mean)} values but the image has {bands} band(s) "
                "(data.in_channels); give one mean and std per band (semseg.data.band_statistics computes them)."
            )
        if img.dtype == np.uint8:
            return super().apply(img, **params)
        return normalize(img.astype(np.float32, copy=False), self.float_mean, self.float_denominator)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("mean", "std")


def _drop(node, dropped: list[str]) -> None:
    """Replace RGB-only transforms under `node` by NoOp (same probability: OneOf keeps its odds)."""
    children = getattr(node, "transforms", None)
    if not isinstance(node, A.BaseCompose) or children is None:
        return
    for position, child in enumerate(children):
        if type(child).__name__ in RGB_ONLY_TRANSFORMS:
            dropped.append(type(child).__name__)
            children[position] = A.NoOp(p=child.p)
        else:
            _drop(child, dropped)


def drop_rgb_only(transform: Callable | None, in_channels: int, which: str) -> Callable | None:
    """`transform` without its RGB-only transforms when the images have other than 3 bands."""
    if transform is None or in_channels == 3:
        return transform
    dropped: list[str] = []
    _drop(transform, dropped)
    if dropped:
        log.info("data.in_channels=%d: the %s transforms leave out %s (RGB only)", in_channels, which, ", ".join(dropped))
    return transform
