"""Your own dataset: a folder of images and a folder of masks, paired by relative path and stem.

    <root>/images/<split>/<any/sub/folders>/<name>.<jpg|png|tif|bmp|...>
    <root>/masks/<split>/<any/sub/folders>/<name><mask_suffix>.png

`image_dir` and `mask_dir` are templates (`{split}` is replaced by the split name), so other
layouts need no renaming: CamVid's `train/` + `trainannot/` is `image_dir={split}`,
`mask_dir={split}annot`; masks beside their images as `x_mask.png` is `mask_dir=image_dir`,
`mask_suffix=_mask`.

Masks hold raw values: 8-bit grayscale or palette PNGs, or RGB colour-coded ones with `colors`
(the i-th colour is raw value i). `label_map` maps raw values to class indices or 255 (ignore);
values it does not list stay as they are. Every raw value must end up a class or 255.
"""

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from semseg.data.datamodule import SegmentationDataModule, class_list
from semseg.data.io import IGNORE_INDEX, IMAGE_SUFFIXES, read_mask
from semseg.data.pairs import ImageMaskDataset
from semseg.errors import SemsegError

LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
MAX_LISTED = 5


def _listed(paths: Sequence, more: int = 0) -> str:
    shown = ", ".join(str(p) for p in list(paths)[:MAX_LISTED])
    extra = len(paths) - MAX_LISTED + more
    return shown + (f" (and {extra} more)" if extra > 0 else "")


def label_lookup(num_classes: int, label_map: Mapping | None) -> np.ndarray:
    """A 256-entry table raw value -> class index or 255; unlisted values map to themselves."""
    table = np.arange(256, dtype=np.int64)
    for raw, target in (label_map or {}).items():
        raw, target = int(raw), int(target)
        if not 0 <= raw <= 255:
            raise SemsegError(f"data.label_map key {raw} is not a raw mask value (0..255).")
        if not (0 <= target < num_classes or target == IGNORE_INDEX):
            raise SemsegError(
                f"data.label_map maps {raw} to {target}, which is neither a class index "
                f"(0..{num_classes - 1}, one per data.class_names entry) nor {IGNORE_INDEX} (ignore)."
            )
        table[raw] = target
    return table


