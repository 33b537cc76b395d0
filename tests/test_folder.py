"""data=folder (your own images and masks) and data=camvid, read from real files on disk."""

import shutil

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from semseg.data.folder import FolderDataset
from semseg.errors import SemsegError
from semseg.train import train
from semseg.utils.config import instantiate
from tests.helpers.cli import PYTHON, run_cli
from tests.helpers.disk_formats import (
    FOLDER_COLORS,
    make_camvid,
    make_folder,
    write_png,
)
from tests.helpers.settings import REPO

CLASSES = "data.class_names=[background,person,tree]"
COLOURED = [CLASSES, f"data.colors={FOLDER_COLORS}".replace(" ", ""), "data.mask_suffix=_mask",
            "data.label_map={3:255}"]


@pytest.fixture(scope="module")
def folder_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mine")
    return root, make_folder(root)


@pytest.fixture
def folder_copy(folder_tree, tmp_path):
    return shutil.copytree(folder_tree[0], tmp_path / "mine")


def dataset(root, split="train", **settings) -> FolderDataset:
    options = dict(num_classes=3, mask_suffix="_mask", colors=FOLDER_COLORS, label_map={3: 255}) | settings
    return FolderDataset(root, split, **options)


def test_nested_jpegs_with_rgb_colour_masks_are_read_exactly(make_cfg, folder_tree):
    root, raw = folder_tree
    datamodule = instantiate(make_cfg(["data=folder", f"data.root={root}", *COLOURED]).data)
    datamodule.setup("fit")
    train_set = datamodule.datasets["train"]
    assert train_set.names == ["0006", "park/0004", "park/0005", "street/a/0001", "street/a/0002", "street/b/0003"]
    for index, name in enumerate(train_set.names):
        image, mask = train_set.load(index)
        expected = raw[f"train/{name}"].copy()
        expected[expected == 3] = 255  # the void colour, mapped to ignore by data.label_map
        assert image.dtype == np.uint8 and image.shape == (*expected.shape, 3), "grayscale and RGBA become RGB"
        assert np.array_equal(mask, expected), name
    item = datamodule.datasets["val"][1]  # a portrait grayscale PNG, through the eval transform
    assert item["image"].shape == (3, 60, 44) and item["name"] == "park/0102"
    assert datamodule.palette[:3] == FOLDER_COLORS[:3], "the palette defaults to data.colors"


def test_grayscale_images_with_0_255_masks_train_through_label_map(make_cfg, tmp_path):
    root = tmp_path / "cells"
    rng = np.random.default_rng(0)
    for split, sizes in {"train": [(40, 52), (52, 40), (44, 44), (40, 52)], "val": [(52, 40), (40, 52)]}.items():
        for number, (h, w) in enumerate(sizes):
            image = root / "images" / split / f"plate{number}" / "cells.png"
            image.parent.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L").save(image)
            values = np.zeros((h, w), dtype=np.uint8)
            values[h // 4 : h // 2, w // 4 : w // 2] = 255
            write_png(root / "masks" / split / f"plate{number}" / "cells.png", values, palette=False)
    cfg = make_cfg(["data=folder", f"data.root={root}", "data.class_names=[background,cell]", "data.label_map={255:1}",
                    "data.crop_size=[32,32]", "trainer.max_epochs=1", "logger=csv"])
    mask = instantiate(cfg.data).dataset(split="train").load(0)[1]
    assert set(np.unique(mask)) == {0, 1}, "0/255 masks become classes 0 and 1"
    metrics = train(cfg)
    assert 0 <= metrics["test/mIoU"] <= 1 and "test/IoU/cell" in metrics


def test_masks_beside_their_images(folder_copy):
    for mask in (folder_copy / "masks").rglob("*_mask.png"):
        target = folder_copy / "images" / mask.relative_to(folder_copy / "masks")
        shutil.move(mask, target)
    shared = dataset(folder_copy, "val", image_dir="images/{split}", mask_dir="images/{split}")
    assert shared.names == ["0103", "park/0102", "street/0101"]
    assert all(p.stem.endswith("_mask") for p in shared.mask_paths)
    with pytest.raises(SemsegError, match=r"are the same folder .* set data.mask_suffix"):
        dataset(folder_copy, "val", image_dir="images/{split}", mask_dir="images/{split}", mask_suffix="")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: shutil.rmtree(root / "images/val"),
         r"data.image_dir=images/\{split\} gives .*images/val for split 'val', which does not exist; folders in .*images: \['train'\]"),
        (lambda root: [p.unlink() for p in (root / "images/val").rglob("*.*")],
         r"split 'val' has no images: nothing matches .*images/val/\*\*/\*\{.jpg,.jpeg,.png"),
        (lambda root: (root / "masks/val/park/0102_mask.png").unlink(),
         r"1 image\(s\) of split 'val' have no mask: .*park/0102.png. The mask of .* would be .*masks/val/park/0102_mask.png"),
        (lambda root: (root / "images/val/street/0101.jpg").unlink(),
         r"1 mask\(s\) of split 'val' have no image in .*images/val: .*street/0101_mask.png"),
        (lambda root: shutil.copy(root / "images/val/0103.png", root / "images/val/0103.jpg"),
         r"0103.jpg and .*0103.png have the same name apart from the extension"),
        (lambda root: Image.new("RGB", (40, 40)).save(root / "masks/val/0103_mask.jpg"),
         r"0103_mask.jpg and .*0103_mask.png have the same name"),
    ],
    ids=["no-folder", "empty-split", "image-without-mask", "mask-without-image", "two-images-one-stem", "two-masks"],
)
def test_layout_problems_are_named_with_the_fix(folder_copy, change, message):
    change(folder_copy)
    with pytest.raises(SemsegError, match=message):
        dataset(folder_copy, "val")


