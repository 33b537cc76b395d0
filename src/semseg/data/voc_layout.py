"""Read any dataset stored in the Pascal VOC segmentation layout.

    <root>/ImageSets/Segmentation/<split>.txt   one image id per line
    <root>/JPEGImages/<id>.jpg                  RGB image
    <root>/SegmentationClass/<id>.png           palette PNG, pixel = class index, 255 = ignore

The embedded synthetic dataset is written in this layout, so the default run exercises the same
file loading as Pascal VOC itself.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from semseg.data.image_mask_dataset import ImageMaskDataset
from semseg.errors import SemsegError

SPLIT_DIR = Path("ImageSets") / "Segmentation"
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"


def read_id_list(path: Path) -> list[str]:
    """The ids in a text file, one per line; missing or empty files are errors."""
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise SemsegError(
            f"split list {path} not found; splits available under {path.parent}: {available or 'none'}."
        )
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise SemsegError(f"split list {path} is empty.")
    return ids


def read_split_list(root: Path, split: str) -> list[str]:
    """The ids listed in `<root>/ImageSets/Segmentation/<split>.txt`."""
    if not root.is_dir():
        raise SemsegError(f"dataset root {root} does not exist. Set data.root to the folder.")
    return read_id_list(root / SPLIT_DIR / f"{split}.txt")


class VOCLayoutDataset(ImageMaskDataset):
    """Image/mask pairs of one split of a folder in the VOC segmentation layout.

    `ids` defaults to the split list; `mask_paths` (one per id) defaults to
    `SegmentationClass/<id>.png`; `listed_in` names the list to fix when a file is missing.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_classes: int,
        transform: Callable | None = None,
        ids: Sequence[str] | None = None,
        mask_paths: Sequence[Path] | None = None,
        listed_in: str | None = None,
    ):
        super().__init__(num_classes, transform)
        self.root = Path(root)
        self.split = split
        self.ids = list(ids) if ids is not None else read_split_list(self.root, split)
        self.names = self.ids
        self.image_paths = [self.root / IMAGE_DIR / f"{i}.jpg" for i in self.ids]
        self.mask_paths = list(mask_paths or [self.root / MASK_DIR / f"{i}.png" for i in self.ids])
        self.listed_in = listed_in or str(self.root / SPLIT_DIR / f"{split}.txt")
        self._check_files_exist()

    def _check_files_exist(self) -> None:
        for image_id, *paths in zip(self.ids, self.image_paths, self.mask_paths):
            for path in paths:
                if not path.is_file():
                    raise SemsegError(
                        f"{path} is listed in split '{self.split}' but missing. Restore the file or "
                        f"remove '{image_id}' from {self.listed_in}."
                    )


def write_split_lists(root: Path, splits: dict[str, Sequence[str]]) -> None:
    """Write ImageSets/Segmentation/<split>.txt files."""
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / SPLIT_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
