"""`data=labelme`: masks drawn from labelme's JSON files, one file per image.

    <root>/<image_dir>/**/<name>.json      (`image_dir` may hold `{split}`; subfolders are scanned)

One folder of files without splits (labelme's usual output) is split by `split_fractions` or
`split_files`, as data=folder splits one folder (semseg.data.splits); item names are the files'
paths under `image_dir` without `.json`.

Each file's image is its `imagePath` (relative to the JSON's folder), or, when that is absent or
missing, the image embedded in the file as base64 `imageData` (extracted into the cache as PNG).
Shapes are drawn in file order, later over earlier, filling the pixels labelme's own conversion
fills (outline and inside): polygon, rectangle, circle (radius = the distance of its two points),
line and linestrip (10 pixels wide), and labelme 5's `mask` (a base64 PNG of the box between its
two points). `point` and `points` (labelme 5's set of prompt points) mark no area and are
skipped; any other type is refused, naming the known ones. Keys no drawing needs (`flags`,
`group_id`, `description`, `imageData: null`) may hold anything. A label is a `class_names` entry or
`__ignore__` (255); pixels no shape covers are `_background_` or `background` when the list has
one, else 255. The image size is `imageHeight` x `imageWidth` (the image's own when a file has
neither), checked against the image. Masks are built once per file content and class list,
under `<cache_dir>/labelme_masks/` (see semseg.data.annotations).
"""

import base64
import binascii
import functools
import hashlib
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from semseg.data.annotations import (
    background_value,
    cache_folder,
    check_class_count,
    check_image_size,
    check_point,
    content_key,
    listed,
    png_bytes,
    read_json,
    size_differs,
    split_folder,
    write_whole,
)
from semseg.data.datamodule import SegmentationDataModule, class_list
from semseg.data.image_mask_dataset import ImageMaskDataset
from semseg.data.io import IMAGE_SUFFIXES, UNREADABLE, image_files, image_size
from semseg.models.net import IGNORE_INDEX
from semseg.data.splits import WritesSplitLists, check_stages, first_available, select_split, split_options
from semseg.errors import SemsegError

log = logging.getLogger(__name__)

IGNORE_LABEL = "__ignore__"
BACKGROUND_LABELS = ("_background_", "background")
LINE_WIDTH = 10  # labelme's default width for line and linestrip shapes
AREA_SHAPES = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2, "mask": 2}  # least points
SKIPPED_SHAPES = ("point", "points")
SAVEABLE_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")  # embedded images kept as they are
FIX = "Open and save it again in labelme, or fix the file."


@dataclass
class Shape:
    label: str
    kind: str
    points: list[tuple[float, float]]
    where: str  # file and shape number, for messages
    pixels: np.ndarray | None = None  # a `mask` shape's own box of pixels


@dataclass
class LabelmeFile:
    """One labelme JSON: its bytes (the cache key), stated image size, image and raw shapes."""

    path: Path
    content: bytes
    size: tuple[int, int] | None  # (height, width) as the file states it
    image_path: str | None
    image_data: str | None
    raw_shapes: list
    shapes: list[Shape] = field(default_factory=list)


