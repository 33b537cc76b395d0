"""ONNX Runtime against eager PyTorch: CPU latency of one image, whole and tiled.

Both sides run the same random-weight network (the default configs of `model=unet` and
`model=fcn8s`, `tiny_resnet` encoder): PyTorch eagerly under `inference_mode`, ONNX Runtime on the
file `semseg.export` writes, both through `semseg.inference.Inference`, so tiling and the
padding to the output stride are the same code. Sides alternate; medians.
"""

import tempfile
from pathlib import Path

import torch

from semseg.bench.sliding_window_cost import composed_model_config
from semseg.bench.timing import alternate, markdown_table, median, seconds, section
from semseg.export import write_onnx
from semseg.inference import Inference
from semseg.onnx_net import OnnxNet
from semseg.utils.config import instantiate

CASES = [((512, 512), "whole"), ((1024, 2048), "whole"), ((1024, 2048), "slide")]


def sides(name: str, folder: Path) -> dict:
    torch.manual_seed(0)
    net = instantiate(composed_model_config(name).net).eval()
    meta = {"class_names": [f"class{c}" for c in range(net.num_classes)], "mean": None, "std": None}
    path = folder / f"{name}.onnx"
    write_onnx(net, meta, path, torch.randn(1, 3, 97, 131))
    return {"PyTorch eager": net, "ONNX Runtime": OnnxNet(path)}


def latency(nets: dict, size: tuple[int, int], mode: str, rounds: int) -> dict[str, float]:
    inference = Inference(mode=mode, crop_size=512, stride=341, batch_size=4)
    image = torch.randn(1, 3, *size)

    def run(net) -> float:
        with torch.inference_mode():
            return seconds(lambda: inference(net, image))

    for net in nets.values():
        run(net)  # warm-up: allocations, ONNX Runtime's first-run optimisations
    samples = alternate({side: (lambda net=net: run(net)) for side, net in nets.items()}, rounds)
    return {side: median(values) for side, values in samples.items()}


def report(models=("unet", "fcn8s"), cases=CASES, rounds: int = 3) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            nets = sides(name, Path(folder))
            for size, mode in cases:
                times = latency(nets, size, mode, rounds)
                eager, runtime = times["PyTorch eager"], times["ONNX Runtime"]
                tiling = "whole" if mode == "whole" else "slide 512/341, 4 windows per batch"
                rows.append([f"`model={name}`", f"{size[0]}×{size[1]}", tiling, f"{eager * 1e3:.0f} ms",
                             f"{runtime * 1e3:.0f} ms", f"{eager / runtime:.2f}×"])
    table = markdown_table(["model", "image (h×w)", "inference", "PyTorch eager", "ONNX Runtime", "eager ÷ ONNX Runtime"], rows)
    return section("ONNX Runtime vs PyTorch eager: CPU latency per image", table, [
        f"One image, random weights, default configs (`tiny_resnet` encoder); median of {rounds} runs per side "
        "after one warm-up, sides alternated. ONNX Runtime runs the graph `semseg.export` writes (opset 18, "
        "dynamic batch and size; CPU execution provider, its default threads); PyTorch runs the same module "
        "eagerly under `torch.inference_mode()`. Both go through `semseg.inference.Inference`."])
