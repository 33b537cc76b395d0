"""Real Lightning runs through the real entry points, on the tiny synthetic dataset."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.train import train
from tests.helpers.cli import PYTHON, read_wandb_summary, run_cli
from tests.helpers.settings import REPO, SHORT_RUN, TINY_DATA_OVERRIDES


@pytest.mark.parametrize("model", ["fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv3plus", "upernet", "segformer",
                                   "pixelwise", "patch_classifier"])
def test_fast_dev_run_for_every_model(make_cfg, model):
    metrics = train(make_cfg([f"model={model}", "debug=fdr"]))
    assert {"train/loss", "val/mIoU", "test/mIoU", "test/pixel_acc"} <= set(metrics)
    assert all(f"test/IoU/{name}" in metrics for name in ["background", "stripes", "crosshatch"])


def readme_train_commands(section: str) -> list[str]:
    """The `make train ...` lines of the first bash block under the README heading `section`."""
    text = (REPO / "README.md").read_text().split(f"\n## {section}\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("make train ")]


MODEL_COMMANDS = readme_train_commands("Models")


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_readme_model_commands_run(make_cfg, command):
    """Each `make train` line of the README's Models section, at a tiny size (random init, 1 step)."""
    overrides = command.split()[2:]
    metrics = train(make_cfg([*overrides, "trainer.max_epochs=1", "++trainer.limit_train_batches=1",
                              "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1", "data.batch_size=2",
                              "logger=csv", "callbacks=none"]))
    assert np.isfinite(metrics["train/loss"]) and "test/mIoU" in metrics


def test_the_readme_shows_model_commands():
    assert len(MODEL_COMMANDS) == 5 and all("model=" in command for command in MODEL_COMMANDS)


DEBUG_OPTIONS = sorted(p.stem for p in (REPO / "configs" / "debug").glob("*.yaml") if p.stem != "default")


@pytest.mark.parametrize("option", DEBUG_OPTIONS)
def test_every_debug_option_runs_on_the_default_data(make_cfg, option):
    cfg = make_cfg([f"debug={option}"])
    assert cfg.task_name == "debug"
    metrics = train(cfg)
    assert {"train/loss", "val/mIoU", "test/mIoU"} <= set(metrics)


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
    val_cfg = make_cfg([f"ckpt_path={best}", "data.splits.test=val"], config_name="eval.yaml", output="eval_val")
    assert evaluate(val_cfg)["test/mIoU"] == pytest.approx(metrics["val/mIoU"], abs=1e-6)


