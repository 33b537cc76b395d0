"""DDP on 2 CPU processes: one run folder, global batch, exact metrics, sweeps, clear refusals.

Plain `ddp` re-runs the command line for each rank, so those runs go through subprocesses.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from semseg.data.synthetic import generate
from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.launch import check_devices
from semseg.run_setup import scale_learning_rate
from semseg.train import build
from tests.helpers.cli import PYTHON, read_wandb_summary, run_cli
from tests.helpers.settings import MIXED_SIZES, REPO, prepare_overrides

# 7 images in val and test: two processes cannot split them evenly
ODD_DATA = dict(image_size=64, num_train=16, num_val=7, num_test=7, sizes=MIXED_SIZES)
COMMON = ["data.num_workers=0", "data.batch_size=4", "extras.print_config=false", *prepare_overrides(ODD_DATA)]


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("odd")
    generate(root / "synthetic", seed=0, **ODD_DATA)
    return root


def cli(entry: str, tmp_path: Path, data_dir: Path, *overrides: str, env: dict | None = None, multirun=False):
    args = [PYTHON, "-m", entry, *(["-m"] if multirun else []), f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", *COMMON,
            *overrides]
    return run_cli(args, cwd=tmp_path, env=env)


def only_run_dir(tmp_path: Path, task: str) -> Path:
    (run_dir,) = (tmp_path / "logs" / task / "runs").iterdir()
    return run_dir


def single_process_eval(make_cfg, data_dir: Path, checkpoint: Path, split: str) -> dict:
    cfg = make_cfg([*COMMON, f"paths.data_dir={data_dir}", f"ckpt_path={checkpoint}", f"data.splits.test={split}", "logger=none"],
                   config_name="eval.yaml", output=f"eval-{split}")
    return evaluate(cfg)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, odd_data) -> Path:
    """One `trainer=ddp_cpu` training run, shared by the tests that inspect it."""
    tmp = tmp_path_factory.mktemp("ddp")
    result = cli("semseg.train", tmp, odd_data, "trainer=ddp_cpu", "trainer.max_epochs=2",
                 "model/scheduler=constant")
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(tmp, "train")


def test_ddp_run_has_one_folder_one_wandb_run_and_one_checkpoint_set(ddp_run):
    assert sorted(p.name for p in ddp_run.glob("*.log")) == ["train.log", "train_ddp_process_1.log"]
    assert sorted(p.name for p in (ddp_run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert len(list((ddp_run / "wandb").glob("offline-run-*"))) == 1
    summary = read_wandb_summary(ddp_run)
    assert summary["state"] == "finished"
    # data.batch_size=4 is the global batch: 16 images make 4 steps per epoch, not 8
    assert summary["summary"]["trainer/global_step"] == 2 * 16 // 4


def test_validation_under_ddp_equals_a_single_process_evaluation(ddp_run, make_cfg, odd_data):
    metrics = json.loads((ddp_run / "metrics.json").read_text())
    single = single_process_eval(make_cfg, odd_data, ddp_run / "checkpoints" / "best.ckpt", "val")
    # 7 val images over 2 processes: no image is repeated to pad a process's share
    assert metrics["val/mIoU"] == single["test/mIoU"]


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_on_two_processes_matches_one_process_exactly(ddp_run, make_cfg, odd_data, tmp_path, split):
    checkpoint = ddp_run / "checkpoints" / "best.ckpt"
    result = cli("semseg.eval", tmp_path, odd_data, f"ckpt_path={checkpoint}", f"data.splits.test={split}",
                 "trainer=ddp_cpu", "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = json.loads((only_run_dir(tmp_path, "eval") / "metrics.json").read_text())
    single = single_process_eval(make_cfg, odd_data, checkpoint, split)
    scores = [key for key in single if "IoU" in key or key == "test/pixel_acc"]
    assert len(scores) == 1 + 5 + 1
    assert {key: distributed[key] for key in scores} == {key: single[key] for key in scores}
    assert distributed["test/loss"] == pytest.approx(single["test/loss"], rel=1e-6)


def test_multirun_with_ddp_runs_each_job_once_with_its_parameters_on_every_rank(tmp_path, odd_data):
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = cli("semseg.train", tmp_path, odd_data, "trainer=ddp_cpu", "trainer.max_epochs=1",
                 "test=false", "model/scheduler=constant", "model.optimizer.lr=0.01,0.001",
                 "+callbacks.rank_probe._target_=tests.helpers.callbacks.RankProbe",
                 env={"PYTHONPATH": pythonpath}, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [job.name for job in jobs] == ["0", "1"]
    for job, lr in zip(jobs, (0.01, 0.001)):
        ranks = [json.loads((job / f"rank{rank}.json").read_text()) for rank in (0, 1)]
        assert [(r["rank"], r["world_size"], r["lr"]) for r in ranks] == [(0, 2, lr), (1, 2, lr)]
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        assert (job / "checkpoints" / "best.ckpt").is_file()


def test_batch_size_that_does_not_divide_over_the_processes_is_refused(tmp_path, odd_data):
    result = cli("semseg.train", tmp_path, odd_data, "trainer=ddp_cpu", "data.batch_size=5", "logger=none")
    assert result.returncode == 2
    assert "data.batch_size=5 is the global batch and must divide evenly over 2 processes" in result.stderr


def test_gpu_trainers_without_a_gpu_are_refused_before_any_work(tmp_path, odd_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for trainer in ("ddp", "gpu"):
        result = cli("semseg.train", tmp_path, odd_data, f"trainer={trainer}")
        assert result.returncode == 2, result.stderr[-2000:]
        assert "needs a CUDA GPU, but none is visible" in result.stderr
        assert "trainer=ddp_cpu" in result.stderr
    assert not list(tmp_path.glob("logs/train/runs/*/checkpoints"))


def test_more_gpus_than_exist_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    trainer = OmegaConf.create({"accelerator": "gpu", "devices": 4})
    with pytest.raises(SemsegError, match="trainer.devices=4 asks for 4 GPUs, but this machine has 2"):
        check_devices(trainer)
    check_devices(OmegaConf.create({"accelerator": "gpu", "devices": -1}))  # all of them is fine
    with pytest.raises(SemsegError, match="asks for 3 GPUs"):
        check_devices(OmegaConf.create({"accelerator": "gpu", "devices": "0,1,2"}))


@pytest.mark.parametrize(("rule", "batch_size", "expected"), [("none", 32, 1e-3), ("linear", 32, 2e-3),
                                                              ("sqrt", 64, 2e-3), ("linear", 8, 5e-4)])
def test_learning_rate_scales_with_the_global_batch(make_cfg, rule, batch_size, expected):
    cfg = make_cfg([f"lr_scaling.rule={rule}", "lr_scaling.base_batch_size=16", "model.optimizer.lr=0.001",
                    f"data.batch_size={batch_size}", "logger=none", "callbacks=none"])
    scale_learning_rate(cfg)
    _, model, _ = build(cfg)
    optimizer = model.optimizer_factory(params=model.parameters())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_channels_last_trains_and_converts_the_network(make_cfg):
    datamodule, model, trainer = build(make_cfg(["channels_last=true", "debug=fdr", "logger=none"]))
    trainer.fit(model, datamodule=datamodule)
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_ddp_takes_its_node_count_from_slurm_as_a_number(make_cfg, monkeypatch):
    assert make_cfg(["trainer=ddp"]).trainer.num_nodes == 1
    monkeypatch.setenv("SLURM_NNODES", "2")
    assert make_cfg(["trainer=ddp"]).trainer.num_nodes == 2  # an int, as the Trainer requires
