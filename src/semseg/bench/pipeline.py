"""Will the data loader starve training? The `data=voc` training pipeline on VOC-sized JPEGs.

A temporary VOC tree holds synthetic textured scenes at 500×375 (JPEG + palette PNG). Three
things run in turn, round after round: one epoch of the real training DataLoader (default
workers and batch, albumentations `scale_crop_train` at crop 320), one epoch of the same loader
with an equivalent torchvision.transforms.v2 pipeline, and training steps of the default model
on 320² batches (what training consumes). Then each stage is timed alone, in this process.

`ScaleCropFlip` is mmsegmentation's geometry in torchvision v2; `same_geometry` replays the
parameters albumentations sampled through it, so the two pipelines can be checked pixel for pixel.
"""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from semseg.bench.loop import train_step
from semseg.bench.timing import alternate, markdown_table, median, seconds, section
from semseg.models.net import IGNORE_INDEX
from semseg.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from semseg.data.palette import save_palette_png
from semseg.data.synthetic import make_sample
from semseg.data.voc_layout import IMAGE_DIR, MASK_DIR, write_split_lists
from semseg.utils.config import compose_config, instantiate

VOC_SIZE = (375, 500)  # (height, width) of a typical Pascal VOC image


def resize_nearest(mask: tv_tensors.Mask, size) -> tv_tensors.Mask:
    """Nearest-neighbour resize indexed as cv2's INTER_NEAREST: source index floor(i / (new/old))
    in double precision. torch's nearest computes it in float32 and, at about one scale in five,
    takes a row or column one off cv2's."""
    rows, cols = (
        (torch.arange(new, dtype=torch.float64) * (1.0 / (new / old))).floor().long().clamp(max=old - 1)
        for new, old in zip(size, mask.shape[-2:])
    )
    return tv_tensors.wrap(mask[..., rows[:, None], cols], like=mask)


def scale_crop_flip(inpt, size, top: int, left: int, flip: bool, crop_size):
    """Resize to `size` (bilinear image, nearest mask), pad bottom/right to the crop (image 0,
    mask 255), crop at (top, left), then flip horizontally if asked."""
    if isinstance(inpt, tv_tensors.Mask):
        out, fill = resize_nearest(inpt, size), IGNORE_INDEX
    else:
        out, fill = TF.resize(inpt, list(size), interpolation=v2.InterpolationMode.BILINEAR, antialias=False), 0
    (height, width), (crop_h, crop_w) = size, crop_size
    out = TF.pad(out, [0, 0, max(crop_w - width, 0), max(crop_h - height, 0)], fill=fill)
    out = TF.crop(out, top, left, crop_h, crop_w)
    return TF.horizontal_flip(out) if flip else out


class ScaleCropFlip(v2.Transform):
    """Random scale in `scale`, pad to `crop_size`, random crop, flip with probability `flip_p`:
    the geometry of `configs/data/transforms/scale_crop_train.yaml` (cv2 rounds sizes down)."""

    def __init__(self, crop_size, scale=(0.5, 2.0), flip_p: float = 0.5):
        super().__init__()
        self.crop_size, self.scale, self.flip_p = tuple(crop_size), scale, flip_p

    def make_params(self, flat_inputs: list) -> dict:
        height, width = v2.query_size(flat_inputs)
        factor = float(torch.empty(()).uniform_(*self.scale))
        size = (int(height * factor), int(width * factor))
        top, left = (int(torch.randint(0, max(s, c) - c + 1, ())) for s, c in zip(size, self.crop_size))
        return {"size": size, "top": top, "left": left, "flip": bool(torch.rand(()) < self.flip_p)}

    def transform(self, inpt, params: dict):
        return scale_crop_flip(inpt, crop_size=self.crop_size, **params)


class TorchvisionPipeline:
    """The v2 equivalent of `scale_crop_train`, called like albumentations: (image=, mask=) numpy."""

    def __init__(self, crop_size):
        self.steps = [
            ScaleCropFlip(crop_size),
            v2.RandomApply([v2.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05)], p=0.5),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
        self.transforms = [to_tv_tensors, *self.steps]

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict:
        sample = {"image": image, "mask": mask}
        for step in self.transforms:
            sample = apply_stage(step, sample)
        return sample


def to_tv_tensors(image: np.ndarray, mask: np.ndarray) -> dict:
    return {"image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
            "mask": tv_tensors.Mask(torch.from_numpy(mask))}


