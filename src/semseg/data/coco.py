"""`data=coco`: semantic masks from COCO instance annotations, as CVAT, Label Studio and Roboflow
export them.

    <root>/<annotations[split]>         one COCO JSON per split, e.g. annotations/instances_train.json
    <root>/<annotations>                or one JSON for all (CVAT's instances_default.json, Label
                                        Studio's result.json), split by data.split_fractions or
                                        data.split_files as data=folder splits one folder
    <root>/<image_dir>/<file_name>      the images it lists (`image_dir` may hold `{split}`)

An image's `file_name` is found where the tools put it: `<root>/<image_dir>/<file_name>` (CVAT,
Roboflow), else relative to the JSON's own folder (Label Studio's `images/<hash>-name.jpg`), else,
for an absolute, URL or Windows path or one that is not there, by its file name alone under
`<root>/<image_dir>` (Label Studio's `/data/upload/3/<hash>-name.jpg`); two files of that name
there are an error naming both. Item names are the images' paths under `<root>/<image_dir>`
without extension (their `file_name` without extension when they lie elsewhere).

Every annotation's `segmentation` is read: polygons, RLE with compressed (string) or uncompressed
(list) counts, and crowd regions (`iscrowd: 1`) alike, decoded by pycocotools. Each paints its
category's class in file order, so where annotations overlap the later one wins. `class_names`
picks categories by name and orders them (null: `background`, then every category in id order);
categories not listed are 255 (ignore), and so are the pixels no annotation covers unless the
list has `background`. Annotations without a segmentation (boxes only) paint nothing. Keys that
no rasterising needs (`iscrowd`, `area`, `bbox`, CVAT's `attributes`, Label Studio's `ignore`)
may be missing or hold anything.

The JSON is untrusted input: its structure, sizes and RLE counts are checked before pycocotools'
C code sees them. Masks are built once per file content and class list, every image of the file
at once, under `<cache_dir>/coco_masks/<key>/<image id>.png` (see semseg.data.annotations).
"""

import functools
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote

import numpy as np
from pycocotools import mask as coco_mask

from semseg.data.annotations import (
    background_value,
    cache_folder,
    check_class_count,
    check_image_size,
    content_key,
    folder_built_atomically,
    is_int,
    listed,
    png_bytes,
    read_json,
    size_differs,
    split_folder,
)
from semseg.data.datamodule import SegmentationDataModule, class_list
from semseg.data.image_mask_dataset import ImageMaskDataset
from semseg.data.io import image_files, image_size
from semseg.models.net import IGNORE_INDEX
from semseg.data.splits import WritesSplitLists, check_stages, first_available, select_split, split_options, unique_names
from semseg.errors import SemsegError

log = logging.getLogger(__name__)

BACKGROUND = "background"
FIX = "Export it again from the annotation tool as COCO JSON (COCO 1.0 / COCO instances)."
MAX_DIGITS = 7  # characters of one compressed RLE count: 35 bits, more than any image's pixels


@dataclass
class CocoFile:
    """The checked content of one COCO JSON: images in file order, categories, annotations by image."""

    path: Path
    content: bytes
    images: list[dict]
    categories: dict[int, str]
    annotations: dict[int, list[dict]]


def _records(data: dict, key: str, path: Path) -> list[dict]:
    records = data.get(key)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        what = "has no" if key not in data else "has a malformed"
        raise SemsegError(f"{path} {what} '{key}' list of objects, so it is not a COCO file. {FIX}")
    return records


def _categories(records: list[dict], path: Path) -> dict[int, str]:
    categories: dict[int, str] = {}
    for record in records:
        if not is_int(record.get("id")) or not isinstance(record.get("name"), str):
            raise SemsegError(f"{path}: category {record!r} needs an integer 'id' and a string 'name'. {FIX}")
        if record["id"] in categories:
            raise SemsegError(f"{path}: two categories have id {record['id']}. {FIX}")
        categories[record["id"]] = record["name"]
    return dict(sorted(categories.items()))


def _images(records: list[dict], path: Path) -> list[dict]:
    seen: set[int] = set()
    for record in records:
        where = f"{path}: image {record.get('id')!r} ({record.get('file_name')!r})"
        if not is_int(record.get("id")) or not isinstance(record.get("file_name"), str) or not record["file_name"]:
            raise SemsegError(f"{where} needs an integer 'id' and a 'file_name'. {FIX}")
        if record["id"] in seen:
            raise SemsegError(f"{path}: two images have id {record['id']}. {FIX}")
        seen.add(record["id"])
        check_image_size(record.get("width"), record.get("height"), where)
    return records


