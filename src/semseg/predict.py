"""Segment images with a checkpoint: one palette PNG mask and one colour overlay per image.

    python -m semseg.predict ckpt_path=<run>/checkpoints/best.ckpt input=<image|folder|glob> output=<folder>
    python -m semseg.predict ... inference=slide inference.crop_size=512 inference.stride=341
    python -m semseg.predict ckpt_path=model.onnx ...     # a network exported by semseg.export, run by ONNX Runtime

Images of any size are accepted (grayscale and RGBA are converted to RGB); slide inference keeps
memory bounded on large ones. Images are normalised as in training (stored in the checkpoint).
Outputs mirror the input's relative paths; they never replace an input file, nor any file already
in the output folder unless `overwrite=true`. An unreadable image is listed and skipped; the run
then ends with an error after the others are written.
"""

import glob
import logging
from pathlib import Path

import albumentations as A
import hydra
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from omegaconf import DictConfig
from PIL import Image
from rich.progress import track

from semseg.data.bands import check_bands, rgb_band_indices, rgb_view
from semseg.data.io import IMAGE_SUFFIXES, image_files, read_image
from semseg.data.palette import colorize, save_palette_png
from semseg.data.transforms import Normalize
from semseg.errors import SemsegError
from semseg.run_setup import set_up_eval
from semseg.utils.cli import refuse_unknown_options, report_user_errors
from semseg.utils.config import CONFIG_DIR, instantiate, print_config_tree

log = logging.getLogger("semseg.predict")


