"""Loggers: the CSV logger, and the whole W&B lifecycle of a run.

W&B, in order: the settings are checked before any work (`check_wandb_settings`); a multirun's
jobs are grouped (`multirun_wandb_names`) and a resumed run continues the checkpoint's W&B run
(`resumed_wandb_run`), both as config values the run set-up writes; files go to the run folder
(`WANDB_DIR`, `use_run_dir`); the config and code version are logged
(`log_run_config`); the run id is stored in checkpoints (`wandb_run_id`, by
semseg.callbacks.run_state); and every run is finished, marked failed on a crash (`finish_loggers`).
"""

import csv
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
import wandb
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from semseg.errors import SemsegError
from semseg.utils.config import flat_config
from semseg.utils.run_info import git_state, in_multirun

# characters W&B refuses in project names
_BAD_WANDB_PROJECT = re.compile(r"[/\\#?%:]")


class CSVLogger(LightningCSVLogger):
    """Keeps the columns already in metrics.csv when new ones arrive.

    Lightning's writer knows only the columns it logged itself. Under `ddp_spawn`, fit and test
    run in separate processes; when test adds its columns, the writer rewrote the file with the
    test columns alone and failed on the rows validation had written. Reading the existing
    header first keeps every column.
    """

    @property
    def experiment(self):
        writer = super().experiment
        path = getattr(writer, "metrics_file_path", None)
        if isinstance(path, str) and not writer.metrics_keys and os.path.isfile(path):
            with open(path, newline="") as file:
                writer.metrics_keys.extend(next(csv.reader(file), []))
        return writer


def check_wandb_settings(cfg: DictConfig) -> None:
    """Refuse an invalid W&B project name, or an online run without a reachable server, before any work."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg:
        return
    project = str(wandb_cfg.get("project") or "")
    if not project or len(project) > 128 or _BAD_WANDB_PROJECT.search(project):
        raise SemsegError(
            f"logger.wandb.project='{project}' is not a valid W&B project name: use 1-128 characters "
            "without / \\ # ? % :, e.g. logger.wandb.project=semseg."
        )
    check_wandb_reachable(wandb_cfg)


def multirun_wandb_names(cfg: DictConfig) -> dict[str, str]:
    """`logger.wandb.group` and `.name` for a job of a multirun: each job its own W&B run, in one
    group named after the multirun. Nothing outside a multirun or without W&B."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg or not in_multirun():
        return {}
    hydra_cfg = HydraConfig.get()
    group = wandb_cfg.get("group") or f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
    return {"logger.wandb.group": group, "logger.wandb.name": f"{group}-job{hydra_cfg.job.num}"}


OFFLINE_HINT = (
    "log offline with logger.wandb.offline=true (the default) and upload later with "
    "wandb sync <run>/wandb/offline-run-*"
)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def check_wandb_reachable(wandb_cfg) -> None:
    """With `logger.wandb.offline=false`, refuse at once when the W&B server cannot be reached.

    W&B itself retries for about 100 seconds before it gives up. A direct 3-second connection
    says nothing behind a proxy, so there W&B's own error is reported (`log_run_config`).
    """
    if wandb_cfg.get("offline", False) or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=3).close()
    except OSError as error:
        raise SemsegError(
            f"logger.wandb.offline=false, but the W&B server {url.hostname}:{port} cannot be reached "
            f"({error.strerror or type(error).__name__}); {OFFLINE_HINT}."
        ) from None


def resumed_wandb_run(cfg: DictConfig, run_id: str | None) -> dict[str, str]:
    """`logger.wandb.id` and `.resume` that continue a checkpoint's W&B run, so the resumed run
    continues its charts; nothing without a stored id or without W&B."""
    if run_id and (cfg.get("logger") or {}).get("wandb"):
        return {"logger.wandb.id": run_id, "logger.wandb.resume": "allow"}
    return {}


def use_run_dir(cfg: DictConfig) -> None:
    """W&B's files (media included) go to the run folder, in every process."""
    os.environ["WANDB_DIR"] = str(cfg.paths.output_dir)


def log_run_config(cfg: DictConfig, trainer: L.Trainer, code_dir: str | Path) -> None:
    """Give every logger the resolved config (flat keys) and the code version."""
    git = git_state(code_dir)
    params = flat_config(cfg) | {"git/commit": git["commit"], "git/dirty": git["dirty"]}
    for logger in trainer.loggers:
        try:
            logger.log_hyperparams(params)  # starts the W&B run
        except (wandb.errors.UsageError, wandb.errors.CommError, wandb.errors.AuthenticationError) as error:
            raise SemsegError(
                f"W&B could not start an online run ({str(error).strip().splitlines()[0][:200]}). Log in with "
                f"`wandb login` (or set WANDB_API_KEY), or {OFFLINE_HINT}."
            ) from None


def wandb_run_id(trainer: L.Trainer) -> str | None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.version
    return None


def finish_loggers(trainer: L.Trainer) -> None:
    """Close every logger's run, marked failed while an exception is in flight.

    W&B runs must never be left open: a crashed run is finished with a non-zero exit code.
    """
    failed = sys.exc_info()[0] is not None
    for logger in trainer.loggers:
        logger.finalize("failed" if failed else "success")
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        wandb.finish(exit_code=1 if failed else 0)
