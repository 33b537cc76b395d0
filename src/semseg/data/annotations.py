"""What the annotation-tool readers (`data=coco`, `data=labelme`) share: reading their JSON as
untrusted input, the class-count and image-size limits, and the cache their masks are built into.

Annotation tools store shapes, not masks. The readers rasterise each JSON file once into 8-bit PNG
masks (class index per pixel, 255 = ignore) under `<cache_dir>/<kind>/`, keyed by a hash of the
file's content and the class list: the same file with the same classes reuses its masks, and any
edit of either builds them again. Nothing is written beside the user's data. Each cache entry
appears whole or not at all (written to a temporary name, then renamed), so a run killed
mid-build, or two processes building at once, never leave a half-written mask behind.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from semseg.utils.atomic import replaced_atomically
from semseg.data.io import stored_size
from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError, listed  # noqa: F401  (readers import `listed` from here too)

MAX_SIDE = 2**15  # no annotation tool exports wider images; bigger values are broken files
MAX_CLASSES = IGNORE_INDEX  # class indices 0..254 fit an 8-bit mask beside 255 = ignore


def is_int(value) -> bool:
    """An integer in the JSON (JSON's true/false are bools, which Python counts as ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def read_json(path: Path, fix: str) -> tuple[object, bytes]:
    """A JSON file's parsed value and its bytes (the cache key hashes them); `fix` ends the messages."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise SemsegError(f"cannot read {path}: {error.strerror or error}. {fix}") from None
    try:
        return json.loads(content), content
    except json.JSONDecodeError as error:
        raise SemsegError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}). {fix}"
        ) from None
    except (UnicodeDecodeError, RecursionError, ValueError) as error:
        raise SemsegError(f"{path} is not valid JSON ({type(error).__name__}: {error}). {fix}") from None


def check_class_count(class_names: Sequence[str]) -> None:
    """Masks are 8-bit with 255 as ignore: at most 255 classes."""
    if len(class_names) > MAX_CLASSES:
        raise SemsegError(
            f"data.class_names has {len(class_names)} classes; 8-bit masks hold at most {MAX_CLASSES} "
            f"(255 is ignore). List the classes to train in data.class_names."
        )


def check_image_size(width, height, where: str) -> tuple[int, int]:
    """(height, width) of an annotated image, refused unless positive, bounded integers.

    The JSON is untrusted input: a broken or hostile file must not make us allocate gigabytes.
    """
    if not (is_int(width) and is_int(height)) or width < 1 or height < 1:
        raise SemsegError(f"{where}: width={width!r}, height={height!r} must be positive integers. Re-export the file.")
    limit = Image.MAX_IMAGE_PIXELS
    if width > MAX_SIDE or height > MAX_SIDE or (limit is not None and width * height > limit):
        raise SemsegError(
            f"{where}: {width}x{height} is larger than semseg reads (at most {MAX_SIDE} pixels a side and "
            f"PIL.Image.MAX_IMAGE_PIXELS={limit} in all); tile the image into smaller ones."
        )
    return height, width


def check_point(point, where: str, height: int, width: int) -> tuple[float, float]:
    """One (x, y) of a shape: finite numbers, at most an image size outside the image (farther
    is a broken file, and would make the rasteriser walk an enormous outline)."""
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        raise SemsegError(f"{where}: the point {point!r} is not an [x, y] pair. Re-export the file.")
    x, y = point
    for value, side in ((x, width), (y, height)):
        if not (is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise SemsegError(f"{where}: the coordinate {value!r} is not a number. Re-export the file.")
        if not -side <= value <= 2 * side:
            raise SemsegError(
                f"{where}: the coordinate {value} lies far outside the {width}x{height} image. Fix or delete the shape."
            )
    return float(x), float(y)


def size_differs(image_path: Path, actual_hw, file_hw, where: str) -> str:
    """The message for an image whose size is not the one its annotation file states."""
    message = (
        f"image {image_path} is {actual_hw[1]}x{actual_hw[0]} but {where} says it is {file_hw[1]}x{file_hw[0]}; "
        "the shapes were drawn on another image. Re-export the annotations for this image, or restore the image."
    )
    if stored_size(image_path) == tuple(file_hw):
        message += (
            " The image's EXIF orientation turns it for display (semseg reads images upright); the "
            "annotations match the unturned pixels: save the image without the EXIF orientation tag."
        )
    return message


def background_value(class_names: Sequence[str], labels: Sequence[str]) -> int:
    """The class of pixels no shape covers: the first of `labels` in the list, else 255 (ignore)."""
    return next((class_names.index(label) for label in labels if label in class_names), IGNORE_INDEX)


def content_key(kind: str, content: bytes, class_names: Sequence[str]) -> str:
    """The cache key of masks built from one annotation file with one class list."""
    digest = hashlib.sha256(f"{kind}\n{json.dumps(list(class_names))}\n".encode())
    digest.update(content)
    return digest.hexdigest()[:32]


def cache_folder(cache_dir: str | Path | None, kind: str) -> Path:
    """`<cache_dir>/<kind>`; there is no default beside the data to fall back on."""
    if cache_dir is None:
        raise SemsegError(
            f"data.cache_dir is not set: data={kind.split('_')[0]} builds its masks there (never beside your "
            "data). Set it, e.g. data.cache_dir=${paths.data_dir}/.cache (the config's default)."
        )
    return Path(cache_dir) / kind


def png_bytes(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def unwritable(path: Path, error: OSError) -> SemsegError:
    return SemsegError(
        f"cannot write the masks into the cache {path}: {error.strerror or error}. Free some space, or set "
        "data.cache_dir (default: paths.data_dir/.cache) to a folder you can write."
    )


def write_whole(path: Path, data: bytes) -> None:
    """Write a cache file that replaces `path` only once it is whole."""
    try:
        with replaced_atomically(path) as file:
            file.write(data)
    except OSError as error:
        raise unwritable(path.parent, error) from None


@contextlib.contextmanager
def folder_built_atomically(final: Path) -> Iterator[Path]:
    """A temporary folder to fill, renamed to `final` when the block ends without an error.

    One COCO file gives a folder of masks; the rename makes it appear whole. If another process
    finished the same folder first, ours is dropped (the content is the same).
    """
    partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        partial.mkdir(parents=True)  # with the umask's permissions, like every other cache file
    except OSError as error:
        raise unwritable(final.parent, error) from None
    try:
        yield partial
        try:
            os.rename(partial, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):
            raise unwritable(final.parent, error) from None
        raise


def split_folder(root: Path, template: str, split: str, key: str) -> Path:
    """`root / template.format(split=split)`, which must be a folder (the message lists the ones there)."""
    folder = root / template.format(split=split)
    if not folder.is_dir():
        parent = folder.parent if folder.parent.is_dir() else root
        available = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        raise SemsegError(
            f"{key}={template} gives {folder} for split '{split}', which does not exist"
            f"{f'; folders in {parent}: {available}' if available else ''}. Set data.root, {key} or "
            "data.splits to your layout."
        )
    return folder