def _glob_base(pattern: Path) -> Path:
    """The folder a glob pattern starts from: its leading parts without wildcards."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def find_images(spec: str, exclude: Path | None = None) -> tuple[list[Path], Path]:
    """The image files named by `spec` (one file, the images of a folder and its subfolders, or a
    glob pattern), and the folder their output paths are relative to. When `exclude` (the output
    folder) is a subfolder of that folder, files under it are left out, so earlier predictions
    are never read as inputs."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], path.parent
    if path.is_dir():
        files = image_files(path)
        base = path
    else:
        matched = (Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        files = sorted({file.resolve(): file for file in matched}.values())  # once each, also through links
        base = _glob_base(path)
    outputs, root = (exclude.resolve() if exclude is not None else None), base.resolve()
    if outputs is not None and outputs != root and outputs.is_relative_to(root):
        files = [f for f in files if not f.resolve().is_relative_to(outputs)]
    if not files and path.is_dir():
        raise SemsegError(
            f"input folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)} in it and its "
            "subfolders). Point input= at a folder of images, an image file or a glob like 'photos/*.jpg'."
        )
    if not files:
        raise SemsegError(
            f"input={spec} matches no file. Pass an image file, a folder of images, or a glob "
            "pattern like 'photos/*.jpg' (quote it in the shell)."
        )
    return files, base


def output_names(images: list[Path], base: Path) -> list[Path]:
    """Each image's output path without suffix, relative to the output folder: its path under
    `base` without the extension; with it (`x_jpg`) where two images would share a name, and a
    number on top if even that is not enough (`x.jpg`, `x.JPG` on a case-insensitive disk)."""
    stems = [image.relative_to(base).with_suffix("") for image in images]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[str(stem).lower()] = counts.get(str(stem).lower(), 0) + 1
    names, taken = [], set()
    for image, stem in zip(images, stems):
        name = stem
        if counts[str(stem).lower()] > 1:
            name = stem.with_name(f"{stem.name}_{image.suffix.lstrip('.')}")
        number = 1
        while str(name).lower() in taken:
            number += 1
            name = stem.with_name(f"{stem.name}_{image.suffix.lstrip('.')}_{number}")
        if name != stem:
            log.warning("%s shares its name with another input: its outputs are named %s*.png", image, name)
        taken.add(str(name).lower())
        names.append(name)
    return names


def refuse_overwriting_inputs(images: list[Path], targets: list[Path]) -> None:
    inputs = {image.resolve() for image in images}
    for target in targets:
        if target.resolve() in inputs:
            raise SemsegError(
                f"predicting would overwrite the input image {target}. Choose an output folder apart "
                "from the images, e.g. output=predictions."
            )


def refuse_replacing_files(targets: list[Path], out_dir: Path, overwrite: bool) -> None:
    """Before anything is written: an output that is a file, or outputs that would replace files
    already there (ground-truth masks, earlier predictions), unless `overwrite=true`."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SemsegError(f"output={out_dir} is a file, not a folder; choose a folder for the masks, e.g. output=predictions.")
    existing = [target for target in targets if target.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(path) for path in existing[:3]) + (f" (and {len(existing) - 3} more)" if len(existing) > 3 else "")
        raise SemsegError(
            f"predicting would replace {len(existing)} file(s) already in output={out_dir}: {shown}. Choose an "
            "empty or new output folder, or pass overwrite=true to replace them."
        )


def save_prediction(image: np.ndarray, mask: np.ndarray, stem: Path, alpha: float, palette=None, rgb_bands=None) -> None:
    """Write `<stem>.png` (palette PNG, pixel = class index) and `<stem>_overlay.png` over the
    image's RGB view (`rgb_bands` of a multi-band image, semseg.data.bands)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_palette_png(mask, stem.with_name(f"{stem.name}.png"), palette)
    if image.dtype != np.uint8:  # 0-1 bands
        image = np.clip(image, 0, 1) * 255
    image = rgb_view(image.reshape(*image.shape[:2], -1).transpose(2, 0, 1), rgb_bands).transpose(1, 2, 0)
    overlay = (1 - alpha) * image + alpha * colorize(mask, palette)
    Image.fromarray(overlay.round().astype(np.uint8)).save(stem.with_name(f"{stem.name}_overlay.png"))


def normalizer(cfg: DictConfig) -> A.Compose:
    """The input normalisation the run set-up settled (`mean` / `std`: given, else the checkpoint's)."""
    return A.Compose([Normalize(mean=list(cfg.mean), std=list(cfg.std)), ToTensorV2()])


def band_settings(cfg: DictConfig, meta: dict) -> tuple[int, list[int] | None, list[int] | None]:
    """How to read the images: the model's band count, and `bands` / `rgb_bands` (given, else
    as in training)."""
    in_channels = meta.get("in_channels") or 3
    bands = check_bands(cfg.get("bands") if cfg.get("bands") is not None else meta.get("bands"), in_channels)
    rgb_bands = cfg.get("rgb_bands") if cfg.get("rgb_bands") is not None else meta.get("rgb_bands")
    return in_channels, bands, rgb_band_indices(in_channels, rgb_bands)


def load_net(path: str, device: str, trusted_targets=()):
    """The network and its metadata: from a semseg.train checkpoint, or an ONNX file (ONNX Runtime)."""
    if Path(path).suffix == ".onnx":
        from semseg.onnx_net import OnnxNet

        net = OnnxNet(path, device)
        return net, net.meta
    from semseg.checkpoints.reading import (
        load_model,  # the model code: only for checkpoints
    )

    model, meta = load_model(path, trusted_targets)
    return model.net.to(device), meta


def predict(cfg: DictConfig) -> list[Path]:
    """Segment every input image; return the paths of the masks written."""
    out_dir = Path(cfg.output)
    images, base = find_images(str(cfg.input), exclude=out_dir)
    stems = [out_dir / name for name in output_names(images, base)]
    targets = [s.with_name(f"{s.name}{end}") for s in stems for end in (".png", "_overlay.png")]
    refuse_overwriting_inputs(images, targets)
    refuse_replacing_files(targets, out_dir, bool(cfg.get("overwrite")))
    net, meta = load_net(str(cfg.ckpt_path), cfg.device, cfg.get("trusted_targets") or [])
    inference = instantiate(cfg.inference)
    inference.check(net)
    set_up_eval(cfg, meta, normalization_keys="")
    transform = normalizer(cfg)
    in_channels, bands, rgb_bands = band_settings(cfg, meta)
    palette = meta.get("palette")
    written, failed = [], []
    for path, stem in track(list(zip(images, stems)), description="predicting"):
        try:
            image = read_image(path, in_channels, bands)
        except SemsegError as error:  # one unreadable file does not stop the others
            log.error("%s", error)
            failed.append(path)
            continue
        batch = transform(image=image)["image"].unsqueeze(0).to(cfg.device)
        with torch.inference_mode():
            mask = inference(net, batch).argmax(1)[0].cpu().numpy()
        save_prediction(image, mask, stem, cfg.overlay_alpha, palette, rgb_bands)
        written.append(stem.with_name(f"{stem.name}.png"))
    log.info("wrote %d masks and overlays to %s (classes %s)", len(written), out_dir, meta["class_names"])
    if failed:
        shown = ", ".join(str(path) for path in failed[:5]) + (f" (and {len(failed) - 5} more)" if len(failed) > 5 else "")
        raise SemsegError(
            f"{len(failed)} of {len(images)} images could not be read: {shown} (the log says why); the masks of "
            f"the other {len(written)} are in {out_dir}. Replace or remove those files."
        )
    return written


@refuse_unknown_options
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict.yaml")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if cfg.extras.print_config:
        print_config_tree(cfg)
    predict(cfg)


if __name__ == "__main__":
    main()
