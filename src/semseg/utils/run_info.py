"""Facts about a run: its code version, whether it is a multirun job, and its final metrics file."""

import json
import subprocess
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only


def git_state(folder: str | Path) -> dict:
    """The commit checked out in `folder` and whether the tree has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {"commit": commit or "unknown", "dirty": dirty if commit else None}


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: dict) -> None:
    """Save a run's final metrics as JSON beside its outputs (read by the sweep leaderboard).

    Rank 0 only: every process of a DDP run holds the same synced metrics.
    """
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, allow_nan=True))
