"""Segment images with a checkpoint: one palette PNG mask and one colour overlay per image.

    python -m semseg.predict ckpt_path=<run>/checkpoints/best.ckpt input=<image|folder|glob> output=<folder>
    python -m semseg.predict ... inference=slide inference.crop_size=512 inference.stride=341

Images of any size are accepted (grayscale and RGBA are converted to RGB); slide inference keeps
memory bounded on large ones.
"""

import glob
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from rich.progress import track

from semseg.checkpoint import load_model
from semseg.data.palette import colorize, save_palette_png
from semseg.data.pairs import read_image
from semseg.errors import SemsegError
from semseg.utils.config import CONFIG_DIR, instantiate, print_config_tree, report_user_errors

log = logging.getLogger("semseg.predict")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def find_images(spec: str) -> list[Path]:
    """The image files named by `spec`: one file, the images of a folder, or a glob pattern."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SemsegError(
                f"input folder {path} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}). "
                "Point input= at a folder of images, an image file or a glob like 'photos/*.jpg'."
            )
        return files
    files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not files:
        raise SemsegError(
            f"input={spec} matches no file. Pass an image file, a folder of images, or a glob "
            "pattern like 'photos/*.jpg' (quote it in the shell)."
        )
    return files


def save_prediction(image: np.ndarray, mask: np.ndarray, out_dir: Path, name: str, alpha: float) -> None:
    """Write `<name>.png` (palette PNG, pixel = class index) and `<name>_overlay.png`."""
    save_palette_png(mask, out_dir / f"{name}.png")
    overlay = (1 - alpha) * image + alpha * colorize(mask)
    Image.fromarray(overlay.round().astype(np.uint8)).save(out_dir / f"{name}_overlay.png")


def predict(cfg: DictConfig) -> list[Path]:
    """Segment every input image; return the paths of the masks written."""
    images = find_images(str(cfg.input))
    model, meta = load_model(cfg.ckpt_path)
    model.to(cfg.device)
    inference = instantiate(cfg.inference)
    inference.check(model.net)
    transform = instantiate(cfg.transform)
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in track(images, description="predicting"):
        image = read_image(path)
        batch = transform(image=image)["image"].unsqueeze(0).to(cfg.device)
        with torch.inference_mode():
            mask = inference(model.net, batch).argmax(1)[0].cpu().numpy()
        save_prediction(image, mask, out_dir, path.stem, cfg.overlay_alpha)
        written.append(out_dir / f"{path.stem}.png")
    log.info("wrote %d masks and overlays to %s (classes %s)", len(written), out_dir, meta["class_names"])
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict.yaml")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if cfg.extras.print_config:
        print_config_tree(cfg)
    predict(cfg)


if __name__ == "__main__":
    main()
