"""What a run shows: W&B (read back with W&B's own reader), TensorBoard, and files on disk."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.data.palette import colorize
from semseg.errors import SemsegError
from semseg.train import train
from tests.helpers.cli import PYTHON, read_wandb_summary, run_cli
from tests.helpers.settings import SHORT_RUN


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
    with Image.open(folder / "epoch_001_predictions.png") as picture:
        panel = np.array(picture.convert("RGB"))
    # image | truth | prediction for val images 0, 2, 3 and 5 of 6 (spread over the split), of
    # sizes 48x80, 64x64, 48x80, 64x64 (h x w): each row scaled to 64 pixels high, the 48x80
    # ones to 64x107, so the widest row is 3 x 107; the class legend below
    assert panel.shape[1] == round(3 * 80 * 64 / 48) and panel.shape[0] > 4 * 64
    legend = panel[4 * 64 :].reshape(-1, 3)
    for colour in colorize(np.arange(len(cfg.data.class_names))):
        assert (legend == colour).all(1).any(), f"colour {colour} missing from the legend"
    assert (folder / "epoch_001_confusion.png").is_file()
    rows = (folder / "epoch_001_iou.csv").read_text().splitlines()
    assert rows[0] == "class,IoU,pixels" and len(rows) == 1 + len(cfg.data.class_names)
    events = list((Path(cfg.paths.output_dir) / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 10_000, "TensorBoard got the images"


ONE_BATCH = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
             "++trainer.limit_test_batches=1"]


@pytest.mark.parametrize("logger", ["csv", "many_loggers", "tensorboard", "wandb", "none"])
def test_every_logger_option_runs_with_the_default_callbacks(make_cfg, logger):
    metrics = train(make_cfg([*ONE_BATCH, f"logger={logger}"]))
    assert "test/mIoU" in metrics


@pytest.mark.parametrize("callbacks", ["none", "[default,early_stopping]", "model_checkpoint"])
def test_other_callback_options_run(make_cfg, callbacks):
    metrics = train(make_cfg([*ONE_BATCH, f"callbacks={callbacks}", "logger=csv"]))
    assert "test/mIoU" in metrics


def test_invalid_wandb_project_is_refused_before_training(make_cfg):
    cfg = make_cfg(["logger.wandb.project=team/semseg"])
    with pytest.raises(SemsegError, match=r"logger.wandb.project='team/semseg' is not a valid W&B project"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_unwritable_log_dir_and_unknown_keys_fail_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    unwritable = run_cli([PYTHON, "-m", "semseg.train", f"paths.log_dir={blocker}/logs"], cwd=tmp_path)
    assert unwritable.returncode == 2 and "Traceback" not in unwritable.stderr
    assert f"semseg: error: cannot write to paths.log_dir={blocker}/logs" in unwritable.stderr

    typo = run_cli([PYTHON, "-m", "semseg.train", f"paths.log_dir={tmp_path}/logs", "trainer.max_epoch=3"],
                   cwd=tmp_path)
    assert typo.returncode == 1 and "Could not override 'trainer.max_epoch'" in typo.stderr
    assert not (tmp_path / "logs").exists()


def test_wandb_media_stay_in_the_run_folder_with_ddp_spawn(make_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg([*SHORT_RUN, "+trainer.strategy=ddp_spawn", "trainer.devices=2",
                    "~callbacks.rich_progress_bar"])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    media = list(run_dir.glob("wandb/offline-run-*/files/media/images/**/*.png"))
    assert media, "overlay images were logged"
    assert not (tmp_path / "wandb").exists() and not (tmp_path / "media").exists()
    assert read_wandb_summary(run_dir)["state"] == "finished"
    # fit and test ran in separate spawned processes; the CSV keeps both sets of columns and rows
    with open(run_dir / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert any(row["val/mIoU"] for row in rows) and any(row["test/mIoU"] for row in rows)
