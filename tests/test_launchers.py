"""Scaling out: submitit jobs, the SLURM launcher's sbatch script, SLURM requeue, torchrun."""

import os
import signal
import subprocess
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from semseg.checkpoints.resume import requeued_checkpoint
from tests.helpers.cli import PYTHON, leaderboard, read_wandb_summary, run_cli
from tests.helpers.settings import TINY_DATA_OVERRIDES

TORCHRUN = str(Path(PYTHON).parent / "torchrun")
ONE_EPOCH = ["trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=8", "extras.print_config=false",
             "model=fcn8s", "callbacks=model_checkpoint", *TINY_DATA_OVERRIDES]
# what srun sets in each task of a one-node, one-task job, and a job name Lightning does not
# take for an interactive shell
SLURM_TASK = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_JOB_ID": "4242",
              "SLURM_JOB_NAME": "train", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}


def fake_commands(folder: Path, **scripts: str) -> dict:
    """Shell scripts standing in for cluster commands, first on PATH."""
    folder.mkdir()
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def assert_finished_run(run_dir: Path) -> None:
    assert (run_dir / "metrics.json").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert read_wandb_summary(run_dir)["state"] == "finished"


def test_submitit_local_runs_real_jobs_and_the_leaderboard_has_their_rows(tmp_path, data_dir):
    result = run_cli(
        [PYTHON, "-m", "semseg.train", "-m", "hydra/launcher=submitit_local", f"paths.data_dir={data_dir}",
         f"paths.log_dir={tmp_path}", *ONE_EPOCH, "model.optimizer.lr=0.01,0.001"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    assert len(list((sweep_dir / ".submitit").glob("*/*_result.pkl"))) == 2, "both jobs went through submitit"
    for job in ("0", "1"):
        assert_finished_run(sweep_dir / job)
    rows = leaderboard(sweep_dir)
    assert sorted(row["job"] for row in rows) == ["0", "1"] and {row["status"] for row in rows} == {"completed"}
    assert all(row["score"] and row["test/mIoU"] for row in rows)


def test_local_slurm_settings_compose_with_both_launchers(make_cfg, tmp_path):
    local = tmp_path / "search" / "local"
    local.mkdir(parents=True)
    (local / "default.yaml").write_text("# @package _global_\nslurm:\n  partition: gpu\n  account: seg\n")
    search = f"hydra.searchpath=[file://{tmp_path / 'search'}]"
    assert make_cfg([search]).hydra.launcher._target_.endswith("BasicLauncher")
    launcher = make_cfg([search, "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"]).hydra.launcher
    launcher = OmegaConf.to_container(launcher, resolve=True)
    assert launcher["partition"] == "gpu" and launcher["account"] == "seg" and launcher["qos"] is None
    assert launcher["tasks_per_node"] == 4 and launcher["nodes"] == 1
    assert launcher["additional_parameters"] == {"signal": "USR1@120", "requeue": True}


def test_slurm_launcher_writes_an_sbatch_script_with_one_task_per_gpu(tmp_path):
    """sbatch is faked: it keeps the script submitit wrote and refuses the job."""
    script = tmp_path / "job.sbatch"
    env = fake_commands(tmp_path / "bin", srun="exit 1", sbatch=f'cp "$1" {script}; exit 1')
    run_cli([PYTHON, "-m", "semseg.train", "-m", "hydra/launcher=slurm", "+slurm.partition=gpu",
             "hydra.launcher.gpus_per_node=2", "hydra.launcher.nodes=3", f"paths.log_dir={tmp_path}"],
            cwd=tmp_path, env=env)
    flags = {line.split()[1] for line in script.read_text().splitlines() if line.startswith("#SBATCH")}
    expected = {"--nodes=3", "--gpus-per-node=2", "--ntasks-per-node=2", "--partition=gpu", "--time=240",
                "--signal=USR1@120", "--requeue"}
    assert expected <= flags, flags
    assert "submitit.core._submit" in script.read_text()


def test_slurm_requeue_signal_saves_an_hpc_checkpoint_the_requeued_job_resumes_from(tmp_path, data_dir):
    """SIGUSR1 as SLURM sends it before the time limit; `scontrol` is faked and records the requeue."""
    run_dir, requeued = tmp_path / "run", tmp_path / "scontrol.txt"
    env = fake_commands(tmp_path / "bin", scontrol=f'echo "$@" > {requeued}') | SLURM_TASK
    # a constant schedule, so the requeued job may stop sooner than the first (a real one runs the
    # same command; a schedule of another length is refused on resume)
    args = [PYTHON, "-m", "semseg.train", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}",
            f"hydra.run.dir={run_dir}", *ONE_EPOCH, "logger=csv", "test=false", "model/scheduler=constant"]
    job = subprocess.Popen([*args, "trainer.max_epochs=1000"], cwd=tmp_path, env={**os.environ, **env},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt", job)  # training, Lightning's handlers are set
        job.send_signal(signal.SIGUSR1)
        wait_for(requeued, job)
    finally:
        job.kill()
        job.wait()
    assert requeued.read_text().split() == ["requeue", "4242"]
    epoch = torch.load(run_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)["epoch"]

    # the requeued job runs the same command in the same run folder
    result = run_cli([*args, f"trainer.max_epochs={epoch + 2}"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {run_dir / 'hpc_ckpt_1.ckpt'}" in result.stdout + result.stderr


def wait_for(path: Path, job: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert job.poll() is None, f"the job ended (exit {job.returncode}) before {path.name} appeared"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.2)


def test_torchrun_two_processes_share_one_run_folder(tmp_path, data_dir):
    result = run_cli(
        [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "semseg.train", "trainer=ddp_cpu",
         f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", *ONE_EPOCH],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert_finished_run(run_dir)
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.trainer.strategy == "ddp" and config.trainer.devices == 2


def test_a_requeued_job_without_hpc_checkpoint_continues_from_its_last_checkpoint(tmp_path, monkeypatch):
    """After a SIGTERM preemption only checkpoints/last.ckpt is in the run folder."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    assert requeued_checkpoint(tmp_path) is None  # a first run starts fresh
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(tmp_path) == last
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")  # Lightning resumes from its own checkpoint
    assert requeued_checkpoint(tmp_path) is None
