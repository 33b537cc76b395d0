"""OmegaConf resolvers the configs use; registered when `semseg.utils.config` is imported."""

import importlib
import os
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from semseg.data.normalization import settle_normalization


def mixed_precision() -> str:
    """`bf16-mixed` on GPUs with native bf16 (Ampere or newer), `16-mixed` on older GPUs (where
    bf16 would only be emulated, slowly), `32-true` without a GPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


def _process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from /proc; None elsewhere."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def run_stamp(pattern: str = "%Y-%m-%d_%H-%M-%S") -> str:
    """The run folder's name, the same in every process of one distributed launch.

    Each process that torchrun or srun starts composes its own config; a plain clock stamp could
    differ by a second between ranks and split one run over two folders. So:
    `SEMSEG_RUN_ID` if set; the SLURM job (and array task) id when srun started several tasks, so a
    requeued job finds its own folder again; the start time and process id of torchrun's agent,
    the parent of every local rank; otherwise the current time and this process's id. The process
    id keeps two runs started in the same second (`... &` once per GPU) in folders of their own.
    (Lightning's `ddp` passes its child ranks the parent's folder as `hydra.run.dir`.)
    """
    if os.environ.get("SEMSEG_RUN_ID"):
        return os.environ["SEMSEG_RUN_ID"]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
        job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ["SLURM_JOB_ID"]
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{job}" + (f"_{task}" if task else "")
    if "TORCHELASTIC_RUN_ID" in os.environ:
        agent = os.getppid()
        return f"{time.strftime(pattern, time.localtime(_process_start_time(agent)))}_{agent}"
    return f"{time.strftime(pattern)}_{os.getpid()}"


def input_normalization(which: str, encoder_name: str | None = None, in_channels: int = 3) -> list[float] | None:
    """`mean` or `std` of a training run given no values: what the encoder's pretrained weights
    expect for RGB; None for other band counts, whose statistics the run set-up counts."""
    if in_channels != 3:
        return None
    return settle_normalization({}, encoder_name=encoder_name)[which]


def class_names_of(module: str) -> list[str]:
    """The `CLASS_NAMES` a dataset module defines (VOC's, Cityscapes' from cityscapesscripts, the
    synthetic set's): the one place they are stated, which its data config reads."""
    return list(importlib.import_module(module).CLASS_NAMES)


def coco_class_names(root: str, annotations) -> list[str]:
    """`background`, then the categories of a COCO file: `annotations` is data.annotations, one path
    or the mapping whose train file is read (semseg.data.coco; pycocotools only then)."""
    from semseg.data.coco import coco_class_names as read

    return read(root, annotations)


def register() -> None:
    resolvers = {
        "mixed_precision": mixed_precision,
        "run_stamp": run_stamp,
        "input_normalization": input_normalization,
        "class_names_of": class_names_of,  # `class_names: ${class_names_of:semseg.data.voc}`
        "coco_class_names": coco_class_names,  # `class_names: ${coco_class_names:${data.root},${data.annotations}}`
        "len": len,  # `num_classes: ${len:${data.class_names}}`
    }
    cached = {"mixed_precision", "run_stamp"}  # one value per process
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=name in cached)
