"""Facts about a run that belong in its logged config: code version, multirun membership."""

import json
import re
import subprocess
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, open_dict

from semseg.errors import SemsegError

# characters W&B refuses in project names
_BAD_WANDB_PROJECT = re.compile(r"[/\\#?%:]")


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


def configure_wandb(cfg: DictConfig) -> None:
    """Check the W&B settings before any work, and group the jobs of a multirun.

    Every job of one multirun becomes its own W&B run in one group named after the multirun.
    """
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg:
        return
    project = str(wandb_cfg.get("project") or "")
    if not project or len(project) > 128 or _BAD_WANDB_PROJECT.search(project):
        raise SemsegError(
            f"logger.wandb.project='{project}' is not a valid W&B project name: use 1-128 characters "
            "without / \\ # ? % :, e.g. logger.wandb.project=semseg."
        )
    if in_multirun():
        hydra_cfg = HydraConfig.get()
        group = wandb_cfg.get("group") or f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
        with open_dict(cfg):
            cfg.logger.wandb.group = group
            cfg.logger.wandb.name = f"{group}-job{hydra_cfg.job.num}"


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: dict) -> None:
    """Save a run's final metrics as JSON beside its outputs (read by the sweep leaderboard).

    Rank 0 only: every process of a DDP run holds the same synced metrics.
    """
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, allow_nan=True))
