"""The embedded default dataset: textured shapes in random colours, in the VOC layout.

Each image is a smooth background with a few overlapping shapes. A shape's class is its
*texture* (stripes, checkers, dots, crosshatch); its two colours are drawn at random, so a pixel's
colour says nothing about its class and a model must look at the neighbourhood. Masks get a
255 (ignore) band along class boundaries, like Pascal VOC's object borders.

Generation is deterministic in the seed and runs once: the files are cached under `root`, with a
`generator.json` that records the settings so a change of settings regenerates.
"""

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from semseg.models.net import IGNORE_INDEX
from semseg.data.palette import save_palette_png
from semseg.data.voc_layout import (
    IMAGE_DIR,
    MASK_DIR,
    VOCLayoutDataset,
    write_split_lists,
)
from semseg.errors import SemsegError

CLASS_NAMES = ("background", "stripes", "checkers", "dots", "crosshatch")
GENERATOR_VERSION = 1
STAMP = "generator.json"  # the generator's settings, and its mark on the folders it wrote


def _shifted_grid(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates with a random shift, axes swapped half of the time."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx, yy) if rng.random() < 0.5 else (yy, xx)
    return u + rng.uniform(0, 100), v + rng.uniform(0, 100)


def texture(class_index: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An (h, w) float pattern in [0, 1] that identifies the class."""
    u, v = _shifted_grid(h, w, rng)
    period = rng.uniform(6.0, 10.0)
    phase_u, phase_v = (u % period) / period, (v % period) / period
    if class_index == 0:  # background: a smooth ramp, no texture
        return (u - u.min()) / max(float(np.ptp(u)), 1.0)
    if class_index == 1:  # stripes
        return (phase_u < 0.5).astype(np.float32)
    if class_index == 2:  # checkers
        return ((phase_u < 0.5) ^ (phase_v < 0.5)).astype(np.float32)
    if class_index == 3:  # dots
        return (((phase_u - 0.5) ** 2 + (phase_v - 0.5) ** 2) < 0.09).astype(np.float32)
    if class_index == 4:  # crosshatch: thin lines in two directions
        return ((phase_u < 0.25) | (phase_v < 0.25)).astype(np.float32)
    raise ValueError(f"no texture for class {class_index}")


def _shape_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random ellipse or rotated rectangle, as a boolean (h, w) mask."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    ry, rx = rng.uniform(0.12, 0.35) * h, rng.uniform(0.12, 0.35) * w
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    a = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    b = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    if rng.random() < 0.5:
        return a**2 + b**2 <= 1.0
    return (np.abs(a) <= 1.0) & (np.abs(b) <= 1.0)


def _boundary(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` of a change of label."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    grown = edge.copy()
    for _ in range(width - 1):
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown.copy()
    return grown


def _two_colours(rng: np.random.Generator, min_distance: float = 80.0) -> np.ndarray:
    """Two random RGB colours far enough apart for the texture to be visible."""
    while True:
        colours = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        if np.linalg.norm(colours[0] - colours[1]) >= min_distance:
            return colours


def _paint(canvas: np.ndarray, region: np.ndarray, pattern: np.ndarray, rng) -> None:
    colours = _two_colours(rng)
    painted = colours[0] * (1 - pattern[..., None]) + colours[1] * pattern[..., None]
    canvas[region] = painted[region]


def make_sample(size: int | tuple[int, int], rng: np.random.Generator, max_shapes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (H,W,3), mask uint8 (H,W)) pair; `size` is a side or (height, width)."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    num_classes = len(CLASS_NAMES)
    image = np.zeros((h, w, 3), dtype=np.float32)
    labels = np.zeros((h, w), dtype=np.uint8)
    everywhere = np.ones((h, w), dtype=bool)
    _paint(image, everywhere, texture(0, h, w, rng), rng)
    for _ in range(rng.integers(1, max_shapes + 1)):
        class_index = int(rng.integers(1, num_classes))
        region = _shape_mask(h, w, rng)
        _paint(image, region, texture(class_index, h, w, rng), rng)
        labels[region] = class_index
    image += rng.normal(0, 6, size=image.shape)
    mask = labels.copy()
    mask[_boundary(labels, width=1)] = IGNORE_INDEX
    return np.clip(image, 0, 255).astype(np.uint8), mask


def generate(
    root: str | Path,
    seed: int = 0,
    image_size: int = 128,
    num_train: int = 800,
    num_val: int = 100,
    num_test: int = 100,
    sizes: list[list[int]] | None = None,
) -> Path:
    """Write the dataset under `root` unless an identical one is already there.

    `sizes` ([[height, width], ...], used in turn) gives images of several sizes instead of
    `image_size` squares. Only a folder this generator wrote (its `generator.json` inside) is
    ever replaced; any other non-empty folder is refused, so a mistyped `data.root` cannot
    destroy a user's files.
    """
    root = Path(root)
    settings = dict(
        version=GENERATOR_VERSION, seed=seed, image_size=image_size,
        num_train=num_train, num_val=num_val, num_test=num_test,
    )
    if sizes:
        settings["sizes"] = [[int(h), int(w)] for h, w in sizes]
    stamp = root / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return root
    refuse_foreign_folder(root)
    tmp = root.with_name(root.name + ".partial")
    refuse_foreign_folder(tmp, key=f"the generator's working folder (beside data.root) {tmp}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / STAMP).write_text("{}")  # marks the folder as the generator's before anything else is in it
    (tmp / IMAGE_DIR).mkdir()
    (tmp / MASK_DIR).mkdir()
    rng = np.random.default_rng(seed)
    splits = {"train": num_train, "val": num_val, "test": num_test}
    shapes = settings.get("sizes") or [[image_size, image_size]]
    ids: dict[str, list[str]] = {}
    count = 0
    for split, number in splits.items():
        ids[split] = [f"{split}_{i:05d}" for i in range(number)]
        for image_id in ids[split]:
            image, mask = make_sample(tuple(shapes[count % len(shapes)]), rng)
            count += 1
            Image.fromarray(image).save(tmp / IMAGE_DIR / f"{image_id}.jpg", quality=95)
            save_palette_png(mask, tmp / MASK_DIR / f"{image_id}.png")
    write_split_lists(tmp, ids)
    (tmp / STAMP).write_text(json.dumps(settings, indent=2))
    if root.exists():
        shutil.rmtree(root)  # ours: refuse_foreign_folder let it through
    tmp.rename(root)  # a half-written dataset is never mistaken for a finished one
    return root


def refuse_foreign_folder(folder: Path, key: str | None = None) -> None:
    """Refuse to replace a non-empty folder that this generator did not write."""
    if not folder.exists() or (folder / STAMP).is_file():
        return
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        return
    raise SemsegError(
        f"{key or f'data.root={folder}'} already holds files that the synthetic data generator did not write "
        f"(no {STAMP} there); semseg will not touch them. For your own images and masks use "
        "data=folder data.root=<that folder>; to generate the synthetic data, point data.root at an "
        "empty or new folder."
    )


class SyntheticTextures(VOCLayoutDataset):
    """The generated dataset, read back through the VOC layout reader."""

    def __init__(self, root: str | Path, split: str, transform=None):
        super().__init__(root, split, num_classes=len(CLASS_NAMES), transform=transform)
