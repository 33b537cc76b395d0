"""One LightningDataModule for every dataset: the dataset class and transforms come from config."""

from collections.abc import Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, default_collate

from semseg.data.bands import check_band_options, rgb_band_indices
from semseg.models.net import IGNORE_INDEX
from semseg.data.resumable import resumable_training_data
from semseg.data.transforms import drop_rgb_only
from semseg.data.verify import verify_files
from semseg.errors import SemsegError


def class_list(names) -> list[str]:
    """`data.class_names` as a list of 2 to 255 distinct names; a plain string (`data.class_names=cell`) is
    refused, not split into letters."""
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise SemsegError(
            f"data.class_names={names!r} must be a list with one name per class, e.g. "
            "data.class_names=[background,cell]."
        )
    names = [str(name) for name in names]
    if len(names) < 2:
        raise SemsegError(
            f"data.class_names={names} has {len(names)} class; a model chooses between at least two, so name "
            f"the pixels that are not {names[0] if names else 'a class'} too, e.g. data.class_names=[background,{names[0] if names else 'cell'}]."
        )
    if len(names) > IGNORE_INDEX:
        raise SemsegError(
            f"data.class_names has {len(names)} names; semseg supports at most {IGNORE_INDEX} classes (masks are "
            f"8-bit and {IGNORE_INDEX} is ignore). Merge classes, or map the rare ones to {IGNORE_INDEX} with data.label_map."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SemsegError(
            f"data.class_names names {', '.join(repeated)} more than once; each class needs its own name (its "
            "scores are logged as val/IoU/<name>). Rename one, or merge the classes with data.label_map."
        )
    return names


def pad_collate(items: list[dict]) -> dict:
    """Batch items of any sizes: images padded with 0 and masks with 255 (ignored) at the bottom and right.

    `size` holds each item's own (H, W), so evaluation can score every image at its own size and
    no prediction or metric depends on what else is in the batch. Other keys collate as usual.
    """
    sizes = torch.tensor([tuple(item["image"].shape[-2:]) for item in items])
    height, width = sizes.max(0).values.tolist()
    if (sizes == sizes[0]).all():
        images = torch.stack([item["image"] for item in items])
        masks = torch.stack([item["mask"] for item in items])
    else:
        images = items[0]["image"].new_zeros(len(items), items[0]["image"].shape[0], height, width)
        masks = items[0]["mask"].new_full((len(items), height, width), IGNORE_INDEX)
        for index, (item, (h, w)) in enumerate(zip(items, sizes.tolist())):
            images[index, :, :h, :w] = item["image"]
            masks[index, :h, :w] = item["mask"]
    rest = default_collate([{k: v for k, v in item.items() if k not in ("image", "mask")} for item in items])
    return {"image": images, "mask": masks, "size": sizes, **rest}


class BandedDatasets:
    """A dataset factory whose datasets read images with the band settings (`set_bands`).

    Its repr is the factory's while the settings are the defaults, so caches keyed by it
    (semseg.data.class_frequency) stay valid for RGB data.
    """

    def __init__(self, factory: Callable[..., Dataset], options: dict):
        self.factory, self.options = factory, dict(options)

    def __call__(self, **kwargs) -> Dataset:
        dataset = self.factory(**kwargs)
        if hasattr(dataset, "set_bands"):
            dataset.set_bands(**self.options)
        elif self.options != dict(in_channels=3, bands=None, nodata=None):
            raise SemsegError(
                f"{type(dataset).__name__} reads its images itself and takes no data.in_channels / data.bands / "
                "data.nodata; leave them at their defaults (3, null, null) for this dataset."
            )
        return dataset

    def __repr__(self) -> str:
        if self.options == dict(in_channels=3, bands=None, nodata=None):
            return repr(self.factory)
        return f"{self.factory!r} with {self.options}"


class SegmentationDataModule(L.LightningDataModule):
    """Builds train/val/test datasets from one dataset factory and serves them in batches.

    Args:
        dataset: partial dataset class taking `split=` and `transform=`.
        class_names: one name per class.
        num_classes: must equal len(class_names) when given; configs derive it from the list
            (`${len:${data.class_names}}`) so models can refer to it.
        root: the dataset folder (for messages; the dataset factory already knows it).
        splits: the split name to use for each stage, e.g. {train: train, val: val, test: val}.
        prepare: optional callable run once on rank 0 before setup (generate or download data).
        train_transform / eval_transform: albumentations pipelines (or any callable taking
            `image=`, `mask=` and returning a dict with both).
        batch_size: the global batch: with N processes each loads batch_size / N per step.
        download: the one switch `data.download=true` for every dataset; configs hand it to
            their `prepare` callable by interpolation (`download: ${data.download}`).
        crop_size: (height, width) of training crops; transform configs read it as
            `${data.crop_size}`, so one key sets every crop and pad of a pipeline.
        mean, std: the input normalisation the transform configs apply (`${data.mean}`), kept
            here for checkpoints (eval and predict reuse it) and to undo it in figures.
        palette: one RGB colour per class for masks and overlays; None takes the dataset's own
            (VOC, Cityscapes) or else the VOC colour map.
        verify: read and check every pair of each split once when it is set up, so a broken
            file stops the run in its first minute (semseg.data.verify).
        in_channels, bands, nodata, rgb_bands: how images are read and shown (semseg.data.bands):
            the model's input bands (3: 8-bit RGB), the files' 0-based bands to use, the value of
            pixels without data (their mask becomes 255), the bands figures show as RGB. With
            in_channels other than 3, the transforms' RGB-only steps are left out
            (semseg.data.transforms).
    """

    def __init__(
        self,
        dataset: Callable[..., Dataset],
        class_names: Sequence[str],
        splits: dict[str, str],
        num_classes: int | None = None,
        root: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        prepare: Callable[[], object] | None = None,
        train_transform: Callable | None = None,
        eval_transform: Callable | None = None,
        download: bool = False,
        crop_size: Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        verify: bool = False,
        in_channels: int = 3,
        bands: Sequence[int] | None = None,
        nodata: float | None = None,
        rgb_bands: Sequence[int] | None = None,
    ):
        super().__init__()
        options = check_band_options(in_channels, bands, nodata, rgb_bands)
        self.in_channels, self.bands, self.nodata = options["in_channels"], options["bands"], options["nodata"]
        self.rgb_bands = rgb_band_indices(self.in_channels, rgb_bands)
        self.dataset = BandedDatasets(dataset, options)
        self.class_names = class_list(class_names)
        if num_classes is not None and num_classes != len(self.class_names):
            raise SemsegError(
                f"data.num_classes={num_classes} but data.class_names has {len(self.class_names)} "
                f"names {self.class_names}; make them agree."
            )
        self.root = root
        self.splits = dict(splits)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prepare = prepare
        self.download = download
        self.crop_size = tuple(crop_size) if crop_size is not None else None
        train_transform = drop_rgb_only(train_transform, self.in_channels, "data.train_transform")
        eval_transform = drop_rgb_only(eval_transform, self.in_channels, "data.eval_transform")
        self.transforms = {"train": train_transform, "val": eval_transform, "test": eval_transform}
        self.mean = [float(v) for v in mean] if mean is not None else None
        self.std = [float(v) for v in std] if std is not None else None
        self._palette = [[int(c) for c in colour] for colour in palette] if palette else None
        self.verify = verify
        self.verified: set[str] = set()  # split names already checked (test may be val)
        self.datasets: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def palette(self) -> list[list[int]] | None:
        """The configured class colours, else the dataset's own, else None (the VOC colour map)."""
        if self._palette is not None:
            return self._palette
        for dataset in self.datasets.values():
            if getattr(dataset, "palette", None) is not None:
                return [[int(c) for c in colour] for colour in dataset.palette]
        return None

    def description(self) -> dict:
        """What inference outside this module needs to reproduce it: classes, normalisation, colours,
        and how images are read (in_channels, bands, nodata, rgb_bands)."""
        return {"class_names": self.class_names, "mean": self.mean, "std": self.std, "palette": self.palette,
                "in_channels": self.in_channels, "bands": self.bands, "nodata": self.nodata, "rgb_bands": self.rgb_bands}

    def prepare_data(self) -> None:
        if self.prepare is not None:
            self.prepare()

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage, ("train", "val", "test")
        )
        for name in wanted:
            if name not in self.datasets:
                self.datasets[name] = self.dataset(split=self.splits[name], transform=self.transforms[name])
                if self.verify and self.splits[name] not in self.verified:
                    verify_files(self.datasets[name], self.splits[name], self.num_workers)
                    self.verified.add(self.splits[name])

    @property
    def world_size(self) -> int:
        trainer = self.trainer
        return trainer.world_size if trainer is not None else 1

    @property
    def per_process_batch_size(self) -> int:
        """data.batch_size split evenly over the processes, so the global batch does not change."""
        if self.batch_size % self.world_size:
            raise SemsegError(
                f"data.batch_size={self.batch_size} is the global batch and must divide evenly over "
                f"{self.world_size} processes; use a multiple of {self.world_size}, e.g. "
                f"data.batch_size={self.world_size * max(1, round(self.batch_size / self.world_size))}."
            )
        return self.batch_size // self.world_size

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        """Training batches come in a resumable, seeded order (see semseg.data.resumable), shared
        out over the processes; evaluation is shared out unpadded.

        Lightning's default DistributedSampler pads an evaluation split with repeated images until
        it divides by the world size, which counts those images twice in mIoU. Here each process
        gets every N-th image instead (some one image more than others), and the confusion
        matrices summed over processes equal the single-process one exactly.
        """
        dataset, sampler = self.datasets[name], None
        batch_size = self.per_process_batch_size
        if shuffle:
            dataset, sampler = resumable_training_data(dataset, self.trainer)
        elif self.world_size > 1:
            if len(dataset) < self.world_size:
                raise SemsegError(
                    f"the {name} split '{self.splits[name]}' has {len(dataset)} images, fewer than the "
                    f"{self.world_size} processes; evaluate it with trainer.devices=1."
                )
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=self.world_size, rank=self.trainer.global_rank, shuffle=False
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=shuffle and len(dataset) > batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=pad_collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