def test_bad_mask_files_are_named_with_the_fix(folder_copy):
    masks = folder_copy / "masks/val"
    Image.new("RGB", (60, 44), (1, 2, 3)).save(masks / "street/0101_mask.png")  # 44 x 60 like its image
    Image.fromarray(np.full((60, 44), 300, dtype=np.uint16)).save(masks / "park/0102_mask.png")
    Image.new("RGB", (30, 30)).save(masks / "0103_mask.png")
    val = dataset(folder_copy, "val")
    by_name = dict(zip(val.names, range(len(val))))
    with pytest.raises(SemsegError, match=r"0101_mask.png holds colours not in data.colors: \(1, 2, 3\)"):
        val.load(by_name["street/0101"])
    with pytest.raises(SemsegError, match=r"0102_mask.png is a I;16 .* masks must be 8-bit"):
        val.load(by_name["park/0102"])
    with pytest.raises(SemsegError, match=r"image .*0103.png is 40x40 but its mask .*0103_mask.png is 30x30"):
        val.load(by_name["0103"])
    # without the label map, the void colour (raw value 3) is no class
    with pytest.raises(SemsegError, match=r"holds colours \[\[255, 255, 255\]\] \(raw values \[3\]\) that map to no "
                                          r"class: classes are 0..2 .* \+\+data.label_map=\{3:255\}"):
        dataset(folder_copy, "train", label_map={}).load(0)
    with pytest.raises(SemsegError, match=r"is an RGB colour image; list the colour of each raw value in data.colors"):
        dataset(folder_copy, "train", colors=None).load(0)
    with pytest.raises(SemsegError, match=r"data.label_map maps 3 to 7, which is neither a class index \(0..2"):
        dataset(folder_copy, "train", label_map={3: 7})
    (masks / "park/0102_mask.png").unlink()
    Image.new("L", (44, 60)).save(masks / "park/0102_mask.jpg")
    with pytest.raises(SemsegError, match=r"0102_mask.jpg is a .jpg file: lossy compression changes pixel values.* "
                                          r"Save masks as PNG; for binary masks .* set data.mask_threshold=128"):
        dataset(folder_copy, "val")


