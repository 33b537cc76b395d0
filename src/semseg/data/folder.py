"""Your own dataset: a folder of images and a folder of masks, paired by relative path and stem.

    <root>/images/<split>/<any/sub/folders>/<name>.<jpg|png|tif|bmp|...>
    <root>/masks/<split>/<any/sub/folders>/<name><mask_suffix>.png

`image_dir` and `mask_dir` are templates (`{split}` is replaced by the split name), so other
layouts need no renaming: CamVid's `train/` + `trainannot/` is `image_dir={split}`,
`mask_dir={split}annot`; masks beside their images as `x_mask.png` is `mask_dir=image_dir`,
`mask_suffix=_mask`. Names that differ otherwise pair by `pair_key`, a regular expression whose
first group is the key (DRIVE's `21_training.tif` and `21_manual1.gif`: `pair_key='^(\\d+)_'`).

Splits are folders by default; one folder is split by `split_fractions` (a seeded hash of each
name, see semseg.data.splits) or by `split_files` (lists of names, as VOC's ImageSets).

Images are read by semseg.data.io with `in_channels`, `bands` and `nodata` (semseg.data.bands):
8-bit RGB by default; multi-band and 16-bit TIFFs (GeoTIFF too) with data.in_channels /
data.bands, as float32 on a 0-1 scale; pixels equal to `nodata` in any band get mask 255.

Masks hold raw values: 8-bit grayscale, palette or 1-bit files, or RGB colour-coded ones with
`colors` (the i-th colour is raw value i); `mask_threshold` reads binary masks of any format,
JPEG too, as 0/1. `reduce_zero_label` (ADE20K's convention) makes raw 0 ignore and raw k class
k-1. `label_map` then maps chosen raw values to class indices or 255 (ignore): its keys are always
the values in the files and its targets always class indices, whatever `reduce_zero_label` does
to the values it does not list. Every raw value must end up a class or 255.
"""

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from semseg.data.annotations import split_folder
from semseg.data.datamodule import SegmentationDataModule, class_list
from semseg.data.image_mask_dataset import ImageMaskDataset
from semseg.data.io import IMAGE_SUFFIXES, image_files, read_mask
from semseg.models.net import IGNORE_INDEX
from semseg.data.splits import (
    assign_fractions,
    check_fractions,
    check_one_source,
    check_seed,
    check_stages,
    first_available,
    match_names,
    not_a_mapping,
    read_split_file,
    write_split_lists,
)
from semseg.errors import SemsegError, listed

log = logging.getLogger(__name__)

LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
LABEL_MAP_EXAMPLE = "e.g. data.label_map={255:1} (raw value 255 is class 1) or {0:255} (ignore raw 0)"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def label_pairs(label_map) -> dict[int, int]:
    """`data.label_map` as {raw value: target}, integers only: a float target would be truncated
    silently, a name or a list is no mapping at all. Digit strings are taken as keys (quoted YAML)."""
    if label_map is None:
        return {}
    if not isinstance(label_map, Mapping):
        shell = (" (the shell turned an unquoted {a,b} into two words: quote it, 'data.label_map={0:255,11:255}')"
                 if isinstance(label_map, str) and ":" in label_map else "")
        raise SemsegError(
            f"data.label_map={label_map!r} must map raw mask values to class indices, {LABEL_MAP_EXAMPLE}{shell}."
        )
    pairs = {}
    for raw, target in label_map.items():
        key = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
        if not (_is_int(key) and _is_int(target)):
            raise SemsegError(
                f"data.label_map entry {raw!r}: {target!r} is not integer: keys are raw mask values (0..255) and "
                f"values class indices or {IGNORE_INDEX}, {LABEL_MAP_EXAMPLE}."
            )
        pairs[key] = target
    return pairs


