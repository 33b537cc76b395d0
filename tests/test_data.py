"""The synthetic dataset on disk, in the real Pascal VOC formats, and the reader's checks."""

import hashlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from semseg.data.synthetic import CLASS_NAMES, SyntheticTextures, generate
from semseg.data.voc_layout import VOCLayoutDataset
from semseg.errors import SemsegError

SMALL = dict(image_size=48, num_train=4, num_val=2, num_test=2)


def digest(folder) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def test_generation_is_deterministic_in_the_seed(tmp_path):
    a = generate(tmp_path / "a", seed=3, **SMALL)
    b = generate(tmp_path / "b", seed=3, **SMALL)
    c = generate(tmp_path / "c", seed=4, **SMALL)
    assert digest(a) == digest(b) != digest(c)


def test_files_are_in_the_voc_formats(tmp_path):
    root = generate(tmp_path / "syn", seed=0, **SMALL)
    assert (root / "ImageSets/Segmentation/train.txt").read_text().split() == [f"train_{i:05d}" for i in range(4)]
    with Image.open(root / "JPEGImages/train_00000.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (48, 48)
    masks = []
    for path in sorted((root / "SegmentationClass").glob("*.png")):
        with Image.open(path) as mask:
            assert mask.format == "PNG" and mask.mode == "P"
            assert mask.getpalette()[:6] == [0, 0, 0, 128, 0, 0]  # the VOC colour map
            masks.append(np.array(mask))
    values = np.unique(np.concatenate([m.ravel() for m in masks]))
    assert 255 in values, "class boundaries carry the 255 ignore band"
    assert set(values) <= set(range(len(CLASS_NAMES))) | {255}


def test_generation_is_cached_and_redone_when_settings_change(tmp_path):
    root = generate(tmp_path / "syn", seed=0, **SMALL)
    stamp = (root / "generator.json").stat().st_mtime_ns
    generate(root, seed=0, **SMALL)
    assert (root / "generator.json").stat().st_mtime_ns == stamp
    generate(root, seed=1, **SMALL)
    assert (root / "generator.json").stat().st_mtime_ns != stamp


def test_items_follow_the_dataset_contract(tmp_path):
    root = generate(tmp_path / "syn", seed=0, **SMALL)
    item = SyntheticTextures(root, "val")[1]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 48, 48)
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (48, 48)
    assert item["name"] == "val_00001"
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0


@pytest.fixture
def voc_copy(tmp_path):
    return shutil.copytree(generate(tmp_path / "syn", seed=0, **SMALL), tmp_path / "copy")


def test_missing_split_list_names_the_available_splits(voc_copy):
    with pytest.raises(SemsegError, match=r"split list .*trainval.txt not found.*\['test', 'train', 'val'\]"):
        VOCLayoutDataset(voc_copy, "trainval", num_classes=5)


def test_missing_root_is_named(tmp_path):
    with pytest.raises(SemsegError, match=r"dataset root .*nowhere does not exist"):
        VOCLayoutDataset(tmp_path / "nowhere", "train", num_classes=5)


def test_listed_image_without_mask_is_named(voc_copy):
    (voc_copy / "SegmentationClass/train_00002.png").unlink()
    with pytest.raises(SemsegError, match=r"train_00002.png is listed in split 'train' but missing"):
        VOCLayoutDataset(voc_copy, "train", num_classes=5)


def test_mask_value_that_is_no_class_is_named(voc_copy):
    path = voc_copy / "SegmentationClass/train_00001.png"
    with Image.open(path) as mask:
        values = np.array(mask)
        palette = mask.getpalette()
    values[0, 0] = 7
    bad = Image.fromarray(values, mode="P")
    bad.putpalette(palette)
    bad.save(path)
    with pytest.raises(SemsegError, match=r"train_00001.png holds values \[7\]"):
        VOCLayoutDataset(voc_copy, "train", num_classes=5)[1]


def test_image_and_mask_of_different_sizes_are_named(voc_copy):
    path = voc_copy / "JPEGImages/train_00000.jpg"
    Image.new("RGB", (40, 48)).save(path)
    with pytest.raises(SemsegError, match=r"train_00000.jpg is 40x48 but its mask .* is 48x48"):
        VOCLayoutDataset(voc_copy, "train", num_classes=5)[0]


def test_corrupt_image_is_named(voc_copy):
    (voc_copy / "JPEGImages/train_00003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SemsegError, match=r"cannot read image .*train_00003.jpg"):
        VOCLayoutDataset(voc_copy, "train", num_classes=5)[3]


def test_generator_makes_images_of_the_given_sizes(tmp_path):
    root = generate(tmp_path / "syn", seed=0, **(SMALL | dict(sizes=[[48, 64], [64, 40]])))
    sizes = [Image.open(root / "JPEGImages" / f"{name}.jpg").size for name in ("train_00000", "train_00001", "train_00002")]
    assert sizes == [(64, 48), (40, 64), (64, 48)]  # (width, height), in turn
    assert SyntheticTextures(root, "train")[1]["mask"].shape == (64, 40)


def test_generator_never_touches_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "labels.txt").write_text("keep")
    with pytest.raises(SemsegError, match=r"data.root=.*mydata already holds files that the synthetic data generator "
                                          r"did not write.*data=folder"):
        generate(mine, seed=0, **SMALL)
    assert [p.name for p in mine.iterdir()] == ["labels.txt"] and (mine / "labels.txt").read_text() == "keep"
    generate(tmp_path / "empty_is_fine", seed=0, **SMALL)  # an empty folder, or one the generator wrote, is fine
    (tmp_path / "empty").mkdir()
    assert (generate(tmp_path / "empty", seed=0, **SMALL) / "generator.json").is_file()


def test_train_with_a_users_folder_as_synthetic_root_is_refused_in_one_line(tmp_path):
    import sys

    from tests.helpers.cli import run_cli
    from tests.helpers.settings import REPO

    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "labels.txt").write_text("keep")
    result = run_cli([sys.executable, "-m", "semseg.train", f"data.root={mine}", "debug=fdr",
                      f"paths.log_dir={tmp_path / 'logs'}"], cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "semseg: error: data.root=" in result.stderr and (mine / "labels.txt").read_text() == "keep"


def test_a_generation_killed_early_does_not_block_the_next(tmp_path):
    (tmp_path / "syn.partial").mkdir()  # killed before it wrote anything
    assert (generate(tmp_path / "syn", seed=0, **SMALL) / "generator.json").is_file()
    assert not (tmp_path / "syn.partial").exists()
