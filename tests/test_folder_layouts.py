"""data=folder for data as people have it: DRIVE's differently named pairs, Kvasir-SEG's JPEG masks,
one folder split by fractions or list files, ADE20K's zero label; read from real files on disk."""

import hashlib
import shutil

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from semseg.data.folder import FolderDataset, label_lookup
from semseg.utils.cli import template_hint
from semseg.data.inspect import inspect_dataset
from semseg.data.io import read_mask
from semseg.errors import SemsegError
from semseg.train import train
from semseg.utils.config import compose_config, instantiate
from tests.helpers.disk_formats import (
    make_ade20k,
    make_drive,
    make_kvasir,
    make_single_folder,
    write_jpeg,
    write_png,
)

TINY_RUN = ["data.crop_size=[32,32]", "trainer.max_epochs=1", "logger=csv"]
DRIVE_LAYOUT = ['data.image_dir="{split}/images"', 'data.mask_dir="{split}/1st_manual"', "data.pair_key='^(\\d+)_'",
                "data.splits={train:training,val:test,test:test}", "data.class_names=[background,vessel]"]
KVASIR_LAYOUT = ["data.image_dir=images", "data.mask_dir=masks", "data.mask_threshold=128",
                 "data.class_names=[background,polyp]"]


def files_under(root) -> dict:
    """Every file under root with its size and modification time, to prove nothing was written there."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_drive_pairs_images_and_masks_by_key_and_trains(make_cfg, tmp_path):
    root = tmp_path / "DRIVE"
    vessels = make_drive(root)
    before = files_under(root)
    cfg = make_cfg(["data=folder", f"data.root={root}", *DRIVE_LAYOUT, "data.mask_threshold=128", *TINY_RUN])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    train_set = datamodule.datasets["train"]
    assert train_set.names == ["21_training", "22_training", "23_training"], "item names stay the images' paths"
    assert [p.name for p in train_set.mask_paths] == ["21_manual1.gif", "22_manual1.gif", "23_manual1.gif"]
    for index, name in enumerate(train_set.names):
        image, mask = train_set.load(index)
        assert np.array_equal(mask, vessels[f"training/{name}"]) and image.shape[:2] == mask.shape
    metrics = train(cfg)
    assert "test/IoU/vessel" in metrics and 0 <= metrics["test/mIoU"] <= 1
    assert files_under(root) == before, "nothing is written under data.root"


def drive_set(root, **settings) -> FolderDataset:
    options = dict(image_dir="{split}/images", mask_dir="{split}/1st_manual", pair_key=r"^(\d+)_") | settings
    return FolderDataset(root, "training", 2, **options)


def test_pair_key_problems_are_named(tmp_path):
    root = tmp_path / "DRIVE"
    make_drive(root)
    for number in range(5):  # six images the key does not match: five named, "and 1 more"
        shutil.copy(root / "training/images/21_training.tif", root / f"training/images/extra{number}.tif")
    shutil.copy(root / "training/images/21_training.tif", root / "training/images/nokey.tif")
    with pytest.raises(SemsegError, match=r"data.pair_key=\^\(\\d\+\)_ matches no part of the name of 6 image\(s\): "
                                          r".*extra0.tif, .*\(and 1 more\)"):
        drive_set(root)
    for path in (root / "training/images").glob("[en]*.tif"):
        path.unlink()
    shutil.copy(root / "training/1st_manual/21_manual1.gif", root / "training/1st_manual/21_manual2.gif")
    with pytest.raises(SemsegError, match=r"21_manual1.gif and .*21_manual2.gif both have the pairing key '21'"):
        drive_set(root)
    (root / "training/1st_manual/21_manual2.gif").unlink()
    (root / "training/1st_manual/22_manual1.gif").unlink()
    with pytest.raises(SemsegError, match=r"1 image\(s\) of split 'training' have no mask: .*22_training.tif. No mask "
                                          r"in .*1st_manual has its data.pair_key key '22'"):
        drive_set(root)
    with pytest.raises(SemsegError, match=r"data.pair_key and data.mask_suffix=_manual1 are both set"):
        drive_set(root, mask_suffix="_manual1")
    with pytest.raises(SemsegError, match=r"data.pair_key='\(' is not a regular expression"):
        drive_set(root, pair_key="(")


def test_jpeg_masks_with_compression_noise_read_exactly_with_a_threshold(tmp_path):
    root = tmp_path / "Kvasir-SEG"
    masks = make_kvasir(root)
    with pytest.raises(SemsegError, match=r"\.jpg file: lossy compression .* Save masks as PNG; for binary masks such "
                                          r"as Kvasir-SEG's set data.mask_threshold=128"):
        FolderDataset(root, "train", 2, image_dir="images", mask_dir="masks")
    dataset = FolderDataset(root, "train", 2, image_dir="images", mask_dir="masks", mask_threshold=128)
    assert dataset.names == sorted(masks)
    for index, name in enumerate(dataset.names):
        with Image.open(dataset.mask_paths[index]) as jpeg:
            noisy = np.array(jpeg.convert("L"))
        assert len(np.unique(noisy)) > 20, "the fixture really is noisy"
        mask = dataset.load(index)[1]
        assert set(np.unique(mask).tolist()) == {0, 1}
        source = masks[name].astype(bool)
        inside = scipy.ndimage.binary_erosion(source, iterations=4)
        outside = scipy.ndimage.binary_erosion(~source, iterations=4, border_value=1)
        assert (mask[inside] == 1).all() and (mask[outside] == 0).all(), name


@pytest.mark.parametrize("value", [0, 256, 1.5, True, "half"])
def test_mask_threshold_must_be_an_integer_from_1_to_255(tmp_path, value):
    make_kvasir(tmp_path, count=1)
    with pytest.raises(SemsegError, match=r"data.mask_threshold=.* must be an integer from 1 to 255"):
        FolderDataset(tmp_path, "train", 2, image_dir="images", mask_dir="masks", mask_threshold=value)


def test_one_bit_masks_read_as_0_and_1(tmp_path):
    values = np.zeros((6, 9), dtype=bool)
    values[2:4, 3:] = True
    Image.fromarray(values).save(tmp_path / "mask.png")
    with Image.open(tmp_path / "mask.png") as png:
        assert png.mode == "1"
    assert np.array_equal(read_mask(tmp_path / "mask.png"), values.astype(np.uint8))
    assert np.array_equal(read_mask(tmp_path / "mask.png", threshold=128), values.astype(np.uint8))


def sha256_split(names: list[str], seed: int, counts: list[int]) -> list[list[str]]:
    """The documented rule, written out again: order by sha256("<seed>:<name>"), cut in runs."""
    order = sorted(names, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())
    edges = np.cumsum([0, *counts])
    return [sorted(order[a:b]) for a, b in zip(edges[:-1], edges[1:])]


NAMES = [f"case{number:02d}" for number in range(20)] + ["sub/case20"]  # 21 items, one in a subfolder


def fraction_sets(root, fractions, seed=0, **settings) -> dict[str, list[str]]:
    options = dict(image_dir="images", mask_dir="masks", split_fractions=fractions, split_seed=seed) | settings
    return {split: FolderDataset(root, split, 2, **options).names for split in fractions}


def test_split_fractions_are_a_seeded_hash_of_the_names(tmp_path):
    forward, backward = tmp_path / "a", tmp_path / "b"
    make_single_folder(forward, NAMES)
    make_single_folder(backward, NAMES[::-1])  # the same files, created in the other order
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    splits = fraction_sets(forward, fractions)
    assert splits == fraction_sets(forward, fractions) == fraction_sets(backward, fractions)
    # 21 items: round(14.7) = 15 train, round(4.2) = 4 val, the rest (2) test
    assert [len(names) for names in splits.values()] == [15, 4, 2]
    assert list(splits.values()) == sha256_split(NAMES, 0, [15, 4, 2])
    assert sorted(sum(splits.values(), [])) == sorted(NAMES)
    assert fraction_sets(forward, fractions, seed=1) != splits, "data.split_seed picks another split"


def test_split_fractions_in_a_run_are_written_to_the_run_folder_only(make_cfg, tmp_path):
    root = tmp_path / "Kvasir-SEG"
    make_kvasir(root)
    before = files_under(root)
    overrides = ["data=folder", f"data.root={root}", *KVASIR_LAYOUT, "data.split_fractions={train:0.5,val:0.5}"]
    cfg = make_cfg([*overrides, *TINY_RUN, "seed=1"])
    metrics = train(cfg)
    assert "test/IoU/polyp" in metrics
    written = {split: (tmp_path / "run/splits" / f"{split}.txt").read_text().split() for split in ("train", "val")}
    assert written == fraction_sets(root, {"train": 0.5, "val": 0.5}, mask_threshold=128)
    assert len(written["train"]) == len(written["val"]) == 3
    assert files_under(root) == before, "nothing is written under data.root"
    other_seed = instantiate(make_cfg([*overrides, "seed=7"], output="run2").data)
    other_seed.setup("fit")
    assert other_seed.datasets["val"].names == written["val"], "the training seed does not reshuffle the split"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(split_fractions={"train": 0.8, "val": 0.3}), r"sums to 1.1; the fractions must sum to 1"),
        (dict(split_fractions={"train": 1.0, "val": 0.0}), r"data.split_fractions.val=0.0 must be a fraction in \(0, 1\]"),
        (dict(split_fractions={"train": 0.99, "val": 0.01}), r"gives split 'val' no items of the 21 found"),
        (dict(split_fractions="val:0.2"), r"must be a mapping.*quote it, 'data.split_fractions=\{train:0.8,val:0.2\}'"),
        (dict(split_fractions={"train": 0.5, "val": 0.5}, image_dir="images/{split}"),
         r"data.split_fractions splits one folder, but data.image_dir=images/\{split\} has a folder per split; "
         r"set data.image_dir to the one folder, e.g. data.image_dir=images"),
        (dict(split_fractions={"a": 0.5, "b": 0.5}), r"split 'train' is not one of data.split_fractions \['a', 'b'\]"),
        (dict(split_fractions={"train": 0.5, "val": 0.5}, split_files={"train": "t.txt"}), r"are both set; keep one"),
    ],
    ids=["sum", "zero", "empty-split", "shell-split", "template", "unknown-split", "both"],
)
def test_split_fraction_mistakes_are_one_line(tmp_path, settings, message):
    make_single_folder(tmp_path, NAMES)
    with pytest.raises(SemsegError, match=message):
        FolderDataset(tmp_path, "train", 2, **(dict(image_dir="images", mask_dir="masks") | settings))


def test_stages_must_read_splits_of_the_fractions(make_cfg, tmp_path):
    make_single_folder(tmp_path / "data", NAMES)
    base = ["data=folder", f"data.root={tmp_path / 'data'}", "data.image_dir=images", "data.mask_dir=masks",
            "data.class_names=[a,b]"]
    cfg = make_cfg([*base, "data.split_fractions={train:0.8,validation:0.2}"])
    with pytest.raises(SemsegError, match=r"data.splits.val=val is not one of the splits of data.split_fractions"):
        instantiate(cfg.data)
    cfg = make_cfg([*base, "data.split_fractions={train:0.6,val:0.2,test:0.2}", "data.splits.test=[test,val]"])
    assert instantiate(cfg.data).splits == {"train": "train", "val": "val", "test": "test"}


def make_voc_like(root) -> None:
    """VOC's shape: more images than masks, and list files naming the ones to use."""
    rng = np.random.default_rng(9)
    for number in range(6):
        write_jpeg(root / "JPEGImages" / f"2007_{number:06d}.jpg", 20, 24, rng)
        if number < 4:
            write_png(root / "SegmentationClass" / f"2007_{number:06d}.png", np.ones((20, 24)))
    (root / "lists").mkdir()
    (root / "lists/train.txt").write_text("# training images\n2007_000000\n\n2007_000001\n2007_000002\n")
    (root / "lists/val.txt").write_text("2007_000003.jpg\n")