def label_lookup(num_classes: int, label_map: Mapping | None, reduce_zero_label: bool = False) -> np.ndarray:
    """A 256-entry table raw value -> class index or 255.

    Unlisted values map to themselves, or with `reduce_zero_label` 0 to 255 and k to k-1 (255
    stays ignore), mmsegmentation's reading of ADE20K; `label_map` entries override either.
    Targets above 254 other than 255 are refused: masks are 8-bit, 255 is ignore, nothing may wrap.
    """
    if not isinstance(reduce_zero_label, bool | np.bool_):
        raise SemsegError(f"data.reduce_zero_label={reduce_zero_label!r} must be true or false.")
    table = np.arange(256, dtype=np.int64)
    if reduce_zero_label:
        table = np.where(table == 0, IGNORE_INDEX, table - 1)
        table[IGNORE_INDEX] = IGNORE_INDEX
    for raw, target in label_pairs(label_map).items():
        if not 0 <= raw <= 255:
            raise SemsegError(f"data.label_map key {raw} is not a raw mask value (0..255).")
        if not (0 <= target < min(num_classes, IGNORE_INDEX) or target == IGNORE_INDEX):
            raise SemsegError(
                f"data.label_map maps {raw} to {target}, which is neither a class index "
                f"(0..{min(num_classes, IGNORE_INDEX) - 1}, one per data.class_names entry) nor {IGNORE_INDEX} (ignore)."
            )
        table[raw] = target
    return table


def check_threshold(value, colors) -> int | None:
    """`data.mask_threshold`: an integer 1..255 or null; it reads grayscale, so not with data.colors."""
    if value is None:
        return None
    if not _is_int(value) or not 1 <= value <= 255:
        raise SemsegError(
            f"data.mask_threshold={value!r} must be an integer from 1 to 255 (mask pixels at least that "
            "bright become 1, the rest 0), e.g. data.mask_threshold=128; null reads raw values."
        )
    if colors:
        raise SemsegError(
            "data.mask_threshold and data.colors are both set: a threshold reads masks as grayscale 0/1, "
            "colours read RGB colour-coded masks. Keep one (data.colors=null or data.mask_threshold=null)."
        )
    return value


def compile_pair_key(pattern, mask_suffix: str) -> re.Pattern | None:
    """`data.pair_key` compiled; it replaces data.mask_suffix, so both together are refused."""
    if pattern is None or pattern == "":
        return None
    if not isinstance(pattern, str):
        raise SemsegError(f"data.pair_key={pattern!r} must be a regular expression, e.g. data.pair_key='^(\\d+)_'.")
    if mask_suffix:
        raise SemsegError(
            f"data.pair_key and data.mask_suffix={mask_suffix} are both set; with data.pair_key the key alone "
            "pairs images and masks: set data.mask_suffix='' and let the expression skip the suffix, e.g. "
            f"data.pair_key='^(.+?)({re.escape(mask_suffix)})?$'."
        )
    try:
        return re.compile(pattern)
    except re.error as error:
        raise SemsegError(f"data.pair_key='{pattern}' is not a regular expression: {error}.") from None


def scan(folder: Path, suffix: str = "", exclude_suffix: str = "") -> dict[str, Path]:
    """Image files under `folder` (subfolders too) by key: relative path without extension
    and without `suffix`. Files whose stem does not end with `suffix` are not taken; files whose
    stem ends with `exclude_suffix` neither. Two files with one key are an error."""
    found: dict[str, Path] = {}
    for path in image_files(folder):
        stem = path.stem
        if (suffix and not stem.endswith(suffix)) or (exclude_suffix and stem.endswith(exclude_suffix)):
            continue
        relative = path.relative_to(folder).with_name(stem[: len(stem) - len(suffix)])
        key = relative.as_posix()
        if key in found:
            raise SemsegError(
                f"{found[key]} and {path} have the same name apart from the extension, so a mask "
                "cannot tell which image it belongs to. Keep one of them, or rename one."
            )
        found[key] = path
    return found


