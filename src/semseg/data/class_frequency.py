"""How often each class occurs in a split's masks, and the median-frequency class weights from it.

Counting reads every mask of the split once, through the dataset's own `read_mask` (so after its
label mapping: data.label_map, Cityscapes' train ids), 255 left out. The counts are cached as
`<cache_dir>/class_frequency/<key>.json`; semseg.train passes `${paths.data_dir}/.cache`, so
nothing is ever written into a dataset's own folder. The key hashes the class count, how the
dataset reads masks (its class and settings) and every mask file's path and bytes: any change to
them counts again, also a rewrite that keeps a file's size and time. A cache file that cannot be
read or does not fit is counted afresh with a warning, and a cache folder that cannot be written
only costs the counting next time.
"""

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from semseg.data.io import IGNORE_INDEX
from semseg.errors import SemsegError
from semseg.utils.atomic import replaced_atomically

log = logging.getLogger(__name__)

CACHE_FOLDER = "class_frequency"
MEDIAN_FREQUENCY = "median_frequency"  # the class_weights setting that asks for these weights


class MaskCounts(Dataset):
    """Item i: the pixel count of each of the 256 values of mask i, after the dataset's mapping."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.mask_paths)

    def __getitem__(self, index: int) -> np.ndarray:
        path = self.dataset.mask_paths[index]
        mask = self.dataset.read_mask(path)
        counts = np.bincount(mask.ravel(), minlength=256)
        values = np.flatnonzero(counts).tolist()
        outside = [v for v in values if v >= self.dataset.num_classes and v != IGNORE_INDEX]
        if outside:
            raise SemsegError(self.dataset.invalid_values_message(path, outside))
        return counts


def _as_is(item):
    return item


def count_classes(dataset, num_classes: int, num_workers: int = 0) -> dict:
    """Pixels of each class over the split, and the labelled pixels of the images holding each class."""
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    loader = DataLoader(MaskCounts(dataset), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    for counts in loader:
        counts = np.asarray(counts[:num_classes], dtype=np.int64)
        class_pixels += counts
        image_pixels += np.where(counts > 0, counts.sum(), 0)
    return {"masks": len(loader), "class_pixels": class_pixels.tolist(), "image_pixels": image_pixels.tolist()}


def cache_key(dataset, reader: str, num_classes: int) -> str:
    """A hash of what the counts depend on: classes, how masks are read, and every mask file's bytes."""
    digest = hashlib.sha256(f"{num_classes}\n{reader}\n".encode())
    for path in dataset.mask_paths:
        with open(path, "rb") as file:
            content = hashlib.file_digest(file, "blake2b").hexdigest()
        digest.update(f"{Path(path).resolve()}\t{content}\n".encode())
    return digest.hexdigest()[:32]


def read_cache(cache: Path, num_classes: int) -> dict | None:
    """The cached counts, or None (with a warning) when the file is unreadable or does not fit."""
    try:
        counts = json.loads(cache.read_text())
        fits = (
            isinstance(counts, dict) and isinstance(counts.get("masks"), int)
            and all(isinstance(counts.get(key), list) and len(counts[key]) == num_classes
                    and all(isinstance(v, int) and v >= 0 for v in counts[key]) for key in ("class_pixels", "image_pixels"))
        )
    except (OSError, ValueError) as error:
        fits, counts = False, str(error)
    if not fits:
        log.warning("class-count cache %s is unreadable or does not fit %d classes; counting again", cache, num_classes)
        return None
    log.info("class counts read from the cache %s (delete it to count again)", cache)
    return counts


def write_cache(cache: Path, counts: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(cache) as file:
            file.write(json.dumps(counts).encode())
    except OSError as error:
        log.warning("cannot write the class-count cache %s (%s); the next run counts again", cache, error)


def class_frequencies(datamodule, split: str = "train", cache_dir: str | Path | None = None) -> dict:
    """`count_classes` of a datamodule's split, read from the cache when nothing changed.

    The split is read afresh without transforms, so random crops never skew the counts.
    """
    dataset = datamodule.dataset(split=datamodule.splits[split], transform=None)
    if not hasattr(dataset, "mask_paths") or not hasattr(dataset, "read_mask"):
        raise SemsegError(
            f"class_weights={MEDIAN_FREQUENCY} reads the mask files of the {split} split, but "
            f"{type(dataset).__name__} lists none (mask_paths, read_mask); give explicit class_weights instead."
        )
    num_classes = datamodule.num_classes
    cache = None
    if cache_dir is not None:
        key = cache_key(dataset, repr(datamodule.dataset), num_classes)
        cache = Path(cache_dir) / CACHE_FOLDER / f"{key}.json"
        counts = read_cache(cache, num_classes) if cache.is_file() else None
        if counts is not None:
            return counts
    log.info("counting the classes of %d masks of split '%s'", len(dataset.mask_paths), datamodule.splits[split])
    counts = count_classes(dataset, num_classes, getattr(datamodule, "num_workers", 0))
    if cache is not None:
        write_cache(cache, counts)
    return counts


def median_frequency_weights(
    counts: dict, class_names: Sequence[str], key: str, absent_class_weight: float | None = None
) -> list[float]:
    """weight_c = median(freq) / freq_c, freq_c = pixels of c / labelled pixels of the images holding c.

    Eigen & Fergus (2015). The median is over the classes that occur; a class that never occurs
    gets `absent_class_weight`, and without one the split is refused (`key` names the setting).
    Weights keep 6 significant digits, to read well in the config and the logs.
    """
    class_pixels = np.asarray(counts["class_pixels"], dtype=np.float64)
    image_pixels = np.asarray(counts["image_pixels"], dtype=np.float64)
    present = class_pixels > 0
    if not present.any():
        raise SemsegError(
            f"{key}={MEDIAN_FREQUENCY}: the {counts['masks']} masks of the train split hold no labelled pixel; "
            f"check data.label_map, or give one weight per class in {key}=[...]."
        )
    absent = [f"{index} '{name}'" for index, name in enumerate(class_names) if not present[index]]
    if absent and absent_class_weight is None:
        settings = key.rsplit(".", 1)[0]
        which = f"class {absent[0]} never occurs" if len(absent) == 1 else f"classes {', '.join(absent)} never occur"
        raise SemsegError(
            f"{key}={MEDIAN_FREQUENCY}: {which} in the {counts['masks']} masks of the train split, so the "
            f"weight would be infinite (and the model cannot learn it: check data.class_names and "
            f"data.label_map). To train anyway, set {settings}.absent_class_weight=<w> (e.g. 1.0: the weight "
            f"in the val/test loss), or give one weight per class in {key}=[...]."
        )
    frequency = np.divide(class_pixels, image_pixels, out=np.zeros_like(class_pixels), where=present)
    median = float(np.median(frequency[present]))
    weights = np.divide(median, frequency, out=np.full_like(frequency, float(absent_class_weight or 0)), where=present)
    return [float(f"{w:.6g}") for w in weights]
