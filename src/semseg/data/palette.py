"""Colour palettes for masks: the Pascal VOC bit-interleaving colour map, or a dataset's own colours."""

import numpy as np
from PIL import Image

IGNORE_COLOUR = (224, 224, 192)  # VOC's colour for 255


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """Return the (num_colors, 3) uint8 VOC colour map (class 0 black, 255 cream)."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def full_palette(palette=None) -> np.ndarray:
    """A (256, 3) uint8 table: the dataset's colours first (None: VOC's), the VOC map after, 255 cream."""
    table = voc_palette()
    if palette is not None and len(palette):
        colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:255]
        table[: len(colours)] = colours
    table[255] = IGNORE_COLOUR
    return table


def colorize(mask: np.ndarray, palette=None) -> np.ndarray:
    """Map an (H, W) index mask to an (H, W, 3) RGB picture (255, ignore, in cream)."""
    return full_palette(palette)[np.asarray(mask).astype(np.int64).clip(0, 255)]


def save_palette_png(mask: np.ndarray, path, palette=None) -> None:
    """Write an (H, W) index mask as a palette PNG: pixel values are class indices, shown in the palette's colours."""
    png = Image.fromarray(mask.astype(np.uint8), mode="P")
    png.putpalette(full_palette(palette).flatten().tolist())
    png.save(path)
