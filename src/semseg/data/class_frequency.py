"""Class weights, in one place: how often each class occurs in a split's masks, the median-frequency
weights from it, and which numbers a run's losses get (counted afresh, or the resumed run's).

The run set-up (semseg.run_setup) calls `class_weights_for_run` before the model is built and
writes the numbers into the config, so the loss, the logged config and the checkpoint hold the
same numbers; the loss itself only ever takes numbers.

Counting reads every mask of the split once, through the dataset's own `read_mask` (so after its
label mapping: data.label_map, Cityscapes' train ids), 255 left out. The counts are cached as
`<cache_dir>/class_frequency/<key>.json`; semseg.train passes `${paths.data_dir}/.cache`, so
nothing is ever written into a dataset's own folder. The key hashes the class count, how the
dataset reads masks (its class and settings) and every mask file's path and bytes: any change to
them counts again, also a rewrite that keeps a file's size and time. A cache file that cannot be
read or does not fit is counted afresh with a warning, and a cache folder that cannot be written
only costs the counting next time.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError
from semseg.data.content_cache import content_key, read_json_cache, write_json_cache

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
    return content_key(f"{num_classes}\n{reader}", dataset.mask_paths)


def read_cache(cache: Path, num_classes: int) -> dict | None:
    """The cached counts, or None (with a warning) when the file is unreadable or does not fit."""
    def fits(counts) -> bool:
        return isinstance(counts, dict) and isinstance(counts.get("masks"), int) and all(
            isinstance(counts.get(key), list) and len(counts[key]) == num_classes
            and all(isinstance(v, int) and v >= 0 for v in counts[key]) for key in ("class_pixels", "image_pixels"))

    return read_json_cache(cache, fits, f"class-count cache %s is unreadable or does not fit {num_classes} classes; counting again",
                           "class counts read from the cache %s (delete it to count again)", log)


def write_cache(cache: Path, counts: dict) -> None:
    write_json_cache(cache, counts, "cannot write the class-count cache %s (%s); the next run counts again", log)


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


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def weight_settings(model_config: dict, prefix: str = "model") -> dict[str, dict]:
    """Every loss term's settings that has `class_weights`, by its dotted key: {"model.loss.ce": {...}}."""
    found: dict[str, dict] = {}

    def walk(node, key: str) -> None:
        if isinstance(node, dict):
            if "class_weights" in node:
                found[key] = node
            for name, value in node.items():
                walk(value, f"{key}.{name}")

    walk(model_config.get("loss"), f"{prefix}.loss")
    return found


def check_class_weights(settings: dict[str, dict], class_names: Sequence[str]) -> None:
    """Refuse a class_weights setting that is neither null, median_frequency nor one number per class,
    and an absent_class_weight that is no number >= 0."""
    for key, term in settings.items():
        absent = term.get("absent_class_weight")
        if absent is not None and not (_is_number(absent) and absent >= 0):
            raise SemsegError(f"absent_class_weight={absent!r} must be a number >= 0, e.g. 1.0, or null.")
        weights = term.get("class_weights")
        if weights is None or weights == MEDIAN_FREQUENCY:
            continue
        if isinstance(weights, str) or not isinstance(weights, list | tuple) or not all(_is_number(w) and w >= 0 for w in weights):
            raise SemsegError(
                f"{key}.class_weights={weights!r}: give null, {MEDIAN_FREQUENCY}, or one number >= 0 per "
                "class, e.g. class_weights=[1.0,2.0,2.0]."
            )
        if len(weights) != len(class_names):
            raise SemsegError(
                f"{key}.class_weights has {len(weights)} weights but the data has {len(class_names)} "
                f"classes {list(class_names)}; give one weight per class, e.g. {key}.class_weights="
                f"[{','.join(['1.0'] * len(class_names))}], or {key}.class_weights={MEDIAN_FREQUENCY}."
            )


def class_weights_for_run(
    model_config: dict, datamodule_of_counts, cache_dir: str | Path | None, trained_config: dict | None = None
) -> dict[str, list[float]]:
    """The numbers for every `class_weights: median_frequency` of a run's model config, by dotted key
    ("model.loss.ce.class_weights").

    A resumed run (`trained_config`: the model config its checkpoint stored, where the interrupted
    run had written its numbers) takes them over, so its loss stays exactly that run's without
    counting again. A fresh run counts the train split (`datamodule_of_counts()` builds the
    datamodule; it is only called when something is counted), cached under `cache_dir`.
    """
    wanted = {key: term for key, term in weight_settings(model_config).items() if term["class_weights"] == MEDIAN_FREQUENCY}
    if not wanted:
        return {}
    trained = weight_settings(trained_config) if trained_config is not None else {}
    numbers = {f"{key}.class_weights": trained[key]["class_weights"] for key in wanted
               if isinstance(trained.get(key, {}).get("class_weights"), list)}
    fresh = [key for key in wanted if f"{key}.class_weights" not in numbers]
    if fresh:
        datamodule = datamodule_of_counts()
        if not hasattr(datamodule, "splits"):
            raise SemsegError(f"{fresh[0]}.class_weights={MEDIAN_FREQUENCY} needs the datamodule's train split.")
        counts = class_frequencies(datamodule, "train", cache_dir)
        for key in fresh:
            setting = f"{key}.class_weights"
            numbers[setting] = median_frequency_weights(counts, datamodule.class_names, setting, wanted[key].get("absent_class_weight"))
            log.info("%s=%s: %s", setting, MEDIAN_FREQUENCY, numbers[setting])
    return numbers