def read_labelme(path: Path) -> LabelmeFile:
    """Read and check one labelme JSON's structure (shapes are checked once the size is known)."""
    data, content = read_json(path, FIX)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise SemsegError(f"{path} is not a labelme file: it has no 'shapes' list. {FIX}")
    for key in ("imagePath", "imageData"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise SemsegError(f"{path}: '{key}' must be a string, not {type(data[key]).__name__}. {FIX}")
    height, width = data.get("imageHeight"), data.get("imageWidth")
    size = None  # old labelme files state no size: the image's own is used
    if height is not None or width is not None:
        size = check_image_size(width, height, f"{path} (imageWidth, imageHeight)")
    image_path = (data.get("imagePath") or "").replace("\\", "/") or None  # labelme on Windows writes backslashes
    return LabelmeFile(path, content, size, image_path, data.get("imageData") or None, data["shapes"])


def _mask_pixels(encoded, where: str) -> np.ndarray:
    """A `mask` shape's base64 PNG as a boolean array."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            check_image_size(*image.size, f"{where} (its mask)")
            return np.array(image.convert("L")) > 0
    except (binascii.Error, TypeError, *UNREADABLE) as error:
        raise SemsegError(f"{where}: its 'mask' is not a base64 PNG ({error}). {FIX}") from None


def check_mask_box(shape: Shape, height: int, width: int) -> tuple[int, int, int, int]:
    """The box (x1, y1, x2, y2, inclusive) a `mask` shape's pixels fill, which must fit them and the image."""
    (x1, y1), (x2, y2) = [(int(x), int(y)) for x, y in shape.points[:2]]
    if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
        raise SemsegError(
            f"{shape.where}: the mask's box {x1},{y1}..{x2},{y2} is not inside the {width}x{height} image. {FIX}"
        )
    if shape.pixels.shape != (y2 - y1 + 1, x2 - x1 + 1):
        raise SemsegError(
            f"{shape.where}: the mask is {shape.pixels.shape[1]}x{shape.pixels.shape[0]} pixels but its box "
            f"{x1},{y1}..{x2},{y2} is {x2 - x1 + 1}x{y2 - y1 + 1}. {FIX}"
        )
    return x1, y1, x2, y2


def parse_shape(raw, where: str, height: int, width: int) -> Shape | None:
    """One checked shape; None for the shapes that mark no area (points)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("label"), str):
        raise SemsegError(f"{where} is not a shape with a string 'label'. {FIX}")
    kind = raw.get("shape_type") or "polygon"  # labelme 3 wrote null for polygons
    if kind in SKIPPED_SHAPES:
        return None
    if kind not in AREA_SHAPES:
        raise SemsegError(
            f"{where} has shape_type {kind!r}, which semseg cannot draw; the types are "
            f"{', '.join([*AREA_SHAPES, *SKIPPED_SHAPES])} (points are skipped). Change or delete the shape."
        )
    points = raw.get("points")
    if not isinstance(points, list) or len(points) < AREA_SHAPES[kind]:
        count = len(points) if isinstance(points, list) else repr(points)
        raise SemsegError(
            f"{where}: a {kind} needs at least {AREA_SHAPES[kind]} points, it has {count}. Redraw or delete it in labelme."
        )
    shape = Shape(raw["label"], kind, [check_point(point, where, height, width) for point in points], where)
    if kind == "mask":
        shape.pixels = _mask_pixels(raw.get("mask"), where)
        check_mask_box(shape, height, width)
    return shape


def draw_shape(canvas: Image.Image, shape: Shape, value: int) -> None:
    """Paint one shape's pixels with `value`: its outline and inside, as labelme's conversion does."""
    draw, points = ImageDraw.Draw(canvas), shape.points
    if shape.kind == "polygon":
        draw.polygon(points, outline=value, fill=value)
    elif shape.kind == "rectangle":
        (xa, ya), (xb, yb) = points[:2]
        draw.rectangle([min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)], outline=value, fill=value)
    elif shape.kind == "circle":
        (cx, cy), (px, py) = points[:2]
        radius = math.hypot(px - cx, py - cy)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=value, fill=value)
    elif shape.kind in ("line", "linestrip"):
        draw.line(points, fill=value, width=LINE_WIDTH)
    else:  # mask: its own pixels, in the box between its two points
        x1, y1, x2, y2 = check_mask_box(shape, canvas.height, canvas.width)
        canvas.paste(value, (x1, y1, x2 + 1, y2 + 1), Image.fromarray(shape.pixels.astype(np.uint8) * 255))


def draw_mask(shapes: Sequence[Shape], size: tuple[int, int], values: Mapping[str, int], background: int) -> np.ndarray:
    """One image's mask: every shape in file order, later over earlier."""
    canvas = Image.new("L", (size[1], size[0]), background)
    for shape in shapes:
        draw_shape(canvas, shape, values[shape.label])
    return np.array(canvas)


def embedded_image(file: LabelmeFile, folder: Path) -> Path:
    """The file's `imageData` as an upright PNG in the cache, written once per image content."""
    digest = hashlib.sha256(file.image_data.encode()).hexdigest()[:32]
    target = folder / digest[:2] / f"{digest}.png"
    if target.is_file():
        return target
    try:
        with Image.open(io.BytesIO(base64.b64decode(file.image_data))) as image:
            check_image_size(*image.size, f"{file.path} (imageData)")
            upright = ImageOps.exif_transpose(image)
            upright = upright if upright.mode in SAVEABLE_MODES else upright.convert("RGB")
            buffer = io.BytesIO()
            upright.save(buffer, format="PNG")
    except (binascii.Error, *UNREADABLE) as error:
        raise SemsegError(f"{file.path}: its imageData is not a base64 image ({error}). {FIX}") from None
    write_whole(target, buffer.getvalue())
    return target


def label_values(class_names: Sequence[str]) -> dict[str, int]:
    """label -> mask value: the class index, and 255 for `__ignore__`."""
    if IGNORE_LABEL in class_names:
        raise SemsegError(
            f"data.class_names lists {IGNORE_LABEL}, labelme's label for pixels to ignore (they become 255); "
            "remove it from data.class_names."
        )
    return {name: index for index, name in enumerate(class_names)} | {IGNORE_LABEL: IGNORE_INDEX}


class LabelmeDataset(ImageMaskDataset):
    """One split of labelme JSON files, their masks drawn into the cache (module docstring).

    Item names are the JSON files' relative paths without `.json`, e.g. `street/0001`. Files
    without shapes are kept: their pixels are all background (or ignore).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        class_names: Sequence[str],
        cache_dir: str | Path,
        image_dir: str = "{split}",
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        transform=None,
    ):
        self.class_names = class_list(class_names)
        check_class_count(self.class_names)
        super().__init__(len(self.class_names), transform)
        self.root, self.split = Path(root), split
        self.values = label_values(self.class_names)
        self.fractions, self.split_seed, self.split_files = split_options(
            split_fractions, split_seed, split_files, {"data.image_dir": image_dir})
        json_files = self._json_files(image_dir)
        files = [read_labelme(path) for path in json_files]  # not kept: embedded images can be large
        self.image_paths = self._images(files, cache_folder(cache_dir, "labelme_images"))
        self._check_labels(files)
        masks = cache_folder(cache_dir, "labelme_masks")
        keys = [content_key("labelme", file.content, self.class_names) for file in files]
        self.mask_paths = [masks / key[:2] / f"{key}.png" for key in keys]
        self._build_missing(files)

    def _json_files(self, image_dir: str) -> list[Path]:
        """This split's labelme files: the split's folder, or its share of the one folder; sets `names`."""
        folder = split_folder(self.root, image_dir, self.split, "data.image_dir")
        json_files = image_files(folder, suffixes=(".json",))
        if not json_files:
            raise SemsegError(
                f"split '{self.split}' has no labelme files: nothing matches {folder}/**/*.json (data.root={self.root}, "
                f"data.image_dir={image_dir}). Put them there, or set data.image_dir / data.splits to your layout."
            )
        names = [path.relative_to(folder).with_suffix("").as_posix() for path in json_files]
        chosen, self.split_lists = select_split(names, self.split, self.fractions, self.split_seed, self.split_files,
                                                self.root, folder, suffixes=(".json", *IMAGE_SUFFIXES))
        chosen = set(chosen)
        self.names = [name for name in names if name in chosen]
        return [path for name, path in zip(names, json_files) if name in chosen]

    def _images(self, files: list[LabelmeFile], extracted: Path) -> list[Path]:
        """Each file's image: its imagePath when that exists, else its embedded imageData."""
        images, missing = [], []
        for file in files:
            named = Path(os.path.normpath(file.path.parent / file.image_path)) if file.image_path else None
            if named is not None and named.is_file():
                images.append(named)
            elif file.image_data:
                images.append(embedded_image(file, extracted))
            else:
                missing.append(f"{file.path} ({named or 'no imagePath'})")
        if missing:
            raise SemsegError(
                f"{len(missing)} labelme file(s) of split '{self.split}' have no image: {listed(missing)}. "
                "Their imagePath (relative to the JSON's folder) does not exist and they embed no imageData; "
                "put the images there, or save the files in labelme with image data."
            )
        return images

    def _check_labels(self, files: list[LabelmeFile]) -> None:
        """Check every shape, and that every label is a class (all labels of the split at once)."""
        for file, image in zip(files, self.image_paths):
            size = file.size or image_size(image)
            shapes = [parse_shape(raw, f"{file.path}: shape {n}", *size) for n, raw in enumerate(file.raw_shapes)]
            file.shapes = [shape for shape in shapes if shape is not None]
        found = {shape.label: file.path for file in files for shape in file.shapes}
        unknown = [label for label in found if label not in self.values]
        if unknown:
            raise SemsegError(
                f"labels {unknown} of split '{self.split}' (e.g. in {found[unknown[0]]}) are not in "
                f"data.class_names {self.class_names}; the labels found are {sorted(found)}. Add them to "
                f"data.class_names, or relabel them {IGNORE_LABEL} to ignore those pixels."
            )

    def _build_missing(self, files: list[LabelmeFile]) -> None:
        """Draw the masks not in the cache yet, each checked against its image's size first."""
        background = background_value(self.class_names, BACKGROUND_LABELS)
        todo = [index for index, path in enumerate(self.mask_paths) if not path.is_file()]
        if todo:
            log.info("drawing %d labelme masks of split '%s'", len(todo), self.split)
        for index in todo:
            file, image = files[index], self.image_paths[index]
            actual = image_size(image)
            if file.size is not None and actual != file.size:
                raise SemsegError(size_differs(image, actual, file.size, f"{file.path} (imageWidth, imageHeight)"))
            write_whole(self.mask_paths[index], png_bytes(draw_mask(file.shapes, actual, self.values, background)))


class LabelmeDataModule(WritesSplitLists, SegmentationDataModule):
    """`data=labelme`: SegmentationDataModule over LabelmeDataset, keys at the top of `data`.

    A `data.splits` entry may list candidates, the first whose folder exists (or that
    split_fractions / split_files names) taken, as data=folder's. With split_fractions,
    `prepare_data` writes each split's names to `splits_dir` (the run folder's `splits/`).
    """

    def __init__(
        self,
        root: str,
        class_names: Sequence[str],
        splits: Mapping[str, str | Sequence[str]],
        cache_dir: str,
        image_dir: str = "{split}",
        palette: Sequence[Sequence[int]] | None = None,
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        splits_dir: str | None = None,
        **kwargs,
    ):
        class_names = class_list(class_names)
        fractions, split_seed, split_files = split_options(
            split_fractions, split_seed, split_files, {"data.image_dir": image_dir})
        named = fractions or split_files
        exists = named.__contains__ if named else lambda name: (Path(root) / image_dir.format(split=name)).is_dir()
        splits = {stage: first_available(names, exists) for stage, names in dict(splits).items()}
        check_stages(splits, fractions)
        dataset = functools.partial(
            LabelmeDataset, root=root, class_names=class_names, cache_dir=cache_dir, image_dir=image_dir,
            split_fractions=fractions, split_seed=split_seed, split_files=split_files,
        )
        super().__init__(dataset=dataset, class_names=class_names, splits=splits, root=root, palette=palette, **kwargs)
        self.split_fractions, self.splits_dir = fractions, splits_dir
