"""Pascal VOC 2012 (+SBD trainaug) read from tiny trees in the official on-disk formats."""

import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from semseg.data.voc import CLASS_NAMES, PALETTE, VOCSegmentation
from semseg.errors import SemsegError
from semseg.train import train
from tests.helpers.cli import run_cli
from tests.helpers.disk_formats import (
    SBD_ONLY,
    VOC_TRAIN,
    VOC_VAL,
    make_sbd,
    make_voc,
    write_png,
)
from tests.helpers.settings import REPO


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    return make_sbd(make_voc(root))


@pytest.fixture
def voc_copy(voc_root, tmp_path):
    return shutil.copytree(voc_root, tmp_path / "voc")


def test_class_names_and_palette():
    assert len(CLASS_NAMES) == 21 and CLASS_NAMES[0] == "background" and CLASS_NAMES[-1] == "tvmonitor"
    assert PALETTE.shape == (21, 3) and PALETTE[15].tolist() == [192, 128, 128]  # person


@pytest.mark.parametrize(("split", "ids"), [("train", VOC_TRAIN), ("val", VOC_VAL), ("trainval", VOC_TRAIN + VOC_VAL)])
def test_official_splits_list_the_split_files(voc_root, split, ids):
    assert VOCSegmentation(voc_root, split).ids == ids


def test_items_keep_the_255_border_and_class_indices(voc_root):
    dataset = VOCSegmentation(voc_root, "val")
    item = dataset[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 40, 52)
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (40, 52)
    assert item["name"] == VOC_VAL[0]
    with Image.open(voc_root / "VOCdevkit/VOC2012/SegmentationClass" / f"{VOC_VAL[0]}.png") as png:
        assert torch.equal(item["mask"], torch.from_numpy(np.array(png)).long())
    assert 255 in item["mask"].unique().tolist()


def test_trainaug_from_sbd_is_voc_train_plus_sbd_minus_voc_val(voc_root):
    dataset = VOCSegmentation(voc_root, "trainaug")
    assert dataset.ids == sorted(VOC_TRAIN + SBD_ONLY)
    assert VOC_VAL[0] not in dataset.ids, "an SBD image that is in VOC val must be left out"
    by_id = dict(zip(dataset.ids, dataset.mask_paths))
    assert by_id[VOC_TRAIN[0]].suffix == ".png", "VOC's own mask (with borders) wins for VOC train ids"
    assert by_id[SBD_ONLY[0]].suffix == ".mat"
    mask = dataset[dataset.ids.index(SBD_ONLY[0])]["mask"]
    assert mask.shape == (40, 52) and 0 in mask.unique() and mask.max() <= 20


def test_trainaug_from_a_segmentation_class_aug_folder(voc_copy):
    voc = voc_copy / "VOCdevkit/VOC2012"
    shutil.rmtree(voc_copy / "benchmark_RELEASE")
    ids = VOC_TRAIN[:2] + SBD_ONLY[:1]
    for image_id in ids:
        write_png(voc / "SegmentationClassAug" / f"{image_id}.png", np.full((40, 52), 7))
    (voc / "ImageSets/Segmentation/trainaug.txt").write_text("\n".join(ids))
    dataset = VOCSegmentation(voc_copy, "trainaug")
    assert dataset.ids == ids and all(p.parent.name == "SegmentationClassAug" for p in dataset.mask_paths)
    assert dataset[2]["mask"].unique().tolist() == [7]


def test_trainaug_without_sbd_says_what_to_provide(voc_copy):
    shutil.rmtree(voc_copy / "benchmark_RELEASE")
    with pytest.raises(SemsegError, match=r"split 'trainaug' needs SBD.*benchmark.tgz.*SegmentationClassAug"):
        VOCSegmentation(voc_copy, "trainaug")