def test_exif_rotated_photos_are_read_upright(folder_copy):
    """A phone photo stored 56 wide x 40 high with EXIF orientation 6 (turn 90 degrees) is shown
    40 wide x 56 high; masks drawn on what viewers show match that."""
    image = folder_copy / "images/train/street/a/0001.jpg"
    pixels = np.array(Image.open(folder_copy / "images/train/street/a/0002.jpg"))  # 56 x 40 (h x w)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.rot90(pixels, k=1).copy()).save(image, exif=exif.tobytes(), quality=95)
    shutil.copy(folder_copy / "masks/train/street/a/0002_mask.png", folder_copy / "masks/train/street/a/0001_mask.png")
    train_set = dataset(folder_copy)
    upright, mask = train_set.load(train_set.names.index("street/a/0001"))
    assert upright.shape[:2] == mask.shape == (56, 40)
    with Image.open(image) as stored:
        assert stored.size == (56, 40) and np.array_equal(upright, np.rot90(np.array(stored), k=-1))
    shutil.copy(folder_copy / "masks/train/park/0005_mask.png", folder_copy / "masks/train/street/a/0001_mask.png")
    with pytest.raises(SemsegError, match=r"is 40x56 but its mask .* is 56x40.*EXIF orientation turns it"):
        train_set.load(train_set.names.index("street/a/0001"))


def test_camvid_layout_ignores_void_and_tests_on_test_when_present(make_cfg, tmp_path):
    root = make_camvid(tmp_path / "camvid")
    cfg = make_cfg(["data=camvid", f"data.root={root}"])
    assert cfg.data.num_classes == 11 and cfg.data.class_names[6] == "signsymbol"
    datamodule = instantiate(cfg.data)
    assert datamodule.splits == {"train": "train", "val": "val", "test": "val"}
    mask = datamodule.dataset(split="train").load(0)[1]
    with Image.open(root / "trainannot" / "0001TP_train_0000.png") as png:
        raw = np.array(png)
    assert np.array_equal(mask == 255, raw == 11) and np.array_equal(mask[raw != 11], raw[raw != 11])
    assert datamodule.palette[3] == [128, 64, 128], "road in CamVid's colour"
    make_camvid(root, with_test=True)
    assert instantiate(cfg.data).splits["test"] == "test"


def test_camvid_trains_from_a_weights_file_with_its_normalisation(make_cfg, tmp_path):
    """The README's CamVid command at a tiny size; the weights file stands in for the ImageNet one."""
    from safetensors.torch import save_file

    weights = tmp_path / "tf_efficientnet_lite0.safetensors"
    source = timm.create_model("tf_efficientnet_lite0")
    save_file(source.state_dict(), weights)
    root = make_camvid(tmp_path / "camvid", with_test=True)
    cfg = make_cfg(["data=camvid", f"data.root={root}", "model/encoder=tf_efficientnet_lite0",
                    f"model.net.encoder.pretrained={weights}", "trainer.max_epochs=1", "data.crop_size=[32,32]",
                    "data.batch_size=2", "logger=csv", "callbacks=model_checkpoint"])
    metrics = train(cfg)
    assert "test/IoU/bicyclist" in metrics
    checkpoint = torch.load(f"{cfg.paths.output_dir}/checkpoints/best.ckpt", weights_only=True)
    meta = checkpoint["semseg"]
    assert meta["mean"] == meta["std"] == [0.5, 0.5, 0.5], "the encoder's pretrained statistics"
    assert meta["palette"][0] == [128, 128, 128] and meta["class_names"][0] == "sky"


def test_inspect_on_camvid_and_voc_layouts(tmp_path):
    from hydra.core.global_hydra import GlobalHydra

    from semseg.data.inspect import inspect_dataset
    from semseg.utils.config import compose_config
    from tests.helpers.disk_formats import make_voc

    camvid = make_camvid(tmp_path / "camvid")
    cfg = compose_config("inspect.yaml", ["data=camvid", f"data.root={camvid}", f"output={tmp_path / 'c'}"], tmp_path / "c")
    reports = inspect_dataset(cfg)
    assert [(r.split, r.images) for r in reports] == [("train", 3), ("val", 2)]  # test is val: once
    assert reports[0].pixels[255] >= 2 * (48 + 36 + 48) and not reports[0].example, "void (11) is ignore, not 'no class'"
    voc = make_voc(tmp_path / "voc")
    cfg = compose_config("inspect.yaml", ["data=voc", f"data.root={voc}", "max_images=2", f"output={tmp_path / 'v'}"],
                         tmp_path / "v")
    reports = inspect_dataset(cfg)
    assert [(r.split, r.images, sum(r.sizes.values())) for r in reports] == [("train", 2, 2), ("val", 2, 2)]
    GlobalHydra.instance().clear()