def apply_stage(step, sample: dict) -> dict:
    """One transform of either library (or `to_tv_tensors`) on an {image, mask} dict."""
    if isinstance(step, v2.Transform):
        image, mask = step(sample["image"], sample["mask"])
        return {"image": image, "mask": mask}
    return step(image=sample["image"], mask=sample["mask"])


def stage_name(step) -> str:
    return getattr(step, "__name__", type(step).__name__)


def geometric_part(pipeline: A.Compose) -> A.Compose:
    """The transforms of an albumentations pipeline that move pixels, recording their parameters."""
    return A.Compose([t for t in pipeline.transforms if isinstance(t, A.DualTransform)], save_applied_params=True)


def same_geometry(geometry: A.Compose, image: np.ndarray, mask: np.ndarray, crop_size) -> dict:
    """Run albumentations' geometry, replay its sampled parameters through `scale_crop_flip`, compare.

    Returns whether the masks are identical and the largest image difference (0-255 levels).
    """
    out = geometry(image=image, mask=mask)
    applied = dict(out["applied_transforms"])
    height, width = mask.shape
    scale = applied["RandomScale"]["scale"]
    x_min, y_min = applied["RandomCrop"]["crop_coords"][:2]
    params = dict(size=(int(height * scale), int(width * scale)), top=y_min, left=x_min,
                  flip="HorizontalFlip" in applied, crop_size=crop_size)
    ours = {key: scale_crop_flip(value, **params) for key, value in to_tv_tensors(image, mask).items()}
    theirs = to_tv_tensors(out["image"], out["mask"])
    return {"mask_equal": torch.equal(ours["mask"], theirs["mask"]),
            "image_max_diff": int((ours["image"].int() - theirs["image"].int()).abs().max())}


