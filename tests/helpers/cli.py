"""Running the entry points as a user does, and reading what they wrote back with W&B's own reader."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

PYTHON = sys.executable
WANDB = str(Path(sys.executable).parent / "wandb")


def run_cli(args: list[str], cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command quietly; `env` adds to (or replaces) this process's environment variables."""
    env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env, **kwargs)


def read_wandb_summary(run_dir: Path) -> dict:
    """Read an offline W&B run back with W&B's own reader."""
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [WANDB, "leet", "inspect", "--summary", "--json", str(offline_run)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def leaderboard(sweep_dir: Path) -> list[dict]:
    """The rows of a multirun's leaderboard.csv."""
    with open(sweep_dir / "leaderboard.csv") as file:
        return list(csv.DictReader(file))
