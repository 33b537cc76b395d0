"""Peak resident memory of whole entry-point processes: a short default training run, and
`semseg.predict` on a 2048×1024 image, whole-image vs slide inference.

Each figure is `ru_maxrss` of a fresh `python -m semseg.<entry point>` process, read by the
process itself when it ends, plus the largest of its children that it waited for (DataLoader
workers).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from semseg.bench.sliding_window_cost import composed_model_config
from semseg.bench.timing import markdown_table, section
from semseg.models.module import CHECKPOINT_FORMAT, CHECKPOINT_KEY
from semseg.utils.config import instantiate

# the short training run measured: the default experiment cut to 2 epochs of 25 steps
TRAIN_OVERRIDES = ["trainer.max_epochs=2", "++trainer.limit_train_batches=25", "extras.print_config=false"]

PEAK_RSS = """
import resource, runpy, sys
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss(module: str, overrides: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) of one `python -m <module> <overrides>` process, and of its largest child."""
    # Linux carries a process's peak RSS over fork + exec, so a child started straight from this
    # large process would report at least our own peak; a shell in between starts it afresh.
    command = ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", PEAK_RSS, module, *overrides]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    own, children = (int(kilobytes) / 1024 for kilobytes in line.split()[1:])
    return own, children


def predict_peak_rss(overrides: list[str]) -> float:
    """Peak resident memory (MiB) of one `semseg.predict` process run with `overrides`."""
    return peak_rss("semseg.predict", overrides)[0]


def write_random_checkpoint(path: Path, model: str = "unet") -> Path:
    """A checkpoint in semseg.train's format with random weights, for memory measurements."""
    cfg = composed_model_config(model)
    module = instantiate(cfg)
    checkpoint = {
        "state_dict": module.state_dict(),
        CHECKPOINT_KEY: {
            "format": CHECKPOINT_FORMAT,
            "class_names": list(cfg.class_names),
            "model_config": OmegaConf.to_container(cfg, resolve=True),
        },
    }
    torch.save(checkpoint, path)
    return path


def measure_predict_memory(width: int = 2048, height: int = 1024) -> dict[str, float]:
    """Peak RSS (MiB) of predict (U-Net) on one width×height image: whole-image vs slide inference,
    next to the same process on a 64×64 image (the cost of Python, torch and the model)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(tmp / "big.png")
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp / "small.png")
        ckpt = write_random_checkpoint(tmp / "unet.ckpt")
        base = [f"ckpt_path={ckpt}", f"output={tmp / 'out'}", f"paths.log_dir={tmp / 'logs'}"]
        big = [*base, f"input={tmp / 'big.png'}"]
        return {
            "64×64 image (baseline)": predict_peak_rss([*base, f"input={tmp / 'small.png'}"]),
            f"{width}×{height}, whole image": predict_peak_rss(big),
            f"{width}×{height}, slide 512/341, 4 windows per batch (default)": predict_peak_rss([*big, "inference=slide"]),
            f"{width}×{height}, slide 512/341, 1 window per batch": predict_peak_rss(
                [*big, "inference=slide", "inference.batch_size=1"]),
        }


def measure_train_memory(overrides: list[str] = ()) -> tuple[float, float]:
    """Peak RSS (MiB) of a short default `semseg.train` run (logs in a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        return peak_rss("semseg.train", [*TRAIN_OVERRIDES, f"paths.log_dir={tmp}", *overrides])


def report(train_overrides: list[str] = ()) -> str:
    own, worker = measure_train_memory(train_overrides)
    rows = [[f"`semseg.train`, default experiment, `{' '.join(TRAIN_OVERRIDES[:2])}` (main process)",
             f"{own:.0f} MiB"],
            ["same run, its largest waited-for child (a DataLoader worker)", f"{worker:.0f} MiB"]]
    rows += [[f"`semseg.predict` (U-Net, random weights), {name}", f"{mib:.0f} MiB"]
             for name, mib in measure_predict_memory().items()]
    return section("Memory: peak RSS", markdown_table(["process", "peak RSS"], rows), [
        "`ru_maxrss` of a fresh process (started through a shell so it does not inherit this "
        "process's peak). The training run is the default experiment (U-Net, `tiny_resnet`, "
        "synthetic 128², batch 16, W&B offline + CSV, default callbacks, test at the end) cut to "
        "2 epochs of 25 steps (the full 10-epoch run was not measured). W&B's service process is "
        "not a waited-for child and is not counted."])
