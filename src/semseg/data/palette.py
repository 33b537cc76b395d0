"""Colour palettes for masks: the Pascal VOC bit-interleaving colour map."""

import numpy as np
from PIL import Image

IGNORE_INDEX = 255


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


IGNORE_COLOUR = (224, 224, 192)  # VOC's colour for 255


def colorize(mask: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """Map an (H, W) index mask to an (H, W, 3) RGB picture; values past the palette (255) are cream."""
    palette = voc_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    padded = np.tile(np.array(IGNORE_COLOUR, dtype=np.uint8), (256, 1))
    padded[: len(palette)] = palette[:256]
    return padded[np.asarray(mask).astype(np.int64).clip(0, 255)]


def save_palette_png(mask: np.ndarray, path) -> None:
    """Write an (H, W) index mask as a palette PNG: pixel values are class indices, shown in VOC colours."""
    png = Image.fromarray(mask.astype(np.uint8), mode="P")
    png.putpalette(voc_palette().flatten().tolist())
    png.save(path)
