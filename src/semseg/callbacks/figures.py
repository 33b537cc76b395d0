"""Pictures of segmentation results, as numpy RGB arrays any logger or file can take."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from semseg.data.palette import IGNORE_INDEX, colorize  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_display(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Undo the input normalisation of a (3, H, W) float image; return (H, W, 3) uint8."""
    pixels = image.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def overlay_panel(image: np.ndarray, target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Image | ground truth | prediction, the masks blended over the image (ignore shown as is)."""

    def blend(mask: np.ndarray) -> np.ndarray:
        coloured = colorize(mask).astype(np.float32)
        mixed = 0.5 * image + 0.5 * coloured
        mixed[mask == IGNORE_INDEX] = coloured[mask == IGNORE_INDEX]
        return mixed.astype(np.uint8)

    return np.concatenate([image, blend(target), blend(prediction)], axis=1)


def confusion_figure(confusion: np.ndarray, class_names: list[str]) -> np.ndarray:
    """A row-normalised confusion matrix heat map (rows: truth, columns: prediction)."""
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=90)
    ax.set_yticks(ticks, class_names)
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