def test_inspect_reports_sizes_class_shares_and_problems(folder_copy, tmp_path):
    base = [PYTHON, "-m", "semseg.data.inspect", "data=folder", f"data.root={folder_copy}", *COLOURED,
            f"paths.log_dir={tmp_path / 'logs'}", "data.num_workers=0"]
    clean = run_cli([*base, f"output={tmp_path / 'clean'}"], cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert "split 'train': 6 images" in clean.stdout and "56x40 (2)" in clean.stdout  # width x height
    sizes = (tmp_path / "clean/sizes.csv").read_text().splitlines()
    assert sizes[0] == "split,width,height,images" and "train,56,40,2" in sizes and "val,44,60,1" in sizes
    rows = [line.split(",") for line in (tmp_path / "clean/classes.csv").read_text().splitlines()[1:]]
    pixels = {(split, name): int(count) for split, value, name, count, share, images in rows}
    assert pixels[("val", "ignore")] == 3 * 16, "the 4x4 void block of every val mask"
    assert sum(v for (split, _), v in pixels.items() if split == "val") == 44 * 60 + 60 * 44 + 40 * 40
    assert (tmp_path / "clean/class_frequency.png").stat().st_size > 5000

    write_png(folder_copy / "masks/val/park/0102_mask.png", np.full((60, 44), 9), palette=False)
    (folder_copy / "images/val/0103.png").write_bytes(b"broken")
    bad = run_cli([*base, f"output={tmp_path / 'bad'}", "~data.label_map"], cwd=tmp_path)
    assert bad.returncode == 1
    assert "value 3 is no class" in bad.stdout and "value 9 is no class" in bad.stdout
    assert "cannot read image" in (tmp_path / "bad/problems.csv").read_text()


def test_folder_mistakes_on_the_command_line_are_one_line(tmp_path):
    result = run_cli([PYTHON, "-m", "semseg.train", "data=folder", f"data.root={tmp_path / 'nowhere'}", CLASSES,
                      f"paths.log_dir={tmp_path / 'logs'}", "logger=csv"], cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("semseg: error: data.image_dir=images/{split} gives")
    missing = run_cli([PYTHON, "-m", "semseg.train", "data=folder", f"data.root={tmp_path}",
                       f"paths.log_dir={tmp_path / 'logs'}"], cwd=REPO)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "semseg: error: data.class_names has no value (??? in its config); set it on the command line, "
        "e.g. data.class_names=<value>."
    )


def test_palette_masks_are_read_by_their_colours_when_data_colors_is_given(folder_copy):
    """A palette PNG whose palette order differs from data.colors: the colour shown decides."""
    mask_path = folder_copy / "masks/val/0103_mask.png"
    rgb = np.array(Image.open(mask_path).convert("RGB"))
    expected = dataset(folder_copy, "val").read_mask(mask_path)
    reordered = [FOLDER_COLORS[i] for i in (3, 2, 1, 0)]  # palette index i shows colour reordered[i]
    indices = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for index, colour in enumerate(reordered):
        indices[(rgb == colour).all(-1)] = index
    png = Image.fromarray(indices, mode="P")
    png.putpalette([c for colour in reordered for c in colour])
    png.save(mask_path)
    assert np.array_equal(dataset(folder_copy, "val").read_mask(mask_path), expected)


def test_class_names_must_be_a_list(make_cfg, folder_tree):
    cfg = make_cfg(["data=folder", f"data.root={folder_tree[0]}", "data.class_names=cell"])
    with pytest.raises(SemsegError, match=r"data.class_names='cell' must be a list .* data.class_names=\[background,cell\]"):
        instantiate(cfg.data)
