"""Reading image and mask files as arrays, with one clear error for any file that cannot be used.

Images come back as (H, W, 3) uint8 RGB as the user sees them: EXIF orientation applied,
grayscale, palette and RGBA converted, 16-bit scaled to 8 bits by the image's own range.
Masks come back as (H, W) uint8 raw values: the pixel values of an 8-bit grayscale or palette
file, or, for RGB colour-coded masks, the index of each pixel's colour in a given colour list.
What the raw values mean (class indices, ignore) is the dataset's business.
"""

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from semseg.errors import SemsegError

log = logging.getLogger(__name__)

IGNORE_INDEX = 255  # mask value that no loss or metric counts
# files Pillow reads that are images, for folder scans (datasets, predict)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_files(folder: str | Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files under `folder` and its subfolders whose suffix is one of `suffixes`, sorted.

    Symlinked subfolders are followed (each real folder once, so a link loop ends); names starting
    with `.` are skipped (macOS `._x.jpg`, `.ipynb_checkpoints/`, `.cache/`), as every scan of
    this project does.
    """
    return sorted(path for path in walk_files(Path(folder)) if path.suffix.lower() in suffixes)


def walk_files(folder: Path) -> Iterator[Path]:
    seen: set[str] = set()
    for directory, subfolders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in files:
            path = Path(directory, name)
            if not name.startswith(".") and path.is_file():
                yield path


UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except Image.DecompressionBombError as error:
        raise SemsegError(
            f"cannot read {what} {path}: {error} Pillow refuses images larger than "
            "PIL.Image.MAX_IMAGE_PIXELS; tile it into smaller images."
        ) from None
    except UNREADABLE as error:
        raise SemsegError(f"cannot read {what} {path}: {error}. Replace or remove the file.") from None


def _wide_to_8bit(image: Image.Image, path: Path) -> Image.Image:
    """16-bit or float grayscale to 8 bits by the image's own range (a plain convert would clip)."""
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    log.info("image %s is %s: scaled from its range [%g, %g] to 8 bits", path, image.mode, low, high)
    scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, turned upright by its EXIF orientation."""
    path = Path(path)
    with _open(path, "image") as image:
        try:
            image = ImageOps.exif_transpose(image)
        except UNREADABLE as error:  # a malformed EXIF block
            raise SemsegError(f"cannot read the EXIF orientation of image {path}: {error}. Re-save the image.") from None
        if image.mode in _WIDE_MODES:
            image = _wide_to_8bit(image, path)
        return np.array(image.convert("RGB"))


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image as `read_image` returns it, read from the header only."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _ROTATING_ORIENTATIONS:
                width, height = height, width
            return height, width
    except UNREADABLE as error:
        raise SemsegError(f"cannot read image {path}: {error}. Replace or remove the file.") from None


def stored_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of the pixels as stored, when an EXIF orientation rotates them for display."""
    with Image.open(path) as image:
        if image.getexif().get(0x0112) in _ROTATING_ORIENTATIONS:
            return image.size[1], image.size[0]
    return None


def read_mask(
    path: str | Path, colors: Sequence[Sequence[int]] | None = None, threshold: int | None = None
) -> np.ndarray:
    """A mask file as (H, W) uint8 raw values.

    8-bit grayscale ('L') and palette ('P') files give their pixel values, 1-bit ('1') files 0 and 1.
    RGB files, and palette files when `colors` is given, give the index of each pixel's colour in
    `colors`; without `colors`, an RGB file whose three channels are equal everywhere is read as
    grayscale. With `threshold`, any file is read as 8-bit grayscale and gives 1 where it is at
    least `threshold`, else 0: binary masks saved as JPEG or antialiased come back exact.
    Anything else (16-bit, colour without a colour list, a colour not in the list) is refused,
    naming the file and the fix.
    """
    path = Path(path)
    with _open(path, "mask") as mask:
        if threshold is not None:
            return (np.array(mask.convert("L")) >= threshold).astype(np.uint8)
        mode = mask.mode
        if mode == "1":
            return np.array(mask, dtype=np.uint8)
        if mode == "L" or (mode == "P" and not colors):
            return np.array(mask)
        if mode == "P":  # with data.colors, what counts is the colour shown, not the palette index
            mask = mask.convert("RGB")
            mode = "RGB"
        _refuse_mode(mode, path)
        rgb = np.array(mask.convert("RGB"))
    if colors:
        return colors_to_values(rgb, colors, path)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()
    raise SemsegError(
        f"mask {path} is an RGB colour image; list the colour of each raw value in data.colors "
        "(e.g. data.colors=[[0,0,0],[128,0,0]]: the i-th colour is raw value i), or save masks as "
        "8-bit grayscale or palette PNGs."
    )


def _refuse_mode(mode: str, path: Path) -> None:
    """Modes that are no raw values as they stand; binary masks of any mode can still be thresholded."""
    if mode in _WIDE_MODES:
        raise SemsegError(
            f"mask {path} is a {mode} (16-bit or wider) image; masks must be 8-bit. Save it as an "
            "8-bit grayscale or palette PNG of class values (e.g. with Pillow: "
            "Image.fromarray(values.astype('uint8')).save(...)), or, for a binary mask, set "
            "data.mask_threshold (e.g. 1: non-zero is foreground)."
        )
    if mode not in ("RGB", "RGBA"):
        raise SemsegError(
            f"mask {path} has mode {mode}; masks must be 8-bit grayscale ('L'), palette ('P'), 1-bit ('1') "
            "or RGB colour-coded with data.colors; for a binary mask, data.mask_threshold=128 reads any "
            "mode as grayscale."
        )


def colors_to_values(rgb: np.ndarray, colors: Sequence[Sequence[int]], path: Path) -> np.ndarray:
    """Map each pixel's RGB colour to its index in `colors`; an unlisted colour is an error."""
    table = np.asarray(colors, dtype=np.int64).reshape(-1, 3)
    if len(table) > 256:
        raise SemsegError(f"data.colors lists {len(table)} colours; masks hold at most 256 raw values.")
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table_codes = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    order = np.argsort(table_codes, kind="stable")
    position = np.searchsorted(table_codes[order], codes).clip(0, len(table) - 1)
    found = table_codes[order][position] == codes
    if not found.all():
        unknown = np.unique(codes[~found]).tolist()
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
        raise SemsegError(
            f"mask {path} holds colours not in data.colors: {shown}{' ...' if len(unknown) > 5 else ''}. "
            "Add them to data.colors (and map them with data.label_map, e.g. to 255 to ignore them)."
        )
    return order[position].astype(np.uint8)
