"""Cityscapes fine annotations, mapped to the 19 evaluation classes with cityscapesscripts' table.

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png       raw labelIds 0..33
                                 <city>_<seq>_<frame>_gtFine_labelTrainIds.png  (used when present)

labelIds outside the 19 classes (unlabeled, ego vehicle, ..., license plate) become 255 (ignore).
There is no automatic download: the files need a login at cityscapes-dataset.com.
"""

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as LABELS

from semseg.data.image_mask_dataset import ImageMaskDataset
from semseg.data.io import read_mask
from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError

_TRAIN_LABELS = sorted((label for label in LABELS if 0 <= label.trainId < IGNORE_INDEX), key=lambda l: l.trainId)
CLASS_NAMES = tuple(label.name for label in _TRAIN_LABELS)
PALETTE = np.array([label.color for label in _TRAIN_LABELS], dtype=np.uint8)
# train id -> labelId, the ids the official evaluation reads from prediction PNGs
EXPORT_IDS = np.array([label.id for label in _TRAIN_LABELS], dtype=np.uint8)
UNKNOWN = -1
# labelId -> train id (255 for ignored labels, UNKNOWN for values no label has)
TRAIN_IDS = np.full(256, UNKNOWN, dtype=np.int16)
for _label in LABELS:
    if _label.id >= 0:
        TRAIN_IDS[_label.id] = _label.trainId if 0 <= _label.trainId < IGNORE_INDEX else IGNORE_INDEX

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"


def how_to_download(root: Path) -> str:
    return (
        "Cityscapes needs a free account at https://www.cityscapes-dataset.com; then run "
        f"`csDownload -d {root} gtFine_trainvaltest.zip leftImg8bit_trainvaltest.zip` (from "
        f"cityscapesscripts, asks for the login) and `cd {root} && unzip -n gtFine_trainvaltest.zip && "
        "unzip -n leftImg8bit_trainvaltest.zip`, or set data.root to the folder that holds "
        "leftImg8bit/ and gtFine/."
    )


def label_ids_to_train_ids(values: np.ndarray, path: Path) -> np.ndarray:
    """Map a labelId mask to train ids; a value no Cityscapes label has is an error."""
    mapped = TRAIN_IDS[values]
    if (mapped == UNKNOWN).any():
        unknown = sorted(np.unique(values[mapped == UNKNOWN]).tolist())
        raise SemsegError(
            f"mask {path} holds labelIds {unknown} that cityscapesscripts' label table does not know "
            f"(valid: 0..{int(np.flatnonzero(TRAIN_IDS != UNKNOWN).max())}). Restore the file from "
            "gtFine_trainvaltest.zip."
        )
    return mapped.astype(np.uint8)


class CityscapesSegmentation(ImageMaskDataset):
    """One split of Cityscapes under `root` (the folder that holds leftImg8bit/ and gtFine/)."""

    palette = PALETTE
    export_ids = EXPORT_IDS

    def __init__(self, root: str | Path, split: str, transform=None):
        super().__init__(len(CLASS_NAMES), transform)
        self.root = Path(root)
        self.split = split
        images_dir, gt_dir = self.root / "leftImg8bit", self.root / "gtFine"
        for folder in (images_dir, gt_dir):
            if not folder.is_dir():
                raise SemsegError(f"Cityscapes not found: {folder} does not exist. {how_to_download(self.root)}")
        if not (images_dir / split).is_dir():
            available = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
            raise SemsegError(f"Cityscapes has no split '{split}' under {images_dir}; available: {available}.")
        self.image_paths = sorted((images_dir / split).glob(f"*/*{IMAGE_SUFFIX}"))
        if not self.image_paths:
            raise SemsegError(f"no *{IMAGE_SUFFIX} files under {images_dir / split}/<city>/.")
        self.names = [p.name[: -len(IMAGE_SUFFIX)] for p in self.image_paths]
        self.mask_paths = [self._mask_path(gt_dir, path, name) for path, name in zip(self.image_paths, self.names)]
        self._check_every_mask_has_an_image(gt_dir)

    def _mask_path(self, gt_dir: Path, image: Path, name: str) -> Path:
        folder = gt_dir / self.split / image.parent.name
        for suffix in (TRAIN_ID_SUFFIX, LABEL_ID_SUFFIX):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
        raise SemsegError(
            f"image {image} has no mask: neither {folder / (name + LABEL_ID_SUFFIX)} nor "
            f"{name}{TRAIN_ID_SUFFIX} exists. Restore gtFine/ or remove the image."
        )

    def _check_every_mask_has_an_image(self, gt_dir: Path) -> None:
        names = set(self.names)
        for mask in sorted((gt_dir / self.split).glob(f"*/*{LABEL_ID_SUFFIX}")):
            if mask.name[: -len(LABEL_ID_SUFFIX)] not in names:
                image = self.root / "leftImg8bit" / self.split / mask.parent.name / mask.name.replace(
                    LABEL_ID_SUFFIX, IMAGE_SUFFIX
                )
                raise SemsegError(f"mask {mask} has no image {image}. Restore leftImg8bit/ or remove the mask.")

    def read_mask(self, path: Path) -> np.ndarray:
        values = read_mask(path)
        return values if path.name.endswith(TRAIN_ID_SUFFIX) else label_ids_to_train_ids(values, path)


def prepare(root: str | Path, download: bool = False) -> None:
    """Cityscapes cannot be fetched without a login: `download` explains how instead."""
    if download:
        raise SemsegError(f"data.download=true cannot fetch Cityscapes. {how_to_download(Path(root))}")
