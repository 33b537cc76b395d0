"""Reading image and mask files as arrays, with one clear error for any file that cannot be used.

Images, by default (`in_channels=3`, no `bands`), come back as (H, W, 3) uint8 RGB as the user
sees them: EXIF orientation applied, grayscale, palette and RGBA converted, 16-bit grayscale
scaled to 8 bits by the image's own range. TIFFs of other kinds (more bands, or 16-bit / float
colour) and any image read with `in_channels` other than 3 or with `data.bands` come back as
(H, W, C) float32 on a 0-1 scale, whatever the file's dtype, so that one normalisation (a mean
and std per band on a 0-1 scale, like ImageNet's for RGB) serves every dtype:

    uint8 / 255,  uint16 / 65535,  int16 / 32767 clipped to -1..1 (-32768 is -1),
    float32 (and float64, float16) as stored (reflectances already are 0-1; other ranges are
    left to data.mean / data.std, see semseg.data.band_statistics).

Other dtypes (int32, uint32, ...) are refused, naming the file. TIFFs are read with tifffile
(GeoTIFF too: the georeferencing is ignored); a 3-D TIFF holds its bands along the axis that is
small (at most MAX_BANDS) and smaller than the other two, band-first (C, H, W) or band-last
(H, W, C); a 2-D page is one band. Their TIFF orientation tag is applied as Pillow applies EXIF
orientation. Compressed TIFFs other than deflate/packbits need the `imagecodecs` package.

Masks come back as (H, W) uint8 raw values: the pixel values of an 8-bit grayscale or palette
file, or, for RGB colour-coded masks, the index of each pixel's colour in a given colour list.
What the raw values mean (class indices, ignore) is the dataset's business.
"""

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from semseg.errors import SemsegError

log = logging.getLogger(__name__)

# files Pillow reads that are images, for folder scans (datasets, predict)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
TIFF_SUFFIXES = (".tif", ".tiff")
MAX_BANDS = 32  # a TIFF axis this small, and smaller than the other two, holds the bands
# what divides each integer dtype to the 0-1 scale (floats are taken as stored)
UNIT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.int16): 32767.0}


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


def read_rgb(path: str | Path) -> np.ndarray:
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


def read_image(path: str | Path, in_channels: int = 3, bands: Sequence[int] | None = None) -> np.ndarray:
    """An image file as the model's input before normalisation (see the module docstring).

    With `in_channels=3` and no `bands`: (H, W, 3) uint8 RGB for every file Pillow reads as an
    image (`read_rgb`), except TIFFs with more than 4 bands or 16-bit / float colour, which come
    back as (H, W, 3) float32 0-1 like every other case: (H, W, in_channels) float32 on a 0-1
    scale, the file's bands selected and ordered by `bands` (0-based). A band count (after
    `bands`) other than `in_channels` is one SemsegError naming the file.
    """
    return read_image_and_nodata(path, in_channels, bands)[0]


def read_image_and_nodata(
    path: str | Path, in_channels: int = 3, bands: Sequence[int] | None = None, nodata: float | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """`read_image`, and where `nodata` is given, the (H, W) bool map of the pixels where any of
    the selected bands holds `nodata` as stored in the file (before scaling; NaN matches NaN), else
    None. Those pixels are set to 0 in every band (as padding is), so a fill value such as -9999
    or NaN never reaches the network."""
    path = Path(path)
    if in_channels == 3 and bands is None and reads_as_rgb(path):
        raw = image = read_rgb(path)
    else:
        stored = read_bands(path)
        raw = select_bands(stored, bands, path)
        if raw.shape[-1] != in_channels:
            raise SemsegError(band_count_message(path, stored.shape[-1], in_channels, bands))
        image = unit_scale(raw, path)
    if nodata is None:
        return image, None
    invalid = (np.isnan(raw) if np.isnan(nodata) else raw == nodata).any(axis=-1)
    if invalid.any():
        image = image.copy() if image is raw else image
        image[invalid] = 0
    return image, invalid


def band_count_message(path: Path, count: int, in_channels: int, bands) -> str:
    held = f"{count} band(s)" + (f", {len(bands)} after data.bands={list(bands)}," if bands is not None else "")
    return (
        f"image {path} has {held} but data.in_channels={in_channels}. Set data.in_channels to the number of "
        "bands the model takes, and data.bands to the 0-based bands to use, in order (e.g. data.bands=[3,2,1] "
        "for three of them; data.in_channels=1 for grayscale)."
    )


def is_tiff(path: Path) -> bool:
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def reads_as_rgb(path: Path) -> bool:
    """Whether `read_image`'s default reads the file as 8-bit RGB, as semseg always did: any
    non-TIFF, and TIFFs of one band (any dtype Pillow reads) or 8-bit with 3 or 4 bands."""
    if not is_tiff(path):
        return True
    try:
        shape, dtype, _ = _tiff_header(path)
    except SemsegError:
        return True  # Pillow's reading gives its own error, as before
    count = _band_shape(shape, path)[2]
    return count == 1 or (dtype == np.uint8 and count in (3, 4))


def _tiff_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, TIFF orientation) of a TIFF's first series, from its header."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            tag = tif.pages[0].tags.get(274)
            return tuple(series.shape), np.dtype(series.dtype), int(tag.value) if tag is not None else 1
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as error:
        raise SemsegError(f"cannot read image {path}: {error}. Replace or remove the file.") from None