def rekey(found: dict[str, Path], pattern: re.Pattern, what: str) -> dict[str, str]:
    """{pair key: name} of scanned files: the first group of `pattern` searched in each name (the
    whole match without groups). A file it does not match, or two files with one key, are errors."""
    keys: dict[str, str] = {}
    unmatched = []
    for name, path in found.items():
        match = pattern.search(name)
        if match is None:
            unmatched.append(path)
            continue
        key = match.group(1) if pattern.groups else match.group(0)
        if key in keys:
            raise SemsegError(
                f"{found[keys[key]]} and {path} both have the pairing key '{key}' (data.pair_key="
                f"{pattern.pattern}), so their {what} cannot be told apart; make the key longer or rename one."
            )
        keys[key] = name
    if unmatched:
        raise SemsegError(
            f"data.pair_key={pattern.pattern} matches no part of the name of {len(unmatched)} {what}(s): "
            f"{listed(unmatched)}. It is searched in each path under the folder without extension; "
            "fix the expression or remove those files."
        )
    return keys


class FolderDataset(ImageMaskDataset):
    """One split of a folder of images and masks (see the module docstring for the layout).

    Item names are the images' relative paths without extension, e.g. `street/0001`.
    `split_lists` holds every split's names when the split comes from `split_fractions`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_classes: int,
        image_dir: str = "images/{split}",
        mask_dir: str = "masks/{split}",
        mask_suffix: str = "",
        colors: Sequence[Sequence[int]] | None = None,
        label_map: Mapping | None = None,
        pair_key: str | None = None,
        mask_threshold: int | None = None,
        reduce_zero_label: bool = False,
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        transform=None,
        in_channels: int = 3,
        bands: Sequence[int] | None = None,
        nodata: float | None = None,
    ):
        super().__init__(num_classes, transform, in_channels=in_channels, bands=bands, nodata=nodata)
        self.root, self.split = Path(root), split
        self.colors = [list(c) for c in colors] if colors else None
        self.reduce_zero_label = bool(reduce_zero_label)
        self.lookup = label_lookup(num_classes, label_map, self.reduce_zero_label)
        self.threshold = check_threshold(mask_threshold, self.colors)
        self.pattern = compile_pair_key(pair_key, mask_suffix)
        check_one_source(split_fractions, split_files, {"data.image_dir": image_dir, "data.mask_dir": mask_dir})
        self.fractions = check_fractions(split_fractions) if split_fractions else None
        self.split_seed = check_seed(split_seed)
        self.split_files = dict(split_files) if split_files else None
        self.templates = {"data.image_dir": image_dir, "data.mask_dir": mask_dir}
        images, masks, names = self._pairs(mask_suffix)
        keys = self._select(list(images), names)
        self.names = [names[key] for key in keys]
        self.image_paths = [images[key] for key in keys]
        self.mask_paths = [masks[key] for key in keys]

    def _pairs(self, suffix: str) -> tuple[dict, dict, dict]:
        """Images and masks by pairing key, and each key's item name, checked to pair one to one."""
        image_folder = self._folder("data.image_dir")
        mask_folder = self._folder("data.mask_dir")
        if image_folder == mask_folder and not suffix:
            raise SemsegError(
                f"data.image_dir and data.mask_dir are the same folder {image_folder}, so images and "
                "masks cannot be told apart; set data.mask_suffix (e.g. data.mask_suffix=_mask for x_mask.png)."
            )
        images = scan(image_folder, exclude_suffix=suffix if image_folder == mask_folder else "")
        if not images:
            raise SemsegError(
                f"split '{self.split}' has no images: nothing matches {image_folder}/**/*"
                f"{{{','.join(IMAGE_SUFFIXES)}}} (data.root={self.root}, data.image_dir={self.templates['data.image_dir']}). "
                "Put the images there, or set data.image_dir / data.splits to your layout."
            )
        masks = scan(mask_folder, suffix=suffix)
        if self.split_files:
            images = self._listed_only(images, image_folder)
        names = {name: name for name in images}
        if self.pattern is not None:
            names = rekey(images, self.pattern, "image")
            images = {key: images[name] for key, name in names.items()}
            masks = {key: masks[name] for key, name in rekey(masks, self.pattern, "mask").items()}
        if self.split_files:
            masks = {key: path for key, path in masks.items() if key in images}
        self._check_pairs(images, masks, image_folder, mask_folder, suffix)
        return images, masks, names

    def _folder(self, key: str) -> Path:
        return split_folder(self.root, self.templates[key], self.split, key)

    def _listed_only(self, images: dict[str, Path], image_folder: Path) -> dict[str, Path]:
        """The images this split's list file names (the other images of the folder are not used)."""
        if self.split not in self.split_files:
            raise SemsegError(
                f"split '{self.split}' has no list file in data.split_files (it has {sorted(self.split_files)}); "
                f"add data.split_files.{self.split}=<file> or set data.splits to those names."
            )
        path = self.root / str(self.split_files[self.split])
        entries = read_split_file(path, f"data.split_files.{self.split}")
        return {name: images[name] for name in match_names(entries, sorted(images), path, image_folder)}

    def _select(self, keys: list[str], names: dict[str, str]) -> list[str]:
        """This split's keys, in item-name order; with split_fractions, its share of the folder."""
        keys = sorted(keys, key=names.get)
        if not self.fractions:
            return keys
        if self.split not in self.fractions:
            raise SemsegError(
                f"split '{self.split}' is not one of data.split_fractions {sorted(self.fractions)}; set data.splits "
                f"to those names, e.g. data.splits={{train:{list(self.fractions)[0]},val:{list(self.fractions)[-1]}}}."
            )
        self.split_lists = assign_fractions([names[key] for key in keys], self.fractions, self.split_seed)
        chosen = set(self.split_lists[self.split])
        return [key for key in keys if names[key] in chosen]

    def _check_pairs(self, images: dict, masks: dict, image_folder: Path, mask_folder: Path, suffix: str) -> None:
        """Every image has its mask and every mask its image; lossy masks only with a threshold."""
        unmatched = [images[key] for key in images if key not in masks]
        if unmatched:
            first = next(key for key in images if key not in masks)
            where, key = (
                (f"No mask in {mask_folder} has its data.pair_key key '{first}'", "data.pair_key")
                if self.pattern is not None else
                (f"The mask of {images[first]} would be {mask_folder / first}{suffix}.png (any image extension)",
                 "data.mask_suffix")
            )
            raise SemsegError(
                f"{len(unmatched)} image(s) of split '{self.split}' have no mask: {listed(unmatched)}. "
                f"{where}; add the masks, remove those images, or set data.mask_dir / {key}."
            )
        orphans = [masks[key] for key in masks if key not in images]
        if orphans:
            raise SemsegError(
                f"{len(orphans)} mask(s) of split '{self.split}' have no image in {image_folder}: "
                f"{listed(orphans)}. Add the images or remove those masks."
            )
        lossy = [path for path in masks.values() if path.suffix.lower() in LOSSY_SUFFIXES]
        if lossy and self.threshold is None:
            raise SemsegError(
                f"mask {lossy[0]} is a {lossy[0].suffix} file: lossy compression changes pixel values, so labels "
                "would be wrong along every edge. Save masks as PNG; for binary masks such as Kvasir-SEG's set "
                "data.mask_threshold=128 (pixels at least that bright become 1, the rest 0)."
            )

    def read_mask(self, path: Path) -> np.ndarray:
        """Raw values (or colours, or 0/1 by threshold) through data.reduce_zero_label and data.label_map."""
        return self.lookup[read_mask(path, self.colors, self.threshold)].astype(np.uint8)

    def raw_values(self, value: int) -> list[int]:
        """The raw values that read as `value`, for messages about what is in the files."""
        return np.flatnonzero(self.lookup == value).tolist()

    def invalid_values_message(self, path: Path, values: list[int]) -> str:
        """Values no class has: unmapped by data.label_map, so named by the raw values (or colours) in the file."""
        raws = [raw for value in values for raw in self.raw_values(value)]
        what = f"raw values {raws}"
        if self.colors:
            what = f"colours {[self.colors[v] for v in raws if v < len(self.colors)]} ({what})"
        return (
            f"mask {path} holds {what} that map to no class: classes are 0..{self.num_classes - 1} "
            f"(data.class_names) and {IGNORE_INDEX} is ignore. Map them with data.label_map, e.g. "
            f"++data.label_map={{{raws[0]}:{IGNORE_INDEX}}} to ignore them, or add classes to data.class_names."
        )


