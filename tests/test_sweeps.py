"""Hydra multiruns: one W&B run per job in one group, a leaderboard, failures, Optuna."""

import json
from pathlib import Path

import yaml

from tests.helpers.cli import PYTHON, leaderboard, read_wandb_summary, run_cli
from tests.helpers.settings import TINY_DATA_OVERRIDES

FAST = ["trainer.max_epochs=1", "data.num_workers=0", "extras.print_config=false",
        "callbacks=none", "+trainer.enable_checkpointing=false", *TINY_DATA_OVERRIDES]


def multirun(tmp_path: Path, data_dir: Path, *overrides: str):
    """Run `semseg.train -m` on the tiny data; overrides the search sets must not appear here."""
    result = run_cli(
        [PYTHON, "-m", "semseg.train", "-m", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}",
         *FAST, *overrides],
        cwd=tmp_path,
    )
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    return result, sweep_dir


def test_grid_multirun_gives_one_wandb_group_and_a_leaderboard(tmp_path, data_dir):
    result, sweep_dir = multirun(tmp_path, data_dir, "model=fcn8s,unet", "data.batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [read_wandb_summary(sweep_dir / job) for job in ("0", "1")]
    groups = {json.dumps(s["config"].get("logger/wandb/group")) for s in summaries}
    assert groups == {json.dumps(f"train-{sweep_dir.name}")}
    assert len({s["run_id"] for s in summaries}) == 2
    rows = leaderboard(sweep_dir)
    assert len(rows) == 2 and {row["status"] for row in rows} == {"completed"}
    assert float(rows[0]["score"]) >= float(rows[1]["score"])
    chosen = {part for row in rows for part in row["overrides"].split() if part.startswith("model=")}
    assert chosen == {"model=fcn8s", "model=unet"}
    assert "| rank | job | status | val/mIoU |" in (sweep_dir / "leaderboard.md").read_text()


def test_failing_job_is_reported_and_the_others_are_kept(tmp_path, data_dir):
    result, sweep_dir = multirun(tmp_path, data_dir, "model=fcn32s", "logger=csv",
                                 "model.net.encoder.name=resnet181,resnet18")
    assert result.returncode != 0
    rows = leaderboard(sweep_dir)
    assert [row["status"] for row in rows] == ["completed", "failed"]
    assert "unknown timm encoder 'resnet181'" in rows[1]["error"]
    assert rows[0]["score"] and Path(rows[0]["run_dir"], "metrics.json").is_file()


def test_optuna_search_runs_its_trials_and_writes_the_best_parameters(tmp_path, data_dir):
    result, sweep_dir = multirun(tmp_path, data_dir, "hparams_search=optuna", "hydra.sweeper.n_trials=3",
                                 "logger=csv")
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["name"] == "optuna"
    params = {"model", "model.optimizer.lr", "model.optimizer.weight_decay", "data.batch_size"}
    assert set(best["best_params"]) == params
    assert len(leaderboard(sweep_dir)) == 3