def _band_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """(H, W, bands) of an array shape: 2-D is one band; in 3-D the bands are on the axis that is at
    most MAX_BANDS and smaller than the other two (first or last). Leading axes of size 1 are dropped."""
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        if shape[0] <= MAX_BANDS and shape[0] < min(shape[1:]):
            return shape[1], shape[2], shape[0]
        if shape[2] <= MAX_BANDS and shape[2] < min(shape[:2]):
            return shape[0], shape[1], shape[2]
    raise SemsegError(
        f"image {path} has shape {shape}: semseg reads images of one or more bands as (bands, H, W) or "
        f"(H, W, bands) with at most {MAX_BANDS} bands, fewer than its height and width. Save it in one of "
        "these layouts (one image per file)."
    )


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, C) pixels turned upright as Pillow's exif_transpose turns them for `orientation`."""
    turns = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(turns[orientation](array)) if orientation in turns else array


def read_bands(path: str | Path, bands: Sequence[int] | None = None) -> np.ndarray:
    """An image's pixels as stored, (H, W, C) in the file's dtype, upright, bands chosen by `bands`.

    TIFFs through tifffile; other files through Pillow as they are (grayscale 1 band, RGB 3,
    RGBA 4, 16-bit grayscale uint16, palette as RGB)."""
    path = Path(path)
    return select_bands(_read_tiff(path) if is_tiff(path) else _read_pillow(path), bands, path)


def select_bands(raw: np.ndarray, bands: Sequence[int] | None, path: Path) -> np.ndarray:
    """The bands of (H, W, C) `raw` listed in `bands`, in that order (None: all)."""
    if bands is None:
        return raw
    wrong = [band for band in bands if not 0 <= band < raw.shape[-1]]
    if wrong:
        raise SemsegError(
            f"image {path} has {raw.shape[-1]} band(s) (0..{raw.shape[-1] - 1}), but data.bands={list(bands)} "
            f"asks for {wrong}; data.bands lists 0-based band indices of the files."
        )
    return np.ascontiguousarray(raw[..., list(bands)])


def _read_tiff(path: Path) -> np.ndarray:
    shape, _, orientation = _tiff_header(path)
    height, width, count = _band_shape(shape, path)
    try:
        data = tifffile.imread(path, series=0)
    except Exception as error:  # tifffile raises many types for broken or unsupported files
        hint = " Install the imagecodecs package (pip install imagecodecs) to read it." if "imagecodecs" in str(error) else ""
        raise SemsegError(f"cannot read image {path}: {type(error).__name__}: {error}.{hint or ' Replace or remove the file.'}") from None
    data = data.reshape(data.shape[-3:] if data.ndim > 3 else data.shape)
    if data.ndim == 2:
        data = data[..., None]
    elif data.shape[-1] != count or data.shape[:2] != (height, width):  # band-first
        data = np.moveaxis(data, 0, -1)
    return _orient(data, orientation)


def _read_pillow(path: Path) -> np.ndarray:
    with _open(path, "image") as image:
        try:
            image = ImageOps.exif_transpose(image)
        except UNREADABLE as error:
            raise SemsegError(f"cannot read the EXIF orientation of image {path}: {error}. Re-save the image.") from None
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
        elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            image = image.convert("L" if image.mode == "1" else "RGB")
        data = np.array(image)
    if image.mode == "I":  # Pillow's 16-bit PNGs: int32 holding 0..65535
        if data.size and (data.min() < 0 or data.max() > 65535):
            raise SemsegError(f"image {path} holds 32-bit integers outside 0..65535; save it as 8- or 16-bit.")
        data = data.astype(np.uint16)
    return data[..., None] if data.ndim == 2 else data


def unit_scale(raw: np.ndarray, path: str | Path = "") -> np.ndarray:
    """Pixels as stored to float32 on the 0-1 scale of the module docstring (int16 to -1..1)."""
    if raw.dtype.kind == "f":
        return raw.astype(np.float32, copy=False)
    scale = UNIT_SCALE.get(raw.dtype)
    if scale is None:
        raise SemsegError(
            f"image {path} holds {raw.dtype} pixels; semseg reads uint8, uint16, int16 and float images. "
            "Convert it (e.g. to float32 reflectances or uint16)."
        )
    scaled = raw.astype(np.float32) / np.float32(scale)
    return np.clip(scaled, -1.0, 1.0) if raw.dtype == np.int16 else scaled


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image as `read_image` returns it, read from the header only."""
    path = Path(path)
    if is_tiff(path):
        try:
            shape, _, orientation = _tiff_header(path)
            height, width, _ = _band_shape(shape, path)
            return (width, height) if orientation in _ROTATING_ORIENTATIONS else (height, width)
        except SemsegError:
            pass  # Pillow's reading below gives its own answer or error
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
    if is_tiff(Path(path)):
        try:
            shape, _, orientation = _tiff_header(Path(path))
            height, width, _ = _band_shape(shape, Path(path))
            return (height, width) if orientation in _ROTATING_ORIENTATIONS else None
        except SemsegError:
            pass
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
