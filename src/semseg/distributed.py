"""Running one config on several processes: device checks, the launch method, batch and lr rules."""

import logging
import math
import os

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, ListConfig, open_dict

from semseg.errors import SemsegError
from semseg.utils.run_info import in_multirun

log = logging.getLogger(__name__)

LR_RULES = {"none": lambda ratio: 1.0, "linear": lambda ratio: ratio, "sqrt": math.sqrt}


def _device_count(devices, available: int) -> int:
    """How many devices a Trainer `devices` value asks for (-1 and "auto" mean all)."""
    if devices in (-1, "-1", "auto"):
        return available
    if isinstance(devices, str) and "," in devices:
        return len([index for index in devices.split(",") if index.strip()])
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    return int(devices)


def check_devices(trainer: DictConfig) -> None:
    """Refuse a device request this machine cannot serve, before any data or model is built."""
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda"):
        available = torch.cuda.device_count()
        if available == 0:
            raise SemsegError(
                f"trainer.accelerator={accelerator} needs a CUDA GPU, but none is visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). Train on CPU "
                "with trainer=cpu, or exercise DDP on CPU processes with trainer=ddp_cpu."
            )
        wanted = _device_count(devices, available)
        if wanted > available:
            raise SemsegError(
                f"trainer.devices={devices} asks for {wanted} GPUs, but this machine has {available}; "
                f"use trainer.devices={available} (or -1 for all)."
            )
    if trainer.get("sync_batchnorm") and accelerator not in ("gpu", "cuda", "auto"):
        raise SemsegError(
            f"trainer.sync_batchnorm=true needs GPUs (PyTorch's SyncBatchNorm does not run on "
            f"{accelerator}); set trainer.sync_batchnorm=false."
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise SemsegError("trainer=mps needs an Apple-silicon GPU (MPS), which this machine lacks; use trainer=cpu.")


def launched_externally() -> bool:
    """True when torchrun or SLURM started one process per rank (Lightning must not start more)."""
    return TorchElasticEnvironment.detect() or (SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1)


def choose_strategy(trainer: DictConfig) -> None:
    """In a multirun, DDP that re-launches the script becomes `ddp_spawn`.

    Lightning's `ddp` starts the other ranks by running the command line again; in a Hydra
    multirun that command is the whole sweep, so every rank would run every job, each with other
    parameters. `ddp_spawn` forks the current job's processes from inside it instead.
    """
    if in_multirun() and trainer.get("strategy") == "ddp" and not launched_externally():
        log.info("multirun: trainer.strategy=ddp runs as ddp_spawn, one launch per job")
        with open_dict(trainer):
            trainer.strategy = "ddp_spawn"


def scale_learning_rate(cfg: DictConfig) -> None:
    """Apply `lr_scaling`: lr × rule(data.batch_size / lr_scaling.base_batch_size).

    `data.batch_size` is the global batch, so the world size alone never changes the lr; a larger
    global batch does, by the linear (Goyal et al., 2017) or square-root rule.
    """
    scaling = cfg.get("lr_scaling") or {}
    rule = str(scaling.get("rule", "none"))
    if rule not in LR_RULES:
        raise SemsegError(f"lr_scaling.rule={rule} is not one of {sorted(LR_RULES)}.")
    if rule == "none":
        return
    factor = LR_RULES[rule](cfg.data.batch_size / scaling.base_batch_size)
    with open_dict(cfg):
        cfg.model.optimizer.lr = float(cfg.model.optimizer.lr) * factor
    log.info("lr_scaling.rule=%s: model.optimizer.lr scaled by %.4g to %.4g", rule, factor, cfg.model.optimizer.lr)
