"""Cityscapes read from a tiny tree with the official file names and raw labelIds."""

import shutil

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from semseg.data.cityscapes import (
    CLASS_NAMES,
    EXPORT_IDS,
    PALETTE,
    CityscapesSegmentation,
    prepare,
)
from semseg.errors import SemsegError
from semseg.train import train
from tests.helpers.disk_formats import make_cityscapes, write_png


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory):
    return make_cityscapes(tmp_path_factory.mktemp("cityscapes"))


@pytest.fixture
def cs_copy(cs_root, tmp_path):
    return shutil.copytree(cs_root, tmp_path / "cityscapes")


def test_class_names_palette_and_export_ids_follow_the_label_table():
    assert len(CLASS_NAMES) == 19 and CLASS_NAMES[:3] == ("road", "sidewalk", "building")
    assert PALETTE[0].tolist() == [128, 64, 128] and PALETTE[18].tolist() == [119, 11, 32]
    assert all(id2label[label_id].name == name for label_id, name in zip(EXPORT_IDS, CLASS_NAMES))


def test_label_ids_are_mapped_to_train_ids_and_ignored_ids_to_255(cs_root):
    dataset = CityscapesSegmentation(cs_root, "val")
    assert dataset.names == ["frankfurt_000000_000019", "frankfurt_000001_000020"]
    item = dataset[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 64)
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (32, 64)
    with Image.open(dataset.mask_paths[0]) as png:
        ids = np.array(png)
    expected = np.vectorize(lambda i: id2label[int(i)].trainId)(ids)
    expected[(expected < 0) | (expected >= 19)] = 255
    assert torch.equal(item["mask"], torch.from_numpy(expected).long())
    assert item["mask"][0, 0] == 255 and item["mask"][1, 0] == 255  # labelIds 0 and 6


def test_ready_train_id_files_are_accepted(tmp_path, cs_root):
    ready = make_cityscapes(tmp_path / "ready", train_ids=True)
    a, b = CityscapesSegmentation(cs_root, "train"), CityscapesSegmentation(ready, "train")
    assert b.mask_paths[0].name.endswith("_gtFine_labelTrainIds.png")
    assert all(torch.equal(a[i]["mask"], b[i]["mask"]) for i in range(len(a)))


def test_missing_dataset_and_download_explain_csdownload(tmp_path):
    with pytest.raises(SemsegError, match=r"Cityscapes not found: .*leftImg8bit does not exist.*csDownload -d"):
        CityscapesSegmentation(tmp_path, "train")
    with pytest.raises(SemsegError, match=r"cannot fetch Cityscapes.*gtFine_trainvaltest.zip"):
        prepare(tmp_path, download=True)
    prepare(tmp_path, download=False)


def test_unknown_split_is_named(cs_root):
    with pytest.raises(SemsegError, match=r"no split 'test' under .*leftImg8bit; available: \['train', 'val'\]"):
        CityscapesSegmentation(cs_root, "test")


def test_image_without_mask_and_mask_without_image(cs_copy):
    (cs_copy / "gtFine/val/frankfurt/frankfurt_000001_000020_gtFine_labelIds.png").unlink()
    with pytest.raises(SemsegError, match=r"frankfurt_000001_000020_leftImg8bit.png has no mask"):
        CityscapesSegmentation(cs_copy, "val")
    (cs_copy / "leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png").unlink()
    with pytest.raises(SemsegError, match=r"mask .*bochum_000000_000019_gtFine_labelIds.png has no image"):
        CityscapesSegmentation(cs_copy, "train")


def test_unknown_label_id_wrong_size_and_corrupt_image(cs_copy):
    gt = cs_copy / "gtFine/train/aachen"
    ids = np.full((32, 64), 7)
    ids[5, 5] = 40
    write_png(gt / "aachen_000000_000019_gtFine_labelIds.png", ids, palette=False)
    write_png(gt / "aachen_000001_000020_gtFine_labelIds.png", np.full((30, 64), 7), palette=False)
    (cs_copy / "leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png").write_bytes(b"\x89PNG broken")
    dataset = CityscapesSegmentation(cs_copy, "train")
    with pytest.raises(SemsegError, match=r"aachen_000000_000019_gtFine_labelIds.png holds labelIds \[40\] .*valid: 0..33"):
        dataset[0]
    with pytest.raises(SemsegError, match=r"is 56x40 but its mask .*aachen_000001_000020_gtFine_labelIds.png is 64x30"):
        dataset[1]
    with pytest.raises(SemsegError, match=r"cannot read image .*bochum_000000_000019_leftImg8bit.png"):
        dataset[2]


def test_train_runs_on_cityscapes(make_cfg, cs_root):
    cfg = make_cfg([
        "data=cityscapes", f"data.root={cs_root}", "data.crop_size=[32,48]", "data.batch_size=2",
        "++trainer.max_steps=3", "trainer.max_epochs=2", "logger=csv",
    ])
    metrics = train(cfg)
    assert metrics["train/loss"] > 0 and 0.0 <= metrics["test/mIoU"] <= 1.0
    assert "test/IoU/traffic sign" in metrics