def test_split_files_list_names_with_or_without_extension(tmp_path):
    make_voc_like(tmp_path)
    options = dict(image_dir="JPEGImages", mask_dir="SegmentationClass",
                   split_files={"train": "lists/train.txt", "val": "lists/val.txt"})
    assert FolderDataset(tmp_path, "train", 2, **options).names == ["2007_000000", "2007_000001", "2007_000002"]
    assert FolderDataset(tmp_path, "val", 2, **options).names == ["2007_000003"], "images without masks are unused"
    (tmp_path / "lists/val.txt").write_text("2007_000003\n2007_000009\nnowhere.jpg\n")
    with pytest.raises(SemsegError, match=r"2 name\(s\) in .*val.txt have no image in .*JPEGImages: 2007_000009, "
                                          r"nowhere.jpg. An entry is an image's path under data.image_dir"):
        FolderDataset(tmp_path, "val", 2, **options)
    (tmp_path / "lists/val.txt").write_text("2007_000004\n")  # an image without a mask
    with pytest.raises(SemsegError, match=r"1 image\(s\) of split 'val' have no mask: .*2007_000004.jpg"):
        FolderDataset(tmp_path, "val", 2, **options)
    with pytest.raises(SemsegError, match=r"data.split_files.test names .*test.txt, which is not a file"):
        FolderDataset(tmp_path, "test", 2, **(options | {"split_files": {"test": "lists/test.txt"}}))


