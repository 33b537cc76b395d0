"""Resuming a training run: find the checkpoint, refuse one that cannot resume this config.

`ckpt_path` takes a checkpoint file, a run folder (its `checkpoints/last.ckpt`), or `last`: the
most recently written `<paths.log_dir>/<task_name>/runs/*/checkpoints/last.ckpt`. Every run gets
a fresh folder, so `last` has to look at earlier runs; multirun jobs are never picked.
"""

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from semseg.checkpoints.allowlist import targets_in
from semseg.checkpoints.format import CHECKPOINT_KEY, LAST_CHECKPOINT
from semseg.checkpoints.reading import read_checkpoint
from semseg.data.class_frequency import MEDIAN_FREQUENCY
from semseg.errors import SemsegError
from semseg.utils.config import flatten

log = logging.getLogger(__name__)

# model settings that only shape evaluation, free to change on resume
_FREE_ON_RESUME = ("inference",)


def checkpoint_to_resume(cfg: DictConfig) -> tuple[str, dict] | None:
    """Resolve `cfg.ckpt_path`: the checkpoint path for `Trainer.fit` and its semseg entry, or
    None for a fresh run. `check_same_model` then refuses one that cannot resume this config."""
    path = resolve_checkpoint(cfg)
    if path is None:
        return None
    own = targets_in(OmegaConf.to_container(cfg.model, resolve=True))  # the user's own config is theirs
    return str(path), read_checkpoint(path, own)[CHECKPOINT_KEY]


def resolve_checkpoint(cfg: DictConfig) -> Path | None:
    value = cfg.get("ckpt_path")
    if not value:
        return requeued_checkpoint(Path(cfg.paths.output_dir))
    if str(value) == "last":
        return newest_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name / "runs")
    path = Path(value)
    if path.is_dir():
        for candidate in (path / "checkpoints" / LAST_CHECKPOINT, path / LAST_CHECKPOINT):
            if candidate.is_file():
                return candidate
        raise SemsegError(f"ckpt_path={path} is a folder without checkpoints/{LAST_CHECKPOINT}; pass a .ckpt file.")
    return path


def requeued_checkpoint(run_dir: Path) -> Path | None:
    """The run folder's own last.ckpt when SLURM has requeued this job into it.

    A requeued job re-runs its command in the same folder. After the requeue signal Lightning
    resumes from its `hpc_ckpt_*.ckpt` by itself; after a preemption by SIGTERM, or a node failure,
    only `checkpoints/last.ckpt` is there, and this continues from it.
    """
    last = run_dir / "checkpoints" / LAST_CHECKPOINT
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) == 0 or any(run_dir.glob("hpc_ckpt_*.ckpt")):
        return None
    if last.is_file():
        log.info("SLURM requeued this job: resuming from %s", last)
        return last
    return None


def newest_last_checkpoint(runs: Path) -> Path:
    found = list(runs.glob(f"*/checkpoints/{LAST_CHECKPOINT}"))
    if not found:
        raise SemsegError(
            f"ckpt_path=last found no {runs}/*/checkpoints/{LAST_CHECKPOINT} to resume. Pass the run "
            "folder or the .ckpt file, or set paths.log_dir to where the earlier run wrote its logs."
        )
    return max(found, key=lambda path: path.stat().st_mtime)


def counted_class_weights(current: dict, trained: dict) -> dict[str, list[float]]:
    """The model keys (dotted) whose `class_weights: median_frequency` resumes with the numbers the
    checkpoint's run counted, and those numbers.

    The interrupted run replaced the setting by its numbers in the model config it saved; taking
    them over keeps the loss of the resumed run exactly that run's, without counting again.
    """
    saved = flatten(trained)
    return {
        key.replace("/", "."): saved[key]
        for key, value in flatten(current).items()
        if key.endswith("class_weights") and value == MEDIAN_FREQUENCY and isinstance(saved.get(key), list)
    }


def check_same_model(path: Path, trained: dict, current: dict) -> None:
    """Refuse to resume with another architecture, class list, optimizer or scheduler.

    Lightning would fail on the state dict with a long traceback, or worse, silently keep the
    checkpoint's optimizer settings.
    """
    old, new = (
        {key: value for key, value in flatten(config).items() if key.split("/")[0] not in _FREE_ON_RESUME}
        for config in (trained, current)
    )
    missing = "(not set)"
    # a setting added to the configs after the checkpoint was written, left at null, builds
    # what the checkpoint's run built (e.g. model.net.encoder.output_stride)
    differences = [
        f"{key}: {old.get(key, missing)} in the checkpoint, {new.get(key, missing)} now"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing) and not (key not in old and new[key] is None)
    ]
    if differences:
        shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
        raise SemsegError(
            f"cannot resume from {path}: it was trained with a different model config ({shown}). "
            "Resume with the model settings of that run (its .hydra/config.yaml), or start a new run."
        )

