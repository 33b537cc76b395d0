"""What a run shows: W&B (read back with W&B's own reader), TensorBoard, and files on disk."""

import json
from pathlib import Path

import pytest
from PIL import Image

from semseg.errors import SemsegError
from semseg.train import train
from tests.test_train import SHORT_RUN, read_wandb_summary


def test_wandb_run_has_metrics_config_code_version_and_mask_images(make_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # W&B must not write into the current folder
    cfg = make_cfg([*SHORT_RUN, "logger.wandb.tags=[unit,test]", "logger.wandb.group=g1"])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    summary = read_wandb_summary(run_dir)
    assert summary["state"] == "finished" and summary["tags"] == ["unit", "test"]
    metrics = summary["summary"]
    for key in ["val/mIoU", "val/pixel_acc", "val/loss", "train/loss", "test/mIoU",
                *[f"val/IoU/{name}" for name in cfg.data.class_names]]:
        assert key in metrics, key
    assert any(key.startswith("lr-") for key in metrics), "the learning rate is logged"
    overlays = metrics["val/predictions"]
    assert overlays["_type"] == "images/separated" and int(overlays["count"]) == 4
    masks = json.dumps(overlays["all_masks"])
    assert "ground_truth" in masks and "prediction" in masks
    assert metrics["val/confusion_matrix"]["_type"] == "image-file"
    assert metrics["val/per_class_iou"]["_type"] == "table-file"
    config = summary["config"]
    assert config["model/net/decoder/_target_"].endswith("UNetDecoder")
    assert len(config["git/commit"]) == 40 or config["git/commit"] == "unknown"
    assert not (tmp_path / "wandb").exists(), "W&B files belong under the run folder"


def test_pictures_are_saved_as_files_for_every_logger(make_cfg):
    cfg = make_cfg([*SHORT_RUN, "logger=tensorboard"])
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "validation"
    with Image.open(folder / "epoch_001_predictions.png") as panel:
        assert panel.size == (3 * 64, 4 * 64)  # image | truth | prediction, 4 images
    assert (folder / "epoch_001_confusion.png").is_file()
    rows = (folder / "epoch_001_iou.csv").read_text().splitlines()
    assert rows[0] == "class,IoU,pixels" and len(rows) == 1 + len(cfg.data.class_names)
    events = list((Path(cfg.paths.output_dir) / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 10_000, "TensorBoard got the images"


@pytest.mark.parametrize("logger", ["csv", "many_loggers", "none"])
def test_other_loggers_keep_working(make_cfg, logger):
    metrics = train(make_cfg(["debug=fdr", f"logger={logger}"]))
    assert "test/mIoU" in metrics


def test_invalid_wandb_project_is_refused_before_training(make_cfg):
    cfg = make_cfg(["logger.wandb.project=team/semseg"])
    with pytest.raises(SemsegError, match=r"logger.wandb.project='team/semseg' is not a valid W&B project"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