class FolderDataModule(SegmentationDataModule):
    """`data=folder`: SegmentationDataModule over FolderDataset, keys at the top of `data`.

    A split name may be a list of candidates: the first whose image folder exists (or that
    data.split_fractions / data.split_files names) is used (`test: [test, val]`: the test split
    when there is one, else val). `palette` defaults to `colors` (class i drawn in the colour of
    raw value i). With split_fractions, `prepare_data` writes each split's names to `splits_dir`
    (the run folder's `splits/`), once, on rank 0: never beside the data.
    """

    def __init__(
        self,
        root: str,
        class_names: Sequence[str],
        splits: Mapping[str, str | Sequence[str]],
        image_dir: str = "images/{split}",
        mask_dir: str = "masks/{split}",
        mask_suffix: str = "",
        colors: Sequence[Sequence[int]] | None = None,
        label_map: Mapping | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        pair_key: str | None = None,
        mask_threshold: int | None = None,
        reduce_zero_label: bool = False,
        split_fractions: Mapping[str, float] | None = None,
        split_seed: int = 0,
        split_files: Mapping[str, str] | None = None,
        splits_dir: str | None = None,
        **kwargs,
    ):
        class_names = class_list(class_names)
        if not isinstance(splits, Mapping):
            raise not_a_mapping("data.splits", splits, "data.splits={train:train,val:val,test:val}")
        options = dict(
            root=root, num_classes=len(class_names), image_dir=image_dir, mask_dir=mask_dir,
            mask_suffix=mask_suffix or "", colors=colors, label_map=label_pairs(label_map), pair_key=pair_key,
            mask_threshold=mask_threshold, reduce_zero_label=reduce_zero_label,
            split_fractions=dict(split_fractions) if isinstance(split_fractions, Mapping) else split_fractions,
            split_seed=split_seed, split_files=dict(split_files) if isinstance(split_files, Mapping) else split_files,
        )
        self._check_options(options)
        named = options["split_fractions"] or options["split_files"]
        exists = (lambda name: name in named) if named else (lambda name: (Path(root) / image_dir.format(split=name)).is_dir())
        chosen = {stage: first_available(name, exists) for stage, name in splits.items()}  # the dataset names a missing folder
        check_stages(chosen, options["split_fractions"])
        if palette is None and colors:
            palette = list(colors)[: len(class_names)]
        super().__init__(dataset=functools.partial(FolderDataset, **options), class_names=class_names,
                         splits=chosen, root=root, palette=palette, **kwargs)
        self.split_fractions, self.splits_dir = options["split_fractions"], splits_dir
        self.lists_written = False

    @staticmethod
    def _check_options(options: dict) -> None:
        """Refuse a bad setting when the config is instantiated, not when the first split is read."""
        label_lookup(options["num_classes"], options["label_map"], options["reduce_zero_label"])
        check_threshold(options["mask_threshold"], options["colors"])
        compile_pair_key(options["pair_key"], options["mask_suffix"])
        check_one_source(options["split_fractions"], options["split_files"],
                         {"data.image_dir": options["image_dir"], "data.mask_dir": options["mask_dir"]})
        if options["split_fractions"] is not None:
            check_fractions(options["split_fractions"])
        check_seed(options["split_seed"])

    def prepare_data(self) -> None:
        """Lightning calls this once per node (local rank 0) before each stage; the lists are
        written on global rank 0, the first time only (fit and test share them)."""
        super().prepare_data()
        if self.split_fractions and self.splits_dir and not self.lists_written:
            first = next(iter(self.split_fractions))
            write_split_lists(self.dataset(split=first).split_lists, self.splits_dir)
            self.lists_written = True