def scan(folder: Path, suffix: str = "", exclude_suffix: str = "") -> dict[str, Path]:
    """Image files under `folder` (subfolders too) by key: relative path without extension
    and without `suffix`. Files whose stem does not end with `suffix` are not taken; files whose
    stem ends with `exclude_suffix` neither. Two files with one key are an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
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


class FolderDataset(ImageMaskDataset):
    """One split of a folder of images and masks (see the module docstring for the layout).

    Item names are the images' relative paths without extension, e.g. `street/0001`.
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
        transform=None,
    ):
        super().__init__(num_classes, transform)
        self.root, self.split = Path(root), split
        self.colors = [list(c) for c in colors] if colors else None
        self.lookup = label_lookup(num_classes, label_map)
        image_folder = self._folder(image_dir, "data.image_dir")
        mask_folder = self._folder(mask_dir, "data.mask_dir")
        if image_folder == mask_folder and not mask_suffix:
            raise SemsegError(
                f"data.image_dir and data.mask_dir are the same folder {image_folder}, so images and "
                "masks cannot be told apart; set data.mask_suffix (e.g. data.mask_suffix=_mask for x_mask.png)."
            )
        images = scan(image_folder, exclude_suffix=mask_suffix if image_folder == mask_folder else "")
        if not images:
            raise SemsegError(
                f"split '{split}' has no images: nothing matches {image_folder}/**/*"
                f"{{{','.join(IMAGE_SUFFIXES)}}} (data.root={self.root}, data.image_dir={image_dir}). "
                "Put the images there, or set data.image_dir / data.splits to your layout."
            )
        masks = scan(mask_folder, suffix=mask_suffix)
        self._check_pairs(images, masks, image_folder, mask_folder, mask_suffix)
        self.names = list(images)
        self.image_paths = [images[name] for name in self.names]
        self.mask_paths = [masks[name] for name in self.names]

    def _folder(self, template: str, key: str) -> Path:
        folder = self.root / template.format(split=self.split)
        if not folder.is_dir():
            parent = folder.parent if folder.parent.is_dir() else self.root
            available = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
            raise SemsegError(
                f"{key}={template} gives {folder} for split '{self.split}', which does not exist"
                f"{f'; folders in {parent}: {available}' if available else ''}. Set data.root, {key} "
                "or data.splits to your layout."
            )
        return folder

    def _check_pairs(self, images: dict, masks: dict, image_folder: Path, mask_folder: Path, suffix: str) -> None:
        unmatched = [images[name] for name in images if name not in masks]
        if unmatched:
            first = next(name for name in images if name not in masks)
            raise SemsegError(
                f"{len(unmatched)} image(s) of split '{self.split}' have no mask: {_listed(unmatched)}. "
                f"The mask of {images[first]} would be {mask_folder / first}{suffix}.png (any image "
                "extension); add the masks, remove those images, or set data.mask_dir / data.mask_suffix."
            )
        orphans = [masks[name] for name in masks if name not in images]
        if orphans:
            raise SemsegError(
                f"{len(orphans)} mask(s) of split '{self.split}' have no image in {image_folder}: "
                f"{_listed(orphans)}. Add the images or remove those masks."
            )
        lossy = [path for path in masks.values() if path.suffix.lower() in LOSSY_SUFFIXES]
        if lossy:
            raise SemsegError(
                f"mask {lossy[0]} is a {lossy[0].suffix} file: lossy compression changes pixel values, "
                "so labels would be wrong along every edge. Save masks as PNG."
            )

    def read_mask(self, path: Path) -> np.ndarray:
        """Raw values (or colours) mapped through data.label_map; unmapped values stay as they are."""
        return self.lookup[read_mask(path, self.colors)].astype(np.uint8)

    def invalid_values_message(self, path: Path, values: list[int]) -> str:
        """Values no class has: unmapped by data.label_map, so still the raw values (or colours)."""
        what = f"colours {[self.colors[v] for v in values]} (raw values {values})" if self.colors else f"raw values {values}"
        return (
            f"mask {path} holds {what} that map to no class: classes are 0..{self.num_classes - 1} "
            f"(data.class_names) and {IGNORE_INDEX} is ignore. Map them with data.label_map, e.g. "
            f"++data.label_map={{{values[0]}:{IGNORE_INDEX}}} to ignore them, or add classes to data.class_names."
        )


class FolderDataModule(SegmentationDataModule):
    """`data=folder`: SegmentationDataModule over FolderDataset, keys at the top of `data`.

    A split name may be a list of candidates, the first whose image folder exists is used
    (`test: [test, val]`: the test split when there is one, else val). `palette` defaults to
    `colors` (class i drawn in the colour of raw value i).
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
        **kwargs,
    ):
        class_names = class_list(class_names)
        dataset = functools.partial(
            FolderDataset, root=root, num_classes=len(class_names), image_dir=image_dir, mask_dir=mask_dir,
            mask_suffix=mask_suffix or "", colors=colors, label_map=dict(label_map or {}),
        )
        chosen = {stage: self._first_existing(root, image_dir, name) for stage, name in splits.items()}
        if palette is None and colors:
            palette = list(colors)[: len(class_names)]
        super().__init__(dataset=dataset, class_names=class_names, splits=chosen, root=root, palette=palette, **kwargs)

    @staticmethod
    def _first_existing(root: str, image_dir: str, names: str | Sequence[str]) -> str:
        if isinstance(names, str):
            return names
        names = list(names)
        for name in names:
            if (Path(root) / image_dir.format(split=name)).is_dir():
                return name
        return names[0]  # the dataset names the missing folder
