"""Measure what FCN saved: the sliding-window patch classifier run naively and densely, FCN-8s and U-Net on the same images.

    python -m semseg.bench --only patch_classifier [--sizes 128 256 512] [--repeats 3] [--naive-max-pixels 65536]

Every method runs in one process on the same random images, with random weights (cost does not
depend on the weights), in eval mode without gradients. Times are medians over `--repeats` runs
after one warm-up; FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (one multiply-add
counts as 2 FLOPs). Naive inference costs the same for every pixel, so above `--naive-max-pixels`
it is timed on a strip of whole rows and scaled to the image (the table marks those entries), and
its FLOPs are counted on a 32-row strip and scaled (exact, since every pixel costs the same).
"""

from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from semseg.bench.timing import count_flops, median_seconds, section
from semseg.utils.config import CONFIG_DIR, instantiate

METHODS = ("naive", "dense", "fcn8s", "unet")
MIN_STRIP_ROWS = 32  # taller than the reflect padding of the sliding window's patch


def composed_model_config(name: str):
    """The `model=<name>` config of a training run, composed as `semseg.train` would."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train.yaml", overrides=[f"model={name}"])
    return cfg.model


def build_nets(seed: int = 0) -> dict[str, torch.nn.Module]:
    """The four methods: one sliding-window net in both inference modes, FCN-8s and U-Net."""
    torch.manual_seed(seed)
    sliding = instantiate(composed_model_config("patch_classifier").net).eval()
    naive = instantiate(composed_model_config("patch_classifier").net, mode="naive").eval()
    naive.load_state_dict(sliding.state_dict())
    return {
        "naive": naive,
        "dense": sliding,
        "fcn8s": instantiate(composed_model_config("fcn8s").net).eval(),
        "unet": instantiate(composed_model_config("unet").net).eval(),
    }


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


def report(sizes=(128, 256, 512), repeats: int = 3, naive_max_pixels: int = 65536) -> str:
    """The suite's section: the table of `run_benchmark`, with how it was measured."""
    table = format_table(run_benchmark(sizes, repeats, naive_max_pixels))
    return section("Sliding window vs FCN: inference cost", table, [
        f"Inference of one image, eval mode, no gradients, random weights: median of {repeats} runs "
        "after one warm-up (naive: one run). GFLOPs from `torch.utils.flop_counter` "
        "(a multiply-add counts as 2). FCN-8s and U-Net use the `tiny_resnet` encoder."])
