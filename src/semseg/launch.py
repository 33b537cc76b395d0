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


def check_device_count(devices) -> None:
    """`trainer.devices` must ask for at least one device (Lightning's own error is a traceback)."""
    if devices in (-1, "-1", "auto") or isinstance(devices, (list, tuple, ListConfig)) or (isinstance(devices, str) and "," in devices):
        return
    try:
        count = int(devices)
    except (TypeError, ValueError):
        count = 0
    if isinstance(devices, bool) or count < 1:
        raise SemsegError(
            f"trainer.devices={devices} asks for no device; give a count of at least 1 (e.g. trainer.devices=1), "
            "-1 or auto for all, or a list of GPU indices like trainer.devices=[0,1]."
        )


def world_size(trainer: DictConfig) -> int:
    """How many processes the Trainer will start: devices per node times nodes."""
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", "auto")
    gpus = torch.cuda.device_count() if accelerator in ("gpu", "cuda", "auto") else 0
    if accelerator == "cpu" or (accelerator == "auto" and gpus == 0):
        per_node = 1 if devices in ("auto", -1, "-1") else _device_count(devices, 1)
    else:
        per_node = _device_count(devices, gpus)
    return per_node * int(trainer.get("num_nodes", 1) or 1)


def check_batch_split(batch_size: int, trainer: DictConfig) -> None:
    """data.batch_size is the global batch: refuse one the processes cannot share evenly, before
    they are started (each of them would refuse it, printing the error once per process)."""
    processes = world_size(trainer)
    if processes > 1 and batch_size % processes:
        raise SemsegError(
            f"data.batch_size={batch_size} is the global batch and must divide evenly over {processes} processes "
            f"(trainer.devices x trainer.num_nodes); use a multiple of {processes}, e.g. "
            f"data.batch_size={processes * max(1, round(batch_size / processes))}."
        )


def check_devices(trainer: DictConfig) -> None:
    """Refuse a device request this machine cannot serve, before any data or model is built."""
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", "auto")
    check_device_count(devices)
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
