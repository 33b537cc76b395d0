"""Read and validate image/mask file pairs, whatever folder layout lists them.

Every dataset reader subclasses `ImageMaskDataset`: the subclass finds the files, this class
reads them, checks that they fit together and returns the item contract (README, "Data").
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from semseg.data.bands import check_band_options
from semseg.data.io import read_image_and_nodata, read_mask, stored_size
from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError


def size_mismatch(image_path: Path, image_hw, mask_path: Path, mask_hw) -> str:
    """The message for an image and mask of different sizes, naming an EXIF rotation if that is why."""
    message = (
        f"image {image_path} is {image_hw[1]}x{image_hw[0]} but its mask {mask_path} is "
        f"{mask_hw[1]}x{mask_hw[0]}; they must match."
    )
    if stored_size(image_path) == tuple(mask_hw):
        message += (
            " The image's EXIF orientation turns it for display (semseg reads images upright, as "
            "viewers show them); the mask matches the unturned pixels: rotate the mask, or save the "
            "image without the EXIF orientation tag."
        )
    return message


def to_sample(image, mask, name: str) -> dict:
    """Return the dataset contract: float32 (in_channels, H, W) image, int64 (H, W) mask, name.

    A numpy (H, W, C) image is moved band-first; uint8 is divided by 255, float taken as it is
    (semseg.data.io's 0-1 scale, or already normalised). A tensor is only made float32.
    """
    if not torch.is_tensor(image):
        image = np.asarray(image)
        image = image[..., None] if image.ndim == 2 else image
        array = np.ascontiguousarray(image.transpose(2, 0, 1))
        image = torch.from_numpy(array).float()
        if array.dtype == np.uint8:
            image = image / 255.0
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).long()
    return {"image": image.float(), "mask": mask, "name": name}


class ImageMaskDataset(Dataset):
    """Named image/mask pairs, read and validated one at a time.

    Subclasses set `names`, `image_paths` and `mask_paths` (equal lengths) and may override
    `read_mask` to turn a file into class indices (e.g. Cityscapes labelIds to train ids).
    `palette` holds one RGB colour per class for overlays (None: the VOC colour map).
    `in_channels`, `bands` and `nodata` say how images are read (semseg.data.bands); the
    DataModule sets them with `set_bands` on datasets whose constructor does not take them.
    """

    names: list[str]
    image_paths: list[Path]
    mask_paths: list[Path]
    palette: np.ndarray | None = None
    in_channels: int = 3
    bands: list[int] | None = None
    nodata: float | None = None

    def __init__(
        self, num_classes: int, transform: Callable | None = None,
        in_channels: int = 3, bands: list[int] | None = None, nodata: float | None = None,
    ):
        self.num_classes = num_classes
        self.transform = transform
        self.set_bands(in_channels, bands, nodata)

    def set_bands(self, in_channels: int = 3, bands: list[int] | None = None, nodata: float | None = None) -> None:
        """How images are read: data.in_channels, data.bands, data.nodata (checked)."""
        options = check_band_options(in_channels, bands, nodata, None)
        self.in_channels, self.bands, self.nodata = options["in_channels"], options["bands"], options["nodata"]

    def read_image(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """The image as `semseg.data.io.read_image` gives it with this dataset's band settings, and
        the (H, W) map of its nodata pixels (None without data.nodata)."""
        return read_image_and_nodata(path, self.in_channels, self.bands, self.nodata)

    def read_mask(self, path: Path) -> np.ndarray:
        """The (H, W) mask of class indices, 255 = ignore. Values that are no class are kept here
        (`load` refuses them), so `semseg.data.inspect` can count them."""
        return read_mask(path)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read and validate one raw (image, mask) pair, before transforms; nodata pixels are 255."""
        image_path, mask_path = self.image_paths[index], self.mask_paths[index]
        image, nodata = self.read_image(image_path)
        mask = self.read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise SemsegError(size_mismatch(image_path, image.shape[:2], mask_path, mask.shape))
        invalid = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
        if invalid.any():
            raise SemsegError(self.invalid_values_message(mask_path, sorted(np.unique(mask[invalid]).tolist())))
        if nodata is not None and nodata.any():
            mask = np.where(nodata, IGNORE_INDEX, mask).astype(mask.dtype)
        return image, mask

    def invalid_values_message(self, path: Path, values: list[int]) -> str:
        """What to say of mask values that are neither a class nor ignore (readers add their fix)."""
        return (
            f"mask {path} holds values {values} that are neither a class index "
            f"(0..{self.num_classes - 1}) nor {IGNORE_INDEX} (ignore)."
        )

    def __getitem__(self, index: int) -> dict:
        image, mask = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return to_sample(image, mask, self.names[index])