def test_ade20k_reduces_the_zero_label_exactly_and_trains(make_cfg, tmp_path):
    raw = make_ade20k(tmp_path)
    # callbacks=model_checkpoint: the validation report's 150x150 confusion figure alone takes half a minute
    cfg = make_cfg(["data=ade20k", f"data.root={tmp_path / 'ADEChallengeData2016'}", *TINY_RUN,
                    "callbacks=model_checkpoint"])
    assert cfg.data.num_classes == 150 and cfg.data.class_names[0] == "wall" and cfg.data.class_names[-1] == "flag"
    assert len(cfg.data.palette) == 150 and cfg.data.palette[0] == [120, 120, 120]
    datamodule = instantiate(cfg.data)
    assert datamodule.splits == {"train": "training", "val": "validation", "test": "validation"}
    datamodule.setup("fit")
    train_set = datamodule.datasets["train"]
    for index, name in enumerate(train_set.names):
        mask, values = train_set.load(index)[1], raw[f"training/{name}"]
        assert np.array_equal(mask[values == 0], np.full((values == 0).sum(), 255)), "raw 0 is ignored"
        assert (mask[values == 1] == 0).all() and (mask[values == 150] == 149).all()
        assert np.array_equal(mask[values > 0], values[values > 0] - 1)
    assert "test/IoU/wall" in train(cfg)


