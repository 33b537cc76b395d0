"""Read any dataset stored in the Pascal VOC segmentation layout.

    <root>/ImageSets/Segmentation/<split>.txt   one image id per line
    <root>/JPEGImages/<id>.jpg                  RGB image
    <root>/SegmentationClass/<id>.png           palette PNG, pixel = class index, 255 = ignore

The embedded synthetic dataset is written in this layout, so the default run exercises the same
file loading as Pascal VOC itself.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from semseg.data.palette import IGNORE_INDEX
from semseg.errors import SemsegError

SPLIT_DIR = Path("ImageSets") / "Segmentation"
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"


def read_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; grayscale and RGBA are converted."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise SemsegError(f"cannot read image {path}: {error}. Replace or remove the file.") from None


def read_index_mask(path: Path) -> np.ndarray:
    """Read a palette or grayscale PNG as an (H, W) uint8 array of class indices."""
    try:
        with Image.open(path) as mask:
            if mask.mode not in ("P", "L"):
                raise SemsegError(
                    f"mask {path} has mode {mask.mode}; masks must be palette ('P') or grayscale "
                    "('L') PNGs whose pixel values are class indices (255 = ignore)."
                )
            return np.array(mask)
    except (UnidentifiedImageError, OSError) as error:
        raise SemsegError(f"cannot read mask {path}: {error}. Replace or remove the file.") from None


def to_sample(image, mask, name: str) -> dict:
    """Return the dataset contract: float32 (3,H,W) image, int64 (H,W) mask, name."""
    if not torch.is_tensor(image):
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).long()
    return {"image": image.float(), "mask": mask, "name": name}


class VOCLayoutDataset(Dataset):
    """Image/mask pairs of one split of a folder in the VOC segmentation layout."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_classes: int,
        transform: Callable | None = None,
    ):
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.transform = transform
        self.ids = self._read_split_list()
        self._check_files_exist()

    def _read_split_list(self) -> list[str]:
        if not self.root.is_dir():
            raise SemsegError(f"dataset root {self.root} does not exist. Set data.root to the folder.")
        split_file = self.root / SPLIT_DIR / f"{self.split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in (self.root / SPLIT_DIR).glob("*.txt"))
            raise SemsegError(
                f"split list {split_file} not found; splits available under {self.root / SPLIT_DIR}: "
                f"{available or 'none'}."
            )
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise SemsegError(f"split list {split_file} is empty.")
        return ids

    def _check_files_exist(self) -> None:
        for image_id in self.ids:
            for path in (self.image_path(image_id), self.mask_path(image_id)):
                if not path.is_file():
                    raise SemsegError(
                        f"{path} is listed in split '{self.split}' but missing. Restore the file or "
                        f"remove '{image_id}' from {self.root / SPLIT_DIR / self.split}.txt."
                    )

    def image_path(self, image_id: str) -> Path:
        return self.root / IMAGE_DIR / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.root / MASK_DIR / f"{image_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read and validate one raw (image, mask) pair, before transforms."""
        image_id = self.ids[index]
        image = read_image(self.image_path(image_id))
        mask = read_index_mask(self.mask_path(image_id))
        if image.shape[:2] != mask.shape:
            raise SemsegError(
                f"image {self.image_path(image_id)} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{self.mask_path(image_id)} is {mask.shape[1]}x{mask.shape[0]}; they must match."
            )
        invalid = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
        if invalid.any():
            raise SemsegError(
                f"mask {self.mask_path(image_id)} holds values {sorted(np.unique(mask[invalid]).tolist())}"
                f" that are neither a class index (0..{self.num_classes - 1}) nor {IGNORE_INDEX} (ignore)."
            )
        return image, mask

    def __getitem__(self, index: int) -> dict:
        image, mask = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return to_sample(image, mask, self.ids[index])


def write_split_lists(root: Path, splits: dict[str, Sequence[str]]) -> None:
    """Write ImageSets/Segmentation/<split>.txt files."""
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / SPLIT_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
