"""Launching on devices: refuse device requests this machine cannot serve, and choose the DDP strategy."""

import os

import torch
from lightning.fabric.plugins.environments import (
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from omegaconf import DictConfig, ListConfig

from semseg.errors import SemsegError
from semseg.utils.run_info import in_multirun


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


def strategy_for(trainer: DictConfig) -> str | None:
    """The DDP strategy this run must use instead of `trainer.strategy`, or None to keep it.

    In a multirun, DDP that re-launches the script becomes `ddp_spawn`: Lightning's `ddp` starts
    the other ranks by running the command line again, and in a Hydra multirun that command is the
    whole sweep, so every rank would run every job, each with other parameters. `ddp_spawn` forks
    the current job's processes from inside it instead.
    """
    if in_multirun() and trainer.get("strategy") == "ddp" and not launched_externally():
        return "ddp_spawn"
    return None
