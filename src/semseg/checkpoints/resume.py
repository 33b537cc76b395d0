"""Resuming a training run: find the checkpoint, refuse one that cannot resume this config.

`ckpt_path` takes a checkpoint file, a run folder (its `checkpoints/last.ckpt`), or `last`: the
most recently written `<paths.log_dir>/<task_name>/runs/*/checkpoints/last.ckpt`. Every run gets
a fresh folder, so `last` has to look at earlier runs; multirun jobs are never picked.
"""

import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from semseg.checkpoints.allowlist import targets_in
from semseg.checkpoints.format import CHECKPOINT_KEY, LAST_CHECKPOINT
from semseg.checkpoints.reading import read_checkpoint
from semseg.errors import SemsegError
from semseg.utils.config import flatten

log = logging.getLogger(__name__)

# model settings that only shape evaluation, free to change on resume
_FREE_ON_RESUME = ("inference",)
# settings added to the model configs after checkpoints were written without them, and the value
# those runs had (any other added setting must be null)
ADDED_LATER = {"in_channels": 3}


def checkpoint_to_resume(cfg: DictConfig) -> tuple[str, dict] | None:
    """Resolve `cfg.ckpt_path`: the checkpoint path for `Trainer.fit` and its semseg entry, or
    None for a fresh run. `check_same_model` then refuses one that cannot resume this config."""
    path = resolve_checkpoint(cfg)
    if path is None:
        return None
    own = targets_in(OmegaConf.to_container(cfg.model, resolve=True))  # the user's own config is theirs
    checkpoint = read_checkpoint(path, own)
    check_training_state(checkpoint, path)
    return str(path), checkpoint[CHECKPOINT_KEY]


def check_training_state(checkpoint: dict, path) -> None:
    """Refuse training state of the wrong shape before Lightning restores it (with a traceback).

    Only what Lightning reads on resume: weights as tensors, optimizer and scheduler states as
    lists of dicts, callback states as dicts, loop progress as counters. Whether the optimizer's
    settings are the config's is checked once it is built (SegmentationModule).
    """
    problem = _training_state_problem(checkpoint)
    if problem:
        raise SemsegError(f"cannot resume from {path}: its {problem}; it was not written by semseg.train.")


def _training_state_problem(checkpoint: dict) -> str | None:
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint["state_dict"].items()):
        return "state_dict holds entries that are not named tensors"
    for key in ("epoch", "global_step"):
        if not _is_int(checkpoint.get(key, 0)):
            return f"{key} is not a number"
    for key in ("optimizer_states", "lr_schedulers"):
        states = checkpoint.get(key, [])
        if not isinstance(states, list) or not all(isinstance(state, dict) for state in states):
            return f"{key} is not a list of states"
    for state in checkpoint.get("optimizer_states", []):
        groups = state.get("param_groups")
        if not isinstance(state.get("state", {}), dict) or not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            return "optimizer state has no list of parameter groups"
    callbacks = checkpoint.get("callbacks", {})
    if not isinstance(callbacks, dict) or not all(isinstance(state, dict) for state in callbacks.values()):
        return "callback states are not dicts"
    loops = checkpoint.get("loops", {})
    if not isinstance(loops, dict) or not _counters_fit(loops):
        return "loop progress is not counters"
    return None


def _counters_fit(node, depth: int = 0) -> bool:
    """Every `*progress` entry of the loop state is a dict whose leaves are integers."""
    if not isinstance(node, dict) or depth > 16:
        return not isinstance(node, dict)
    for key, value in node.items():
        if isinstance(key, str) and key.endswith("progress") and not _all_ints(value):
            return False
        if isinstance(value, dict) and not _counters_fit(value, depth + 1):
            return False
    return True


def _all_ints(node) -> bool:
    """Counters (and Lightning's `is_last_batch` flag)."""
    if isinstance(node, dict):
        return all(_all_ints(value) for value in node.values())
    return _is_int(node) or isinstance(node, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    # a setting added to the configs after the checkpoint was written, left at null or at the
    # value every earlier run had, builds what the checkpoint's run built
    # (e.g. model.net.encoder.output_stride: null, in_channels: 3)
    differences = [
        f"{key}: {old.get(key, missing)} in the checkpoint, {new.get(key, missing)} now"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
        and not (key not in old and new[key] == ADDED_LATER.get(key.rsplit("/", 1)[-1]))
    ]
    if differences:
        shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
        raise SemsegError(
            f"cannot resume from {path}: it was trained with a different model config ({shown}). "
            "Resume with the model settings of that run (its .hydra/config.yaml), or start a new run."
        )


# optimizer and scheduler settings that stepping never changes (lr, momentum and betas it does)
_STEPPED = {"params", "lr", "momentum", "betas"}
_SCHEDULE_LENGTH = ("total_steps", "total_iters", "T_max", "base_lrs")


def optimizer_differences(saved: dict, fresh: dict, saved_schedule: dict | None, fresh_schedule: dict | None) -> list[str]:
    """How a checkpoint's optimizer (and scheduler) state differs from the one this config builds.

    Lightning restores the saved parameter groups over the configured ones, so a file whose groups
    say another learning rate, weight decay or group count would silently train with those.
    """
    saved_groups, fresh_groups = saved.get("param_groups", []), fresh["param_groups"]
    if len(saved_groups) != len(fresh_groups):
        return [f"{len(saved_groups)} parameter groups in the checkpoint, {len(fresh_groups)} now"]
    differences = []
    for index, (old, new) in enumerate(zip(saved_groups, fresh_groups)):
        for key in sorted(set(old) & set(new) - _STEPPED):
            if not _same(old[key], new[key]):
                differences.append(f"group {index} {key}: {old[key]!r} in the checkpoint, {new[key]!r} now")
        if len(old.get("params", [])) != len(new["params"]):
            differences.append(f"group {index}: {len(old.get('params', []))} parameters in the checkpoint, {len(new['params'])} now")
    for key in _SCHEDULE_LENGTH:
        if saved_schedule is not None and fresh_schedule is not None and key in saved_schedule and key in fresh_schedule:
            if not _same(saved_schedule[key], fresh_schedule[key]):
                differences.append(f"scheduler {key}: {saved_schedule[key]!r} in the checkpoint, {fresh_schedule[key]!r} now")
    return differences


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)
    return type(a) is type(b) and a == b