def test_test_inference_runs_the_test_after_training_as_eval_runs_it(make_cfg):
    """Flip and multi-scale TTA in the test of the best checkpoint: eval with the same settings agrees."""
    tta = ["test_inference.flip=true", "test_inference.scales=[0.75,1.0]"]
    cfg = make_cfg([*SHORT_RUN, "model=fcn8s", "inference@test_inference=whole", *tta])
    metrics = train(cfg)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"

    def scores(overrides, output):
        return evaluate(make_cfg([f"ckpt_path={best}", *overrides], config_name="eval.yaml", output=output))

    with_tta = scores([option.replace("test_inference", "inference") for option in tta], "eval_tta")
    assert with_tta["test/mIoU"] == pytest.approx(metrics["test/mIoU"], abs=1e-6)
    assert with_tta["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
    assert scores([], "eval_plain")["test/loss"] != pytest.approx(metrics["test/loss"], rel=1e-3)


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
    assert bad_model.returncode == 2 and "Traceback" not in bad_model.stderr
    (line,) = bad_model.stderr.strip().splitlines()
    assert line.startswith("semseg: error: model=resnet: there is no config model/resnet.yaml; choose one of ")
    assert "fcn8s" in line and "unet" in line

    missing = run_cli([PYTHON, "-m", "semseg.eval", f"ckpt_path={tmp_path / 'x.ckpt'}"], cwd=tmp_path)
    assert missing.returncode == 2 and "x.ckpt not found" in missing.stderr


@pytest.mark.parametrize(
    ("entry", "overrides", "message"),
    [
        ("semseg.train", ["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be an integer of at least -1, e.g. trainer.max_epochs=10."),
        ("semseg.train", ["data.batch_size=0"], "data.batch_size=0 must be an integer of at least 1, e.g. data.batch_size=8."),
        ("semseg.eval", [], "ckpt_path has no value (??? in its config); set it on the command line, e.g. ckpt_path=<value>."),
        ("semseg.train", ["model/encoder=resnet18", "model.net.encoder.pretrained=true"],
         "cannot get timm's pretrained weights for 'resnet18' (offline, and they are not in the local cache). Pass a "
         "local weights file, model.net.encoder.pretrained=/path/to/weights.safetensors, or "
         "model.net.encoder.pretrained=false for random init."),
        ("semseg.train", ["model=fcn8s", "inference@test_inference=slide", "test_inference.crop_size=16",
                          "test_inference.stride=16"],
         "test_inference.crop_size=[16, 16] is smaller than the model's output stride 32; use a crop of at least 32 "
         "pixels (e.g. a multiple of it)."),
    ],
    ids=["max_epochs", "batch_size", "eval-without-checkpoint", "pretrained-offline", "test-inference-crop"],
)
def test_bad_settings_are_one_line_before_any_work(tmp_path, data_dir, entry, overrides, message):
    """HF_HUB_OFFLINE=1 (set for every test) stands for a machine without internet."""
    result = run_cli([PYTHON, "-m", entry, f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", *overrides,
                      *TINY_DATA_OVERRIDES], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"semseg: error: {message}"
    assert not list(tmp_path.glob("*/runs/*/checkpoints"))


def test_a_broken_file_read_in_a_loader_worker_is_one_line_and_verify_finds_it_first(tmp_path, data_dir):
    import shutil

    data = shutil.copytree(data_dir, tmp_path / "data")
    broken = data / "synthetic/JPEGImages/train_00003.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated, as by an interrupted copy
    base = [PYTHON, "-m", "semseg.train", f"paths.data_dir={data}", f"paths.log_dir={tmp_path / 'logs'}",
            "data.num_workers=1", "logger=csv", "trainer.max_epochs=1", *TINY_DATA_OVERRIDES]
    in_worker = run_cli(base, cwd=tmp_path)
    assert in_worker.returncode == 2, in_worker.stderr[-2000:]
    last = in_worker.stderr.strip().splitlines()[-1]
    assert last.startswith(f"semseg: error: cannot read image {broken}") and "Traceback" not in in_worker.stderr
    verified = run_cli([*base, "data.verify=true"], cwd=tmp_path)
    assert verified.returncode == 2
    assert verified.stderr.strip().splitlines()[-1].startswith(
        f"semseg: error: data.verify: 1 of 16 pairs of split 'train' cannot be used: cannot read image {broken}")


@pytest.mark.parametrize("option", ["trainer=cpu", "experiment=synthetic_fcn8s", "model/optimizer=sgd",
                                    "model/scheduler=poly", "model/scheduler=cosine", "model/scheduler=onecycle"])
def test_config_table_options_run(make_cfg, option):
    """The README's config-group table: options no other test trains with."""
    metrics = train(make_cfg([option, "trainer.max_epochs=1", "++trainer.limit_train_batches=2",
                              "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1", "logger=csv"]))
    assert np.isfinite(metrics["train/loss"]) and "test/mIoU" in metrics


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    """Set when semseg is imported, before torch loads OpenMP; a value of the user's own is kept."""
    import os
    import subprocess

    script = "import os, sys, semseg; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    unset = subprocess.run([PYTHON, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert unset.stdout.split() == ["PASSIVE", "False"]
    given = subprocess.run([PYTHON, "-c", script], env=env | {"OMP_WAIT_POLICY": "ACTIVE"}, cwd=REPO,
                           capture_output=True, text=True, check=True)
    assert given.stdout.split() == ["ACTIVE", "False"]


@pytest.mark.parametrize("callbacks, validated_epochs", [("default", [1, 2]), ("model_checkpoint", [1])])
def test_validating_every_second_epoch_still_scores_the_last(make_cfg, tmp_path, callbacks, validated_epochs):
    """3 epochs validated every 2nd: the default callbacks add the last epoch (FinalValidation);
    without them epoch 3 is never scored and cannot become the best checkpoint."""
    import csv

    cfg = make_cfg(["trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2", "model/scheduler=constant",
                    "logger=csv", f"callbacks={callbacks}", "test=false"])
    train(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as file:
        epochs = [int(row["epoch"]) for row in csv.DictReader(file) if row.get("val/mIoU")]
    assert epochs == validated_epochs
