"""Measure what FCN saved: naive vs dense sliding window, FCN-8s and U-Net on the same images.

    python -m semseg.bench [--sizes 128 256 512] [--repeats 3] [--naive-max-pixels 65536] [--rss]

Every method runs in one process on the same random images, with random weights (cost does not
depend on the weights), in eval mode without gradients. Times are medians over `--repeats` runs
after one warm-up; FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (one multiply-add
counts as 2 FLOPs). Naive inference costs the same for every pixel, so above `--naive-max-pixels`
it is timed on a strip of whole rows and scaled to the image (the table marks those entries), and
its FLOPs are counted on a 32-row strip and scaled (exact, since every pixel costs the same).
`--rss` also reports the peak resident memory of `semseg.predict` on a 2048×1024 image.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from semseg.models.module import CHECKPOINT_FORMAT, CHECKPOINT_KEY
from semseg.utils.config import CONFIG_DIR, instantiate

METHODS = ("naive", "dense", "fcn8s", "unet")
MIN_STRIP_ROWS = 32  # taller than the reflect padding of the sliding window's patch


def model_config(name: str):
    """The `model=<name>` config of a training run, composed as `semseg.train` would."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train.yaml", overrides=[f"model={name}"])
    return cfg.model


def build_nets(seed: int = 0) -> dict[str, torch.nn.Module]:
    """The four methods: one sliding-window net in both inference modes, FCN-8s and U-Net."""
    torch.manual_seed(seed)
    sliding = instantiate(model_config("sliding_window").net).eval()
    naive = instantiate(model_config("sliding_window").net, inference="naive").eval()
    naive.load_state_dict(sliding.state_dict())
    return {
        "naive": naive,
        "dense": sliding,
        "fcn8s": instantiate(model_config("fcn8s").net).eval(),
        "unet": instantiate(model_config("unet").net).eval(),
    }


def median_seconds(run: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None) -> float:
    """Median wall time of `repeats` calls, after one warm-up call (of `warmup` if given)."""
    (warmup or run)()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(run: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def inference_run(net: torch.nn.Module, rows: int, cols: int) -> Callable[[], torch.Tensor]:
    """A no-grad call of `net` on a fixed random rows×cols image."""
    image = torch.randn(1, 3, rows, cols, generator=torch.Generator().manual_seed(rows * cols))

    def run():
        with torch.inference_mode():
            return net(image)

    return run


def measure(net: torch.nn.Module, size: int, repeats: int, max_pixels: int | None = None) -> dict:
    """Time and FLOPs of `net` on a size×size image.

    With `max_pixels` (naive inference, whose cost per pixel is constant), time is measured on a
    strip of whole rows of at most that many pixels and scaled to the image; warm-up and FLOP
    counting use a small strip, scaled likewise.
    """
    if max_pixels is None:
        run = inference_run(net, size, size)
        return {"seconds": median_seconds(run, repeats), "flops": count_flops(run),
                "extrapolated": False, "measured_pixels": size * size}
    rows = min(size, max(max_pixels // size, MIN_STRIP_ROWS))
    small = inference_run(net, MIN_STRIP_ROWS, size)
    return {
        "seconds": median_seconds(inference_run(net, rows, size), repeats, warmup=small) * size / rows,
        "flops": count_flops(small) * size / MIN_STRIP_ROWS,
        "extrapolated": rows < size,
        "measured_pixels": rows * size,
    }


def run_benchmark(sizes=(128, 256, 512), repeats: int = 3, naive_max_pixels: int = 65536,
                  naive_repeats: int = 1, nets: dict | None = None) -> list[dict]:
    """One row per (method, size): seconds, FLOPs, and whether naive was extrapolated."""
    nets = nets or build_nets()
    rows = []
    for size in sizes:
        for method, net in nets.items():
            naive = method == "naive"
            result = measure(net, size, naive_repeats if naive else repeats, naive_max_pixels if naive else None)
            rows.append({"method": method, "size": size, **result})
    return rows


def format_table(rows: list[dict]) -> str:
    """A markdown table: time and GFLOPs per method and size, then the ratios that tell the story."""
    by = {(r["method"], r["size"]): r for r in rows}
    sizes = sorted({r["size"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]

    def cell(method, size):
        r = by[(method, size)]
        mark = "*" if r["extrapolated"] else ""
        return f"{r['seconds']:.3g} s{mark} / {r['flops'] / 1e9:.3g}"

    lines = [
        "| size | " + " | ".join(f"{m}: time / GFLOPs" for m in methods)
        + " | naive ÷ dense time | naive ÷ dense FLOPs | dense ÷ FCN-8s time | dense ÷ U-Net time |",
        "|---" * (len(methods) + 5) + "|",
    ]
    for size in sizes:
        naive, dense, fcn, unet = (by.get((m, size)) for m in METHODS)
        ratios = [
            f"{naive['seconds'] / dense['seconds']:.0f}×" if naive and dense else "",
            f"{naive['flops'] / dense['flops']:.0f}×" if naive and dense else "",
            f"{dense['seconds'] / fcn['seconds']:.1f}×" if dense and fcn else "",
            f"{dense['seconds'] / unet['seconds']:.1f}×" if dense and unet else "",
        ]
        lines.append(f"| {size}² | " + " | ".join(cell(m, size) for m in methods) + " | " + " | ".join(ratios) + " |")
    notes = [f"{r['size']}² naive: measured on {r['measured_pixels']} pixels (whole rows), scaled ×"
             f"{r['size'] ** 2 / r['measured_pixels']:.3g}" for r in rows if r["extrapolated"]]
    if notes:
        lines.append("")
        lines += [f"\\* {note}" for note in notes]
    return "\n".join(lines)


def write_random_checkpoint(path: Path, model: str = "unet") -> Path:
    """A checkpoint in semseg.train's format with random weights, for memory measurements."""
    cfg = model_config(model)
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


PEAK_RSS = """
import resource, runpy, sys
sys.argv = ["semseg.predict", *sys.argv[1:]]
try:
    runpy.run_module("semseg.predict", run_name="__main__")
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def predict_peak_rss(overrides: list[str]) -> float:
    """Peak resident memory (MiB) of one `semseg.predict` process run with `overrides`."""
    # Linux carries a process's peak RSS over fork + exec, so a child started straight from this
    # large process would report at least our own peak; a shell in between starts it afresh.
    command = ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", PEAK_RSS, *overrides]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    kilobytes = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return int(kilobytes) / 1024


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method and size (median)")
    parser.add_argument("--naive-max-pixels", type=int, default=65536,
                        help="above this many pixels, naive is timed on a strip of rows and scaled")
    parser.add_argument("--rss", action="store_true", help="also measure predict's peak RSS on 2048×1024")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    started = time.perf_counter()
    print(format_table(run_benchmark(args.sizes, args.repeats, args.naive_max_pixels)))
    if args.rss:
        for mode, mib in measure_predict_memory().items():
            print(f"peak RSS of semseg.predict, {mode}: {mib:.0f} MiB")
    print(f"benchmark took {time.perf_counter() - started:.0f} s "
          f"(this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
