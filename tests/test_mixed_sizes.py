"""Images of different sizes in one split: training, evaluation and prediction at any batch size.

Real datasets mix sizes (VOC: 500x375, 375x500, 500x333, ...). Batches are padded (image 0,
mask 255) and evaluation scores every image at its own size, so no score depends on batching.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semseg.data.datamodule import pad_collate
from semseg.eval import evaluate
from semseg.train import train
from tests.helpers.cli import PYTHON, run_cli
from tests.helpers.disk_formats import VOC_VAL, make_voc, voc_size
from tests.helpers.settings import REPO


def test_pad_collate_pads_images_with_0_and_masks_with_255():
    items = [
        {"image": torch.ones(3, 4, 6), "mask": torch.zeros(4, 6, dtype=torch.long), "name": "wide"},
        {"image": torch.ones(3, 7, 3), "mask": torch.ones(7, 3, dtype=torch.long), "name": "tall"},
    ]
    batch = pad_collate(items)
    assert batch["image"].shape == (2, 3, 7, 6) and batch["mask"].shape == (2, 7, 6)
    assert batch["size"].tolist() == [[4, 6], [7, 3]] and batch["name"] == ["wide", "tall"]
    assert batch["image"][0, :, 4:].abs().sum() == 0 and batch["image"][1, :, :, 3:].abs().sum() == 0
    assert (batch["mask"][0, 4:] == 255).all() and (batch["mask"][1, :, 3:] == 255).all()
    assert (batch["mask"][0, :4] == 0).all() and (batch["mask"][1, :, :3] == 1).all()


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="module")
def voc_checkpoint(tmp_path_factory, voc_root):
    """FCN-8s trained on the mixed-size VOC tree with VOC's default batch size (8)."""
    from hydra.core.global_hydra import GlobalHydra

    from semseg.utils.config import compose_config

    tmp = tmp_path_factory.mktemp("voc_run")
    cfg = compose_config("train.yaml", [
        "data=voc", f"data.root={voc_root}", f"paths.log_dir={tmp / 'logs'}", "data.num_workers=0",
        "extras.print_config=false", "data.crop_size=[32,32]", "model=fcn8s", "trainer.max_epochs=2",
        "logger=csv", "callbacks=[model_checkpoint,validation_report]",
    ], tmp / "run")
    assert cfg.data.batch_size == 8
    metrics = train(cfg)
    GlobalHydra.instance().clear()
    return tmp / "run", metrics


def test_mixed_size_voc_trains_validates_and_draws_with_the_default_batch(voc_checkpoint):
    run, metrics = voc_checkpoint
    assert 0 <= metrics["val/mIoU"] <= 1 and 0 <= metrics["test/mIoU"] <= 1
    with Image.open(run / "validation" / "epoch_001_predictions.png") as picture:
        assert picture.width >= 3 * 40 and picture.height > 3 * 40  # 3 val images of 3 sizes, and a legend


@pytest.mark.parametrize("inference", [[], ["inference=slide", "inference.crop_size=32", "inference.stride=20"]],
                         ids=["whole", "slide"])
def test_eval_gives_the_same_miou_at_batch_1_and_4(make_cfg, voc_root, voc_checkpoint, inference):
    run, _ = voc_checkpoint
    scores = [
        evaluate(make_cfg(["data=voc", f"data.root={voc_root}", f"ckpt_path={run}/checkpoints/best.ckpt",
                           f"data.batch_size={batch}", *inference], config_name="eval.yaml", output=f"eval{batch}"))
        for batch in (1, 4)
    ]
    assert scores[0]["test/mIoU"] == scores[1]["test/mIoU"]
    assert scores[0]["test/pixel_acc"] == scores[1]["test/pixel_acc"]


def test_synthetic_eval_at_batch_1_and_4_equals_the_training_test_score(make_cfg, checkpoint):
    """The shared checkpoint's data mixes 64x64, 48x80 and 80x56 images in every split."""
    scores = [evaluate(make_cfg([f"ckpt_path={checkpoint}", f"data.batch_size={batch}"], config_name="eval.yaml",
                                output=f"eval{batch}"))["test/mIoU"] for batch in (1, 4)]
    assert scores[0] == scores[1]


def test_predict_writes_each_mask_at_its_image_size(voc_root, voc_checkpoint, tmp_path):
    run, _ = voc_checkpoint
    images = voc_root / "VOCdevkit/VOC2012/JPEGImages"
    result = run_cli([PYTHON, "-m", "semseg.predict", f"ckpt_path={run}/checkpoints/best.ckpt", f"input={images}",
                      f"output={tmp_path / 'out'}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for image_id in VOC_VAL:
        with Image.open(tmp_path / "out" / f"{image_id}.png") as mask:
            assert mask.size[::-1] == voc_size(image_id) and np.array(mask).max() < 21


def test_make_sweep_with_debug_limit_runs_on_the_default_data(tmp_path, data_dir):
    from tests.helpers.settings import TINY_DATA_OVERRIDES

    venv = Path(sys.executable).parents[1]
    result = run_cli(["make", "-C", str(REPO), "-o", f"{venv}/.installed", f"VENV={venv}", "sweep", "debug=limit",
                      f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", "data.num_workers=0",
                      *TINY_DATA_OVERRIDES], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "debug" / "multiruns").iterdir()
    rows = (sweep / "leaderboard.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and all(",completed," in row for row in rows)
