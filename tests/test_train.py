"""Real Lightning runs through the real entry points, on the tiny synthetic dataset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.train import train
from tests.conftest import REPO, TINY_DATA_OVERRIDES

PYTHON = sys.executable
WANDB = str(Path(sys.executable).parent / "wandb")
SHORT_RUN = ["trainer.max_epochs=2", "trainer.log_every_n_steps=1", "model/scheduler=constant"]


@pytest.mark.parametrize("model", ["fcn32s", "fcn16s", "fcn8s", "unet", "pixelwise", "sliding_window"])
def test_fast_dev_run_for_every_model(make_cfg, model):
    metrics = train(make_cfg([f"model={model}", "debug=fdr"]))
    assert {"train/loss", "val/mIoU", "test/mIoU", "test/pixel_acc"} <= set(metrics)
    assert all(f"test/IoU/{name}" in metrics for name in ["background", "stripes", "crosshatch"])


DEBUG_OPTIONS = sorted(p.stem for p in (REPO / "configs" / "debug").glob("*.yaml") if p.stem != "default")


@pytest.mark.parametrize("option", DEBUG_OPTIONS)
def test_every_debug_option_runs_on_the_default_data(make_cfg, option):
    cfg = make_cfg([f"debug={option}"])
    assert cfg.task_name == "debug"
    metrics = train(cfg)
    assert {"train/loss", "val/mIoU", "test/mIoU"} <= set(metrics)


def read_wandb_summary(run_dir: Path) -> dict:
    """Read an offline W&B run back with W&B's own reader."""
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [WANDB, "leet", "inspect", "--summary", "--json", str(offline_run)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def test_train_then_eval_gives_the_same_test_miou_and_wandb_has_it(make_cfg):
    cfg = make_cfg(SHORT_RUN)
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    best = run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "csv" / "metrics.csv").read_text().count("val/mIoU") == 1

    summary = read_wandb_summary(run_dir)
    text = json.dumps(summary)
    for key in ["val/mIoU", "val/pixel_acc", "val/IoU/stripes", "test/mIoU", "train/loss"]:
        assert f'"{key}"' in text, f"{key} missing from the W&B run"
    assert '"model/net/decoder/_target_"' in text, "the resolved config is the run config"

    eval_cfg = make_cfg([f"ckpt_path={best}"], config_name="eval.yaml", output="eval")
    scores = evaluate(eval_cfg)
    assert scores["test/mIoU"] == pytest.approx(metrics["test/mIoU"], abs=1e-6)
    assert scores["test/IoU/stripes"] == pytest.approx(metrics["test/IoU/stripes"], abs=1e-6, nan_ok=True)

    # scoring the validation split reproduces the best validation score the checkpoint was kept for
    val_cfg = make_cfg([f"ckpt_path={best}", "split=val"], config_name="eval.yaml", output="eval_val")
    assert evaluate(val_cfg)["test/mIoU"] == pytest.approx(metrics["val/mIoU"], abs=1e-6)


def test_num_classes_that_disagrees_with_the_data_is_refused(make_cfg):
    with pytest.raises(SemsegError, match=r"model.net.num_classes=3 but data .* has 5 classes"):
        train(make_cfg(["model.net.num_classes=3"]))


def test_eval_refuses_a_checkpoint_from_elsewhere(make_cfg, tmp_path):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "epoch": 3}, foreign)
    with pytest.raises(SemsegError, match="not one written by semseg.train"):
        evaluate(make_cfg([f"ckpt_path={foreign}"], config_name="eval.yaml"))
    with pytest.raises(SemsegError, match="missing.ckpt not found"):
        evaluate(make_cfg([f"ckpt_path={tmp_path / 'missing.ckpt'}"], config_name="eval.yaml"))


def run_cli(args: list[str], cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command quietly; `env` adds to (or replaces) this process's environment variables."""
    env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env, **kwargs)


def test_make_train_passes_hydra_overrides_through(tmp_path, data_dir):
    venv = Path(sys.executable).parents[1]
    result = run_cli(
        ["make", "-C", str(REPO), "-o", f"{venv}/.installed", f"VENV={venv}", "train",
         "model=fcn8s", "trainer.max_epochs=1", "data.batch_size=8", "data.num_workers=0",
         f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", *TINY_DATA_OVERRIDES],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "FCNDecoder" in config and "batch_size: 8" in config and "max_epochs: 1" in config
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert "test/mIoU" in result.stdout


def test_cli_errors_are_one_clear_line(tmp_path, data_dir):
    base = [PYTHON, "-m", "semseg.train", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}"]
    bad_encoder = run_cli([*base, "model.net.encoder.name=resnet181"], cwd=tmp_path)
    assert bad_encoder.returncode == 2
    assert "semseg: error: unknown timm encoder 'resnet181'" in bad_encoder.stderr
    assert "Traceback" not in bad_encoder.stderr + bad_encoder.stdout

    bad_model = run_cli([*base, "model=resnet"], cwd=tmp_path)
    assert bad_model.returncode != 0
    assert "Could not find 'model/resnet'" in bad_model.stderr and "fcn8s" in bad_model.stderr
    assert "Traceback" not in bad_model.stderr

    missing = run_cli([PYTHON, "-m", "semseg.eval", f"ckpt_path={tmp_path / 'x.ckpt'}"], cwd=tmp_path)
    assert missing.returncode == 2 and "x.ckpt not found" in missing.stderr
