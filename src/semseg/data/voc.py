"""Pascal VOC 2012 segmentation, with the SBD-augmented `trainaug` split.

    <root>/VOCdevkit/VOC2012/            the official VOCtrainval_11-May-2012.tar, unpacked
    <root>/benchmark_RELEASE/dataset/    SBD's benchmark.tgz, unpacked (only for trainaug)

`trainaug` (10 582 images) is VOC train + SBD train + SBD val, minus VOC val. Its masks come from
`VOC2012/SegmentationClassAug/<id>.png` with `ImageSets/Segmentation/trainaug.txt` when that
folder exists; otherwise from VOC's own masks for VOC train ids and SBD's `.mat` files for the
rest. VOC masks keep their 255 object borders (ignored, never remapped); SBD masks have none.
"""

from pathlib import Path

import numpy as np
import scipy.io

from semseg.data.download import fetch_archive
from semseg.data.io import read_mask
from semseg.data.palette import voc_palette
from semseg.data.voc_layout import (
    MASK_DIR,
    SPLIT_DIR,
    VOCLayoutDataset,
    read_id_list,
    read_split_list,
)
from semseg.errors import SemsegError

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
PALETTE = voc_palette(len(CLASS_NAMES))
SPLITS = ("train", "val", "trainval", "trainaug")
VOC_DIR = Path("VOCdevkit") / "VOC2012"
SBD_DIR = Path("benchmark_RELEASE") / "dataset"
AUG_MASK_DIR = "SegmentationClassAug"


def read_sbd_mask(path: Path) -> np.ndarray:
    """The class-index mask stored in an SBD `cls/<id>.mat` file (`GTcls.Segmentation`)."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)
    except (OSError, ValueError, KeyError, AttributeError, scipy.io.matlab.MatReadError) as error:
        raise SemsegError(
            f"cannot read SBD mask {path} ({type(error).__name__}: {error}); it must be a .mat file "
            "with a GTcls.Segmentation array. Replace it with the file from SBD's benchmark.tgz."
        ) from None


def _trainaug_from_sbd(root: Path, voc: Path) -> tuple[list[str], list[Path]]:
    """trainaug ids and their mask files, from VOC's split lists and SBD's."""
    sbd = root / SBD_DIR
    if not sbd.is_dir():
        raise SemsegError(
            f"split 'trainaug' needs SBD, but neither {voc / AUG_MASK_DIR} nor {sbd} exists. Unpack "
            f"SBD's benchmark.tgz in {root} (data.download=true does it), or provide {AUG_MASK_DIR}/ "
            f"and {SPLIT_DIR / 'trainaug.txt'} under {voc}."
        )
    voc_train = set(read_split_list(voc, "train"))
    voc_val = set(read_split_list(voc, "val"))
    sbd_ids = set(read_id_list(sbd / "train.txt")) | set(read_id_list(sbd / "val.txt"))
    ids = sorted((voc_train | sbd_ids) - voc_val)
    masks = [voc / MASK_DIR / f"{i}.png" if i in voc_train else sbd / "cls" / f"{i}.mat" for i in ids]
    return ids, masks


class VOCSegmentation(VOCLayoutDataset):
    """One split of Pascal VOC 2012 under `root` (the folder that holds `VOCdevkit/`)."""

    palette = PALETTE

    def __init__(self, root: str | Path, split: str, transform=None):
        root = Path(root)
        voc = root / VOC_DIR
        if split not in SPLITS:
            raise SemsegError(f"Pascal VOC has no split '{split}'; choose one of {', '.join(SPLITS)}.")
        if not voc.is_dir():
            raise SemsegError(
                f"Pascal VOC 2012 not found: {voc} does not exist. Set data.root to the folder that "
                "holds VOCdevkit/, or add data.download=true to fetch it."
            )
        ids = masks = listed_in = None
        if split == "trainaug" and (voc / AUG_MASK_DIR).is_dir():
            ids = read_split_list(voc, split)
            masks = [voc / AUG_MASK_DIR / f"{i}.png" for i in ids]
        elif split == "trainaug":
            ids, masks = _trainaug_from_sbd(root, voc)
            listed_in = f"the SBD lists {root / SBD_DIR}/{{train,val}}.txt or VOC's train list"
        super().__init__(voc, split, len(CLASS_NAMES), transform, ids=ids, mask_paths=masks,
                         listed_in=listed_in)

    def read_mask(self, path: Path) -> np.ndarray:
        return read_sbd_mask(path) if path.suffix == ".mat" else read_mask(path)


def prepare(root: str | Path, download: bool = False, archives: dict[str, dict] | None = None) -> None:
    """With `download`, fetch each archive ({url, md5, creates}) that is not unpacked yet."""
    if not download:
        return
    for spec in (archives or {}).values():
        fetch_archive(root=root, **spec)