def test_reduce_zero_label_keeps_255_and_label_map_keys_stay_raw_values():
    table = label_lookup(150, {151: 255, 0: 3}, reduce_zero_label=True)
    assert table[255] == 255 and table[1] == 0 and table[150] == 149
    assert table[151] == 255 and table[0] == 3, "label_map keys are values in the files, targets class indices"


def test_an_unknown_raw_value_is_named_as_in_the_file(tmp_path):
    make_ade20k(tmp_path)
    ade = tmp_path / "ADEChallengeData2016"
    write_png(ade / "annotations/validation/ADE_val_00000001.png", np.full((40, 48), 151), palette=False)
    dataset = FolderDataset(ade, "validation", 150, image_dir="images/{split}", mask_dir="annotations/{split}",
                            reduce_zero_label=True)
    with pytest.raises(SemsegError, match=r"holds raw values \[151\] that map to no class.*\+\+data.label_map=\{151:255\}"):
        dataset.load(0)


def test_inspect_warns_when_masks_look_like_a_zero_label(tmp_path, capsys):
    make_ade20k(tmp_path)
    ade = tmp_path / "ADEChallengeData2016"
    folder = ["data=folder", f"data.root={ade}", 'data.image_dir="images/{split}"', 'data.mask_dir="annotations/{split}"',
              "data.splits={train:training,val:validation}", "data.num_workers=0"]
    names = "data.class_names=[" + ",".join(f"c{i}" for i in range(150)) + "]"
    cfg = compose_config("inspect.yaml", [*folder, names, f"output={tmp_path / 'a'}"], tmp_path / "a")
    inspect_dataset(cfg)
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "masks hold values 0..150 with 150 classes" in warnings[0]
    assert "data.reduce_zero_label=true" in warnings[0]
    cfg = compose_config("inspect.yaml", ["data=ade20k", f"data.root={ade}", "data.num_workers=0",
                                          f"output={tmp_path / 'b'}"], tmp_path / "b")
    reports = inspect_dataset(cfg)
    assert "warning" not in capsys.readouterr().out and not reports[0].example
    write_png(ade / "annotations/validation/ADE_val_00000002.png", np.full((48, 40), 151), palette=False)
    inspect_dataset(cfg)
    assert "value 150 (raw 151) is no class" in capsys.readouterr().out, "named as in the file"


@pytest.mark.parametrize("override", ["data.label_map={1:1.7}", "data.label_map={2:0.2}", "data.label_map={a:1}",
                                      "data.label_map=[1,2]", "data.label_map={1:true}", "data.label_map=cell"])
def test_label_map_must_map_integers_to_integers(make_cfg, tmp_path, override):
    make_single_folder(tmp_path / "data", NAMES[:2])
    cfg = make_cfg(["data=folder", f"data.root={tmp_path / 'data'}", "data.class_names=[a,b,c]", override])
    with pytest.raises(SemsegError, match=r"data.label_map.* e.g. data.label_map=\{255:1\}"):
        instantiate(cfg.data)


def test_label_map_targets_never_wrap_past_8_bits():
    with pytest.raises(SemsegError, match=r"maps 1 to 299, which is neither a class index \(0..254"):
        label_lookup(300, {1: 299})
    with pytest.raises(SemsegError, match=r"maps 1 to 3, which is neither a class index \(0..2"):
        label_lookup(3, {1: 3})
    assert label_lookup(300, {1: 254, 2: 255})[[1, 2]].tolist() == [254, 255]


def test_template_hint_names_the_quoting():
    hint = template_hint(["data=folder", "data.image_dir={split}/images"])
    assert hint.endswith("""quote the value for Hydra and the whole override for the shell: 'data.image_dir="{split}/images"'.""")
    assert "'data.pair_key=\"^(\\d+)_\"'" in template_hint([r"data.pair_key=^(\d+)_"])
    assert template_hint(['data.image_dir="{split}/images"', "data.mask_dir=masks", "data.pair_key='^(\\d+)_'"]) is None