def _by_image(records: list[dict], path: Path, images: list[dict], categories: dict) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = defaultdict(list)
    image_ids = {image["id"] for image in images}
    orphans = [record for record in records if not is_int(record.get("image_id")) or record["image_id"] not in image_ids]
    if orphans:
        ids = list(dict.fromkeys(repr(record.get("image_id")) for record in orphans))
        raise SemsegError(
            f"{path}: {len(orphans)} annotation(s) are of image_id(s) {listed(ids)}, which no entry of 'images' "
            f"has (image ids {listed(sorted(image_ids))}). {FIX}"
        )
    for number, record in enumerate(records):
        where = f"{path}: annotation {record.get('id', f'#{number}')!r}"
        if not is_int(record.get("category_id")) or record["category_id"] not in categories:
            raise SemsegError(
                f"{where} is of category_id {record.get('category_id')!r}, which is no category "
                f"(ids {listed(list(categories))}). {FIX}"
            )
        by_image[record["image_id"]].append(record)
    return by_image


def read_coco(path: Path) -> CocoFile:
    """Read and check a COCO JSON: a dict with `images`, `annotations` and `categories` lists."""
    data, content = read_json(path, FIX)
    if not isinstance(data, dict):
        raise SemsegError(
            f"{path} holds a JSON {type(data).__name__}, not a COCO object with images, annotations and categories. {FIX}"
        )
    images = _images(_records(data, "images", path), path)
    annotations = _records(data, "annotations", path)
    categories = _categories(_records(data, "categories", path), path)
    return CocoFile(path, content, images, categories, _by_image(annotations, path, images, categories))


def default_class_names(categories: Mapping[int, str]) -> list[str]:
    """`background`, then each category name once, in id order."""
    return [BACKGROUND, *dict.fromkeys(name for name in categories.values() if name != BACKGROUND)]


@functools.lru_cache(maxsize=16)
def _class_names_of_file(path: str, size: int, modified: int) -> tuple[str, ...]:
    return tuple(default_class_names(read_coco(Path(path)).categories))


def annotation_path(annotations, split: str = "train") -> tuple[str, str]:
    """(the setting's name, the path under data.root) of a split's COCO JSON: `data.annotations`
    is one path for every split, or a mapping from split to path."""
    if isinstance(annotations, str):
        return "data.annotations", annotations
    if isinstance(annotations, Mapping) and isinstance(annotations.get(split), str):
        return f"data.annotations.{split}", annotations[split]
    if isinstance(annotations, Mapping) and split not in annotations:
        raise SemsegError(
            f"data.annotations has no file for split '{split}' (it names {sorted(annotations)}); add "
            f"data.annotations.{split}=<path of its COCO JSON under data.root>, or set data.splits."
        )
    raise SemsegError(
        f"data.annotations={annotations!r} must be the path of one COCO JSON under data.root "
        "(data.annotations=annotations/instances_default.json) or a file per split ({train: ..., val: ...})."
    )


