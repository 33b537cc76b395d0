"""Per-band statistics of a split's images (mean, std, min, max), for data.mean / data.std of
images that are not 8-bit RGB, whose encoders' ImageNet statistics do not apply.

The train split is read once, without transforms, through the dataset's own image reading
(data.in_channels, data.bands: semseg.data.io's 0-1 scale; 8-bit RGB read as today, divided by
255), leaving out the pixels of data.nodata. Means and variances are merged image by image in
float64 (Chan et al.'s pairwise update), so large splits lose no precision; std is the
population std. The result is cached as `<cache_dir>/band_statistics/<key>.json`, keyed like
semseg.data.class_frequency's counts: a hash of how images are read (the dataset's class and
settings, the band settings) and every image file's path and bytes. A damaged cache file is
computed afresh with a warning; an unwritable cache folder only costs the reading next time.
"""

import json
import logging
import math
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from semseg.data.content_cache import content_key, read_json_cache, write_json_cache
from semseg.errors import SemsegError

log = logging.getLogger(__name__)

CACHE_FOLDER = "band_statistics"
KEYS = ("mean", "std", "min", "max")


CHUNK_PIXELS = 1 << 20  # pixels converted to float64 at a time, so a large tile needs little memory


def merge(a: tuple | None, b: tuple | None) -> tuple | None:
    """Two (count, mean, sum of squared deviations, min, max) summaries as one (Chan et al.)."""
    if a is None or b is None:
        return b if a is None else a
    (n, mean, squares, low, high), (m, other_mean, other_squares, other_low, other_high) = a, b
    delta, total = other_mean - mean, n + m
    return (total, mean + delta * (m / total), squares + other_squares + delta**2 * (n * m / total),
            np.minimum(low, other_low), np.maximum(high, other_high))


def summary(values: np.ndarray) -> tuple | None:
    """The summary of (N, C) float64 values, None for none."""
    if not len(values):
        return None
    mean = values.mean(axis=0)
    return len(values), mean, ((values - mean) ** 2).sum(axis=0), values.min(axis=0), values.max(axis=0)


class ImageMoments(Dataset):
    """Item i: the summary of image i's pixels with data on the 0-1 scale (None if it has none)."""

    def __init__(self, dataset, indices: list[int] | None = None):
        self.dataset = dataset
        self.indices = list(range(len(dataset.image_paths))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple | None:
        image, nodata = self.dataset.read_image(self.dataset.image_paths[self.indices[position]])
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        pixels = image.reshape(-1, image.shape[-1])
        valid = None if nodata is None else ~nodata.reshape(-1)
        result = None
        for start in range(0, len(pixels), CHUNK_PIXELS):
            chunk = pixels[start : start + CHUNK_PIXELS].astype(np.float64) / scale
            if valid is not None:
                chunk = chunk[valid[start : start + CHUNK_PIXELS]]
            result = merge(result, summary(chunk))
        return result


def _as_is(item):
    return item


def compute(dataset, num_workers: int = 0, indices: list[int] | None = None) -> dict:
    """The statistics of the images of `dataset` (those at `indices`, else all), without a cache."""
    total = None
    loader = DataLoader(ImageMoments(dataset, indices), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    for item in loader:
        total = merge(total, item)
    if total is None:
        raise SemsegError(
            f"the {len(dataset.image_paths)} images of the split hold no pixel with data (all are data.nodata="
            f"{getattr(dataset, 'nodata', None)}); check data.nodata, or give data.mean / data.std."
        )
    count, mean, squares, low, high = total
    return {"mean": mean.tolist(), "std": np.sqrt(squares / count).tolist(), "min": low.tolist(),
            "max": high.tolist(), "images": len(loader), "pixels": int(count)}


def cache_key(dataset, reader: str) -> str:
    """A hash of how images are read and every image file's path and bytes."""
    settings = {key: getattr(dataset, key, None) for key in ("in_channels", "bands", "nodata")}
    return content_key(f"{reader}\n{json.dumps(settings)}", dataset.image_paths)


def read_cache(cache: Path, bands: int) -> dict | None:
    """The cached statistics, or None (with a warning) when the file is unreadable or does not fit."""
    def fits(stats) -> bool:
        return isinstance(stats, dict) and isinstance(stats.get("images"), int) and all(
            isinstance(stats.get(key), list) and len(stats[key]) == bands
            and all(isinstance(v, float | int) and math.isfinite(v) for v in stats[key]) for key in KEYS)

    return read_json_cache(cache, fits, f"band-statistics cache %s is unreadable or does not fit {bands} bands; reading the images again",
                           "band statistics read from the cache %s (delete it to read the images again)", log)


def write_cache(cache: Path, stats: dict) -> None:
    write_json_cache(cache, stats, "cannot write the band-statistics cache %s (%s); the next run reads the images again", log)


def band_statistics(source, cache_dir: str | Path | None = None, split: str = "train") -> dict:
    """{"mean", "std", "min", "max": one value per band, "images": n, "pixels": valid pixels}.

    `source` is a DataModule (its `split` stage, read afresh without transforms) or a dataset
    (an ImageMaskDataset: `image_paths` and `read_image`). With `cache_dir`, the result is read
    from or written to `<cache_dir>/band_statistics/<key>.json`.
    """
    if hasattr(source, "splits") and callable(getattr(source, "dataset", None)):
        dataset, reader, workers = source.dataset(split=source.splits[split], transform=None), repr(source.dataset), \
            getattr(source, "num_workers", 0)
    else:
        dataset, reader, workers = source, f"{type(source).__module__}.{type(source).__qualname__}", 0
    if not hasattr(dataset, "image_paths") or not hasattr(dataset, "read_image"):
        raise SemsegError(
            f"band statistics read the image files of the {split} split, but {type(dataset).__name__} lists none "
            "(image_paths, read_image); give data.mean and data.std explicitly."
        )
    bands = getattr(dataset, "in_channels", 3)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / CACHE_FOLDER / f"{cache_key(dataset, reader)}.json"
        stats = read_cache(cache, bands) if cache.is_file() else None
        if stats is not None:
            return stats
    log.info("computing the per-band statistics of %d images", len(dataset.image_paths))
    stats = compute(dataset, workers)
    if cache is not None:
        write_cache(cache, stats)
    return stats