def test_missing_root_and_unknown_split_are_named(voc_root, tmp_path):
    with pytest.raises(SemsegError, match=r"Pascal VOC 2012 not found: .*nowhere/VOCdevkit/VOC2012 .*download=true"):
        VOCSegmentation(tmp_path / "nowhere", "train")
    with pytest.raises(SemsegError, match=r"no split 'test'; choose one of train, val, trainval, trainaug"):
        VOCSegmentation(voc_root, "test")


def test_missing_split_list_is_named(voc_copy):
    (voc_copy / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(SemsegError, match=r"split list .*val.txt not found.*\['train', 'trainval'\]"):
        VOCSegmentation(voc_copy, "val")


def test_listed_mask_without_image_and_image_without_mask(voc_copy):
    (voc_copy / f"VOCdevkit/VOC2012/JPEGImages/{VOC_VAL[1]}.jpg").unlink()
    with pytest.raises(SemsegError, match=rf"{VOC_VAL[1]}.jpg is listed in split 'val' but missing"):
        VOCSegmentation(voc_copy, "val")
    (voc_copy / f"benchmark_RELEASE/dataset/cls/{SBD_ONLY[1]}.mat").unlink()
    with pytest.raises(SemsegError, match=rf"{SBD_ONLY[1]}.mat is listed in split 'trainaug' but missing.*SBD lists"):
        VOCSegmentation(voc_copy, "trainaug")
    (voc_copy / f"VOCdevkit/VOC2012/SegmentationClass/{VOC_TRAIN[2]}.png").unlink()
    with pytest.raises(SemsegError, match=rf"{VOC_TRAIN[2]}.png is listed in split 'train' but missing.*train.txt"):
        VOCSegmentation(voc_copy, "train")


def test_bad_mask_value_size_and_corrupt_files_are_named(voc_copy):
    voc = voc_copy / "VOCdevkit/VOC2012"
    values = np.zeros((40, 52))
    values[3, 4] = 21
    write_png(voc / "SegmentationClass" / f"{VOC_VAL[0]}.png", values)
    write_png(voc / "SegmentationClass" / f"{VOC_VAL[1]}.png", np.zeros((40, 50)))
    (voc / "JPEGImages" / f"{VOC_VAL[2]}.jpg").write_bytes(b"\xff\xd8 truncated")
    dataset = VOCSegmentation(voc_copy, "val")
    with pytest.raises(SemsegError, match=rf"{VOC_VAL[0]}.png holds values \[21\] that are neither a class index \(0..20\)"):
        dataset[0]
    with pytest.raises(SemsegError, match=rf"{VOC_VAL[1]}.jpg is 52x36 but its mask .* is 50x40"):
        dataset[1]
    with pytest.raises(SemsegError, match=rf"cannot read image .*{VOC_VAL[2]}.jpg"):
        dataset[2]
    (voc_copy / f"benchmark_RELEASE/dataset/cls/{SBD_ONLY[0]}.mat").write_bytes(b"not a mat file")
    trainaug = VOCSegmentation(voc_copy, "trainaug")
    with pytest.raises(SemsegError, match=rf"cannot read SBD mask .*{SBD_ONLY[0]}.mat"):
        trainaug[trainaug.ids.index(SBD_ONLY[0])]


def test_train_runs_on_voc_trainaug(make_cfg, voc_root):
    cfg = make_cfg([
        "data=voc", f"data.root={voc_root}", "data.splits.train=trainaug", "data.crop_size=[32,32]",
        "data.batch_size=2", "++trainer.max_steps=3", "trainer.max_epochs=1", "logger=csv",
    ])
    metrics = train(cfg)
    assert metrics["train/loss"] > 0 and 0.0 <= metrics["test/mIoU"] <= 1.0
    assert "test/IoU/tvmonitor" in metrics or "val/IoU/tvmonitor" in metrics


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path):
    result = run_cli([sys.executable, "-m", "semseg.train", "data=voc", f"data.root={tmp_path / 'none'}",
                      f"paths.log_dir={tmp_path / 'logs'}", "logger=csv", "extras.print_config=false"], cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("semseg: error: Pascal VOC 2012 not found:")