def coco_class_names(root: str, annotations, split: str = "train") -> list[str]:
    """The default `data.class_names` of `data=coco`: `background`, then the file's categories.

    The config resolver `${coco_class_names:${data.root},${data.annotations}}`, so that
    `num_classes` is known when the model's config is composed: `annotations` is the one file, or
    the mapping whose train file is read (OmegaConf passes a DictConfig). A changed file is read again.
    """
    key, relative = annotation_path(annotations, split)
    path = Path(root) / relative
    try:
        stat = os.stat(path)
    except OSError:
        raise SemsegError(
            f"{key}={relative} names {path}, which does not exist; set data.root and data.annotations "
            "to where the COCO JSON files are (or list data.class_names yourself)."
        ) from None
    return list(_class_names_of_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


def class_lookup(class_names: Sequence[str], categories: Mapping[int, str], path: Path) -> dict[int, int]:
    """category id -> class index, or 255 for categories that `class_names` leaves out."""
    names = set(categories.values())
    unknown = [name for name in class_names if name not in names and name != BACKGROUND]
    if unknown:
        raise SemsegError(
            f"data.class_names lists {unknown}, which {'is no category' if len(unknown) == 1 else 'are no categories'} "
            f"of {path}; its categories are {sorted(names)} (and '{BACKGROUND}' is the pixels no annotation "
            "covers). Fix data.class_names, or drop it to take every category."
        )
    return {cid: class_names.index(name) if name in class_names else IGNORE_INDEX for cid, name in categories.items()}


def compressed_counts(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string, decoded here so they can be checked.

    Each count is written in 5-bit groups (character code - 48), low bits first; 0x20 marks that
    another group follows, 0x10 in the last group makes the number negative. From the third count
    on, each is stored as the difference to the count two places before it.
    """
    counts: list[int] = []
    value = shift = digits = 0
    for char in text:
        code = ord(char) - 48
        digits += 1
        if not 0 <= code < 64 or digits > MAX_DIGITS:
            raise ValueError(f"the character {char!r} at an odd place")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        counts.append(value + (counts[-2] if len(counts) > 1 else 0))
        value = shift = digits = 0
    if shift:
        raise ValueError("it ends in the middle of a count")
    return counts


def _rle(segmentation: dict, height: int, width: int, where: str) -> np.ndarray:
    if segmentation.get("size") != [height, width]:
        raise SemsegError(
            f"{where}: the RLE's size {segmentation.get('size')!r} is not the image's [height, width] "
            f"[{height}, {width}]. {FIX}"
        )
    counts = segmentation.get("counts")
    try:
        runs = compressed_counts(counts) if isinstance(counts, str) else counts
    except ValueError as error:
        raise SemsegError(f"{where}: the compressed RLE counts are broken ({error}). {FIX}") from None
    if not isinstance(runs, list) or not all(is_int(run) and run >= 0 for run in runs) or sum(runs) != height * width:
        raise SemsegError(
            f"{where}: the RLE counts must be non-negative run lengths adding up to height x width = "
            f"{height * width} pixels. {FIX}"
        )
    if isinstance(counts, str):
        rle = {"size": [height, width], "counts": counts.encode()}
    else:
        rle = coco_mask.frPyObjects(segmentation, height, width)
    return coco_mask.decode(rle).astype(bool)


def _polygons(polygons: list, height: int, width: int, where: str) -> np.ndarray:
    for polygon in polygons:
        if not isinstance(polygon, list) or not all(type(v) in (int, float) for v in polygon):
            raise SemsegError(
                f"{where}: a polygon must be a list of numbers [x1, y1, x2, y2, ...], not {str(polygon)[:80]}. {FIX}"
            )
        if len(polygon) < 6 or len(polygon) % 2:
            raise SemsegError(
                f"{where}: a polygon has {len(polygon)} numbers; it needs x, y pairs of at least 3 points. "
                "Delete or redraw that shape in the annotation tool."
            )
        values = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        limits = np.array([width, height])
        if not np.isfinite(values).all() or (values < -limits).any() or (values > 2 * limits).any():
            raise SemsegError(
                f"{where}: a polygon has points far outside the {width}x{height} image. Fix or delete the shape."
            )
    rles = coco_mask.frPyObjects(polygons, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def segmentation_mask(segmentation, height: int, width: int, where: str) -> np.ndarray | None:
    """The pixels one annotation covers (None for an annotation without a segmentation)."""
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, dict):
        return _rle(segmentation, height, width, where)
    if isinstance(segmentation, list):
        return _polygons(segmentation, height, width, where)
    raise SemsegError(
        f"{where}: 'segmentation' must be a list of polygons or an RLE object, not {type(segmentation).__name__}. {FIX}"
    )


def render(coco: CocoFile, image: dict, lookup: Mapping[int, int], background: int) -> np.ndarray:
    """One image's mask: every annotation paints its class, later ones over earlier ones."""
    height, width = image["height"], image["width"]
    mask = np.full((height, width), background, dtype=np.uint8)
    for number, annotation in enumerate(coco.annotations.get(image["id"], [])):
        where = f"{coco.path}: annotation {annotation.get('id', f'#{number}')!r} of image {image['file_name']!r}"
        region = segmentation_mask(annotation.get("segmentation"), height, width, where)
        if region is not None:
            mask[region] = lookup[annotation["category_id"]]
    return mask


def _is_foreign(file_name: str) -> bool:
    """A path that means nothing under data.root: absolute (POSIX or Windows) or a URL."""
    return file_name.startswith("/") or bool(PureWindowsPath(file_name).drive) or "://" in file_name


def _file_name_alone(name: str) -> str:
    """The last part of a path or URL, decoded: Label Studio writes `/data/upload/3/<name>` and
    `/data/local-files/?d=<folder>/<name>`, URL-quoted (`%20` for a space)."""
    name = unquote(name)
    if "?" in name:
        name = name.split("?", 1)[1].split("=", 1)[-1]
    return PurePosixPath(name).name


class ImageFinder:
    """Finds the images a COCO file names, by the rule of the module docstring."""

    def __init__(self, folder: Path, json_folder: Path):
        self.folder, self.json_folder = folder, json_folder
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, file_name: str) -> Path | None:
        """The image of one `file_name`; None when it is nowhere (the caller lists those)."""
        name = file_name.replace("\\", "/")
        if not _is_foreign(name):
            for base in (self.folder, self.json_folder):
                path = Path(os.path.normpath(base / name))
                if path.is_file():
                    return path
        return self._by_file_name(_file_name_alone(name), file_name)

    def _by_file_name(self, base_name: str, file_name: str) -> Path | None:
        """The one image of that file name under the folder, or None."""
        if self._by_name is None:  # scanned once, and only when a file_name needs it
            self._by_name = defaultdict(list)
            for path in image_files(self.folder):
                self._by_name[path.name].append(path)
        found = self._by_name.get(base_name, [])
        if len(found) > 1:
            raise SemsegError(
                f"the image {file_name!r} is not at its path, and {len(found)} files under {self.folder} have its "
                f"name {base_name!r}: {listed(found)}; which one is meant is unclear. Keep one, or set "
                "data.image_dir to the folder that holds the right one."
            )
        return found[0] if found else None

    def item_name(self, path: Path, file_name: str) -> str:
        """The path under the folder without extension; the normalised `file_name` for images elsewhere."""
        relative = os.path.relpath(path, os.path.normpath(self.folder))
        if Path(relative).parts[0] == "..":
            relative = file_name.replace("\\", "/").lstrip("/")
        return PurePosixPath(Path(relative).as_posix()).with_suffix("").as_posix()


class CocoDataset(ImageMaskDataset):
    """One split of a COCO annotation file, its masks rasterised into the cache (module docstring).

    Item names are the images' paths under data.image_dir without extension. Images that no
    annotation names are kept: all their pixels are `background` (or ignore when the class list
    has none), as an annotation tool exports images the annotator found empty. With
    `split_fractions` or `split_files` one file is split (semseg.data.splits); `split_lists` then
    holds every split's names.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        annotations: Mapping[str, str] | str,
        cache_dir: str | Path,
        class_names: Sequence[str] | None = None,
        image_dir: str = ".",
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        transform=None,
    ):
        self.root, self.split = Path(root), split
        image_dir = image_dir or "."
        self.fractions, self.split_seed, self.split_files = check_one_file(
            annotations, split_fractions, split_seed, split_files, image_dir)
        coco = read_coco(self._annotation_file(annotations))
        self.class_names = checked_class_names(class_names, coco)
        super().__init__(len(self.class_names), transform)
        folder = split_folder(self.root, image_dir, split, "data.image_dir")
        if not coco.images:
            raise SemsegError(
                f"split '{split}' has no images: {coco.path} lists none. Export the split with its images."
            )
        finder = ImageFinder(folder, coco.path.parent)
        paths = self._find_images(coco, finder, image_dir)
        names = [finder.item_name(path, image["file_name"]) for path, image in zip(paths, coco.images)]
        chosen = set(self._select(names, paths, folder))
        masks = cache_folder(cache_dir, "coco_masks") / content_key("coco", coco.content, self.class_names)
        if not masks.is_dir():
            self._build(coco, paths, masks)
        kept = [index for index, name in enumerate(names) if name in chosen]
        self.names = [names[index] for index in kept]
        self.image_paths = [paths[index] for index in kept]
        self.mask_paths = [masks / f"{coco.images[index]['id']}.png" for index in kept]

    def _annotation_file(self, annotations: Mapping[str, str] | str) -> Path:
        key, relative = annotation_path(annotations, self.split)
        path = self.root / relative
        if not path.is_file():
            raise SemsegError(
                f"{key}={relative} gives {path}, which does not exist. "
                "Set data.root and data.annotations to where the COCO JSON files are."
            )
        return path

    def _find_images(self, coco: CocoFile, finder: ImageFinder, image_dir: str) -> list[Path]:
        """Every image the file lists (all its masks are built at once), or the ones missing named."""
        paths = [finder.find(image["file_name"]) for image in coco.images]
        missing = [image["file_name"] for image, path in zip(coco.images, paths) if path is None]
        if missing:
            raise SemsegError(
                f"{len(missing)} of the {len(paths)} images that {coco.path} lists do not exist: "
                f"{listed(missing)}. A file_name is read relative to {finder.folder} (data.image_dir={image_dir}), "
                f"then to the JSON's folder {finder.json_folder}, then by its file name alone under "
                f"{finder.folder}; set data.image_dir to the folder that holds them, or add the images."
            )
        return paths

    def _select(self, names: list[str], paths: list[Path], folder: Path) -> list[str]:
        """This split's item names: all of the file's, or its share of them (semseg.data.splits)."""
        if self.fractions or self.split_files:
            unique_names(names, paths)
        chosen, self.split_lists = select_split(
            names, self.split, self.fractions, self.split_seed, self.split_files, self.root, folder)
        return chosen

    def _build(self, coco: CocoFile, paths: list[Path], masks: Path) -> None:
        """Rasterise every image's mask into a folder that appears whole (see annotations.py)."""
        log.info("building %d masks from %s in %s", len(coco.images), coco.path, masks)
        lookup = class_lookup(self.class_names, coco.categories, coco.path)
        background = background_value(self.class_names, [BACKGROUND])
        boxes_only = 0
        with folder_built_atomically(masks) as partial:
            for image, image_path in zip(coco.images, paths):
                actual = image_size(image_path)
                if actual != (image["height"], image["width"]):
                    raise SemsegError(size_differs(image_path, actual, (image["height"], image["width"]), coco.path))
                boxes_only += sum(not a.get("segmentation") for a in coco.annotations.get(image["id"], []))
                (partial / f"{image['id']}.png").write_bytes(png_bytes(render(coco, image, lookup, background)))
        if boxes_only:
            log.warning("%s: %d annotations have no segmentation (boxes only) and paint nothing", coco.path, boxes_only)


def check_one_file(annotations, fractions, seed, files, image_dir: str) -> tuple[dict | None, int, dict | None]:
    """The split settings, checked: one JSON (a path) is split by fractions or files, a JSON per
    split (a mapping) is not split again."""
    fractions, seed, files = split_options(fractions, seed, files, {"data.image_dir": image_dir})
    if isinstance(annotations, Mapping) and (fractions or files):
        key = "data.split_fractions" if fractions else "data.split_files"
        raise SemsegError(
            f"{key} splits one COCO file, but data.annotations={dict(annotations)} has a file per split; set "
            "data.annotations to the one file, e.g. data.annotations=annotations/instances_default.json."
        )
    if isinstance(annotations, str) and not (fractions or files):
        raise SemsegError(
            f"data.annotations={annotations} is one file for every split; split it with "
            "'data.split_fractions={train:0.8,val:0.2}' or data.split_files, or give a file per split, "
            "'data.annotations={train:annotations/train.json,val:annotations/val.json}'."
        )
    return fractions, seed, files


def checked_class_names(class_names: Sequence[str] | None, coco: CocoFile) -> list[str]:
    """`class_names` as a list (null: the file's own), refused when too long, repeated or no category."""
    names = class_list(class_names if class_names is not None else default_class_names(coco.categories))
    check_class_count(names)
    class_lookup(names, coco.categories, coco.path)
    return names


class CocoDataModule(WritesSplitLists, SegmentationDataModule):
    """`data=coco`: SegmentationDataModule over CocoDataset, keys at the top of `data`.

    `class_names` null takes `background` and the categories of the train split's file (the
    config fills it in with the `coco_class_names` resolver, so the model knows num_classes).
    `data.annotations` one path: the file is split by `split_fractions` (whose lists
    `prepare_data` writes to `splits_dir`, the run folder's `splits/`) or `split_files`, and
    `data.splits` names their splits. A `data.splits` entry may list candidates, as data=folder's.
    """

    def __init__(
        self,
        root: str,
        annotations: Mapping[str, str] | str,
        splits: Mapping[str, str | Sequence[str]],
        cache_dir: str,
        class_names: Sequence[str] | None = None,
        image_dir: str = ".",
        palette: Sequence[Sequence[int]] | None = None,
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        splits_dir: str | None = None,
        **kwargs,
    ):
        annotations = dict(annotations) if isinstance(annotations, Mapping) else annotations
        fractions, split_seed, split_files = check_one_file(
            annotations, split_fractions, split_seed, split_files, image_dir or ".")
        named = fractions or split_files or (annotations if isinstance(annotations, Mapping) else {})
        splits = {stage: first_available(names, named.__contains__) for stage, names in dict(splits).items()}
        check_stages(splits, fractions)
        if class_names is None:
            class_names = coco_class_names(root, annotations, splits["train"])
        dataset = functools.partial(
            CocoDataset, root=root, annotations=annotations, cache_dir=cache_dir,
            class_names=class_list(class_names), image_dir=image_dir, split_fractions=fractions,
            split_seed=split_seed, split_files=split_files,
        )
        super().__init__(dataset=dataset, class_names=class_names, splits=splits, root=root, palette=palette, **kwargs)
        self.split_fractions, self.splits_dir = fractions, splits_dir
