"""Pictures of segmentation results, as numpy RGB arrays any logger or file can take."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from semseg.data.bands import rgb_band_indices  # noqa: E402
from semseg.models.net import IGNORE_INDEX  # noqa: E402
from semseg.data.normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from semseg.data.palette import colorize, full_palette  # noqa: E402

BACKGROUND = (245, 245, 245)  # letterbox and legend background
MAX_ROW_HEIGHT = 512


def to_display(image: np.ndarray, mean, std) -> np.ndarray:
    """Undo the input normalisation of a (3, H, W) float image; return (H, W, 3) uint8."""
    pixels = image.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def batch_image(image, datamodule) -> np.ndarray:
    """One (C, H, W) image tensor of a batch as (H, W, 3) uint8: its RGB view (`data.rgb_bands`,
    semseg.data.bands), un-normalised with the data's statistics (ImageNet's for a datamodule
    that has none)."""
    bands = rgb_band_indices(image.shape[0], getattr(datamodule, "rgb_bands", None))
    mean = np.asarray(getattr(datamodule, "mean", None) or IMAGENET_MEAN)
    std = np.asarray(getattr(datamodule, "std", None) or IMAGENET_STD)
    if len(mean) == image.shape[0]:
        mean, std = mean[bands], std[bands]
    return to_display(image.float().cpu().numpy()[bands], mean, std)


def overlay_panel(image: np.ndarray, target: np.ndarray, prediction: np.ndarray, palette=None) -> np.ndarray:
    """Image | ground truth | prediction, the masks blended over the image (ignore shown as is)."""

    def blend(mask: np.ndarray) -> np.ndarray:
        coloured = colorize(mask, palette).astype(np.float32)
        mixed = 0.5 * image + 0.5 * coloured
        mixed[mask == IGNORE_INDEX] = coloured[mask == IGNORE_INDEX]
        return mixed.astype(np.uint8)

    return np.concatenate([image, blend(target), blend(prediction)], axis=1)


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Stack panels of any sizes: each scaled to one height (the tallest, at most 512 pixels),
    then padded on the right to the widest, so images of mixed sizes and orientations line up."""
    height = min(max(row.shape[0] for row in rows), MAX_ROW_HEIGHT)
    scaled = []
    for row in rows:
        width = max(1, round(row.shape[1] * height / row.shape[0]))
        if row.shape[:2] != (height, width):
            row = np.array(Image.fromarray(row).resize((width, height), Image.Resampling.BILINEAR))
        scaled.append(row)
    width = max(row.shape[1] for row in scaled)
    canvas = np.full((len(scaled) * height, width, 3), BACKGROUND, dtype=np.uint8)
    for index, row in enumerate(scaled):
        canvas[index * height : (index + 1) * height, : row.shape[1]] = row
    return canvas


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def legend(class_names: list[str], palette, width: int) -> np.ndarray:
    """A strip `width` pixels wide: a colour swatch and the name of every class (and of ignore),
    wrapped onto as many lines as needed."""
    colours = full_palette(palette)
    entries = [(name, tuple(colours[index])) for index, name in enumerate(class_names)]
    entries.append(("ignore", tuple(colours[IGNORE_INDEX])))
    font, swatch, gap, line = _font(), 12, 10, 18
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    places, x, y = [], gap, 4
    for name, colour in entries:
        size = swatch + 4 + int(measure.textlength(name, font=font)) + gap
        if x > gap and x + size > width:
            x, y = gap, y + line
        places.append((x, y, name, colour))
        x += size
    strip = Image.new("RGB", (width, y + line + 2), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for x, y, name, colour in places:
        draw.rectangle((x, y + 2, x + swatch, y + 2 + swatch), fill=colour, outline=(80, 80, 80))
        draw.text((x + swatch + 4, y), name, fill=(20, 20, 20), font=font)
    return np.array(strip)


MAX_FIGURE_INCHES = 24


def confusion_figure(confusion: np.ndarray, class_names: list[str]) -> np.ndarray:
    """A row-normalised confusion matrix heat map (rows: truth, columns: prediction)."""
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = min(1.2 + 0.55 * len(class_names), MAX_FIGURE_INCHES)  # 150 classes (ADE20K) would be 8400 px a side
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    label_size = min(10.0, 0.55 * 72 * size / max(len(class_names), 1))  # names shrink to fit the cap
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=label_size)
    ax.set_yticks(ticks, class_names, fontsize=label_size)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if len(class_names) <= 25:
        for t in ticks:
            for p in ticks:
                ax.text(p, t, f"{rows[t, p]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if rows[t, p] > 0.5 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return np.array(Image.open(buffer).convert("RGB"))