def write_voc_like(root: Path, count: int, size=VOC_SIZE, seed: int = 0) -> Path:
    """`root/VOCdevkit/VOC2012`: `count` synthetic scenes as JPEG (quality 90) + palette PNG,
    listed in both train and val."""
    rng = np.random.default_rng(seed)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    (voc / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (voc / MASK_DIR).mkdir(parents=True, exist_ok=True)
    ids = [f"bench_{index:04d}" for index in range(count)]
    for image_id in ids:
        image, mask = make_sample(max(size), rng)
        Image.fromarray(image[: size[0], : size[1]]).save(voc / IMAGE_DIR / f"{image_id}.jpg", quality=90)
        save_palette_png(mask[: size[0], : size[1]], voc / MASK_DIR / f"{image_id}.png")
    write_split_lists(voc, {"train": ids, "val": ids})
    return Path(root)


def voc_config(root: Path, crop: int, overrides: list[str] = ()):
    return compose_config("train.yaml", [
        "data=voc", f"data.root={root}", f"data.crop_size=[{crop},{crop}]", "extras.print_config=false",
        f"paths.log_dir={root / 'logs'}", *overrides], root / "run")


def loader_epoch(loader) -> Callable:
    """A side: one pass over `loader`, returning seconds per image."""
    def run() -> float:
        started, images = time.perf_counter(), 0
        for batch in loader:
            images += len(batch["image"])
        return (time.perf_counter() - started) / images
    return run


def training_steps(module, batch: dict, steps: int) -> Callable:
    """A side: `steps` training steps of `module`'s net on one batch, returning seconds per image."""
    net = module.net.train()
    optimizer = module.optimizer_factory(params=net.parameters())

    train_step(net, optimizer, batch)  # warm-up
    return lambda: [seconds(lambda: train_step(net, optimizer, batch)) / len(batch["image"]) for _ in range(steps)]


def stage_costs(pipelines: dict[str, list], dataset, count: int) -> dict[str, dict[str, float]]:
    """Mean milliseconds per image of every stage (decode, each transform, collate), in this process."""
    costs = {name: {"decode (JPEG + PNG)": []} | {stage_name(t): [] for t in steps} | {"collate": []}
             for name, steps in pipelines.items()}
    for index in range(count):
        for name, steps in pipelines.items():
            started = time.perf_counter()
            image, mask = dataset.load(index)
            costs[name]["decode (JPEG + PNG)"].append(time.perf_counter() - started)
            sample = {"image": image, "mask": mask}
            for step in steps:
                started = time.perf_counter()
                sample = apply_stage(step, sample)
                costs[name][stage_name(step)].append(time.perf_counter() - started)
            batch = [{"image": sample["image"], "mask": sample["mask"]}] * 8
            costs[name]["collate"].append(seconds(lambda: default_collate(batch)) / len(batch))
    return {name: {stage: 1e3 * sum(times) / len(times) for stage, times in stages.items()}
            for name, stages in costs.items()}


def measure_pipeline(count: int = 48, crop: int = 320, rounds: int = 4, steps: int = 1,
                     overrides: list[str] = ()) -> dict:
    """Loader throughput (both libraries), training consumption, stage costs and the geometry check."""
    with tempfile.TemporaryDirectory() as tmp:
        root = write_voc_like(Path(tmp), count)
        cfg = voc_config(root, crop, overrides)
        datamodules = {"albumentations": instantiate(cfg.data),
                       "torchvision v2": instantiate(cfg.data, train_transform=TorchvisionPipeline(cfg.data.crop_size))}
        loaders = {}
        for name, datamodule in datamodules.items():
            datamodule.setup("fit")
            loaders[name] = datamodule.train_dataloader()
            loader_epoch(loaders[name])()  # warm-up: starts the persistent workers
        module = instantiate(cfg.model)
        batch = next(iter(loaders["albumentations"]))
        sides = {f"loader, {name}": loader_epoch(loader) for name, loader in loaders.items()}
        sides["training consumes"] = training_steps(module, batch, steps)
        per_image = alternate(sides, rounds)
        dataset = datamodules["albumentations"].datasets["train"]
        albumentations = dataset.transform
        geometry = geometric_part(albumentations)
        checks = [same_geometry(geometry, *dataset.load(i), cfg.data.crop_size) for i in range(count)]
        costs = stage_costs({"albumentations": list(albumentations.transforms),
                             "torchvision v2": TorchvisionPipeline(cfg.data.crop_size).transforms}, dataset, count)
    return {"images_per_s": {name: 1 / median(times) for name, times in per_image.items()},
            "costs": costs, "checks": checks, "batch_size": cfg.data.batch_size,
            "num_workers": cfg.data.num_workers, "crop": crop, "count": count, "rounds": rounds}


def report(**kwargs) -> str:
    result = measure_pipeline(**kwargs)
    rate = result["images_per_s"]
    consumed = rate["training consumes"]
    rows = [[name, f"{value:.1f}", f"{value / consumed:.1f}×" if name != "training consumes" else "1×"]
            for name, value in rate.items()]
    throughput = markdown_table(["side", "images/s", "÷ what training consumes"], rows)
    stages = list(dict.fromkeys(s for costs in result["costs"].values() for s in costs))
    cost_rows = [[stage, *(f"{costs[stage]:.2f}" if stage in costs else "" for costs in result["costs"].values())]
                 for stage in stages]
    cost_rows.append(["total", *(f"{sum(costs.values()):.2f}" for costs in result["costs"].values())])
    costs = markdown_table(["stage (ms per image, one process)", *result["costs"]], cost_rows)
    checks = result["checks"]
    equal = sum(check["mask_equal"] for check in checks)
    return section("Data pipeline: does the loader keep up?", throughput + "\n\n" + costs, [
        f"{result['count']} synthetic scenes at 500×375 (JPEG quality 90, palette PNG masks) in a "
        f"temporary VOC tree; `data=voc data.crop_size=[{result['crop']},{result['crop']}]` with its "
        f"defaults: batch {result['batch_size']}, {result['num_workers']} workers (on 2 cores). "
        f"Loader rows: images/s of whole epochs of the training DataLoader (decode + transforms + "
        f"collate), persistent workers warmed up; training row: forward + backward + AdamW of the "
        f"default model (U-Net, `tiny_resnet`, 21 classes) on one {result['crop']}² batch, no loader. "
        f"The three sides alternate for {result['rounds']} rounds; medians. Note the loader was "
        "measured alone: during real training its workers share the same 2 cores with the model.",
        f"Geometry check on the {len(checks)} images: the scale, crop offset and flip that "
        f"albumentations sampled, replayed through the v2 `ScaleCropFlip`: masks identical on "
        f"{equal}/{len(checks)}, largest image difference "
        f"{max(check['image_max_diff'] for check in checks)} grey levels (cv2's fixed-point vs "
        "torch's float bilinear). The v2 photometric step is `ColorJitter` with the same ranges "
        "(its own implementation, not checked for identity)."])
