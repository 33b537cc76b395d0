"""Export a trained network to ONNX, its preprocessing in the file's metadata, checked against PyTorch.

    python -m semseg.export ckpt_path=<run>/checkpoints/best.ckpt output=model.onnx

The graph is the network in eval mode, padding to its output stride and cropping back included,
with dynamic batch, height and width: `images` (B, 3, H, W) float32 RGB, normalised as the
metadata says, to `logits` (B, C, H, W). The metadata (key `semseg`, JSON) holds the class names,
palette, mean, std and output stride, which `semseg.predict ckpt_path=<file>.onnx` reads. The
exported file is run once with ONNX Runtime on a random input; logits further than `tolerance`
from PyTorch's fail the export, and `output` is only replaced by a file that passed.
"""

import json
import logging
import warnings
from pathlib import Path

import hydra
import numpy as np
import onnx
import onnxruntime
import torch
from omegaconf import DictConfig

from semseg.utils.atomic import replaced_by_name
from semseg.checkpoints.reading import load_model
from semseg.data.normalization import settle_normalization
from semseg.errors import SemsegError
from semseg.onnx_net import METADATA_KEY, METADATA_VERSION
from semseg.utils.cli import refuse_unknown_options, report_user_errors
from semseg.utils.config import CONFIG_DIR, print_config_tree
from semseg.utils.preflight import check_writable

log = logging.getLogger("semseg.export")


def metadata(meta: dict, net: torch.nn.Module) -> dict:
    """What a program running the ONNX file needs besides the graph."""
    channels = meta.get("in_channels") or 3
    pixels = "RGB, (pixel / 255 - mean) / std" if channels == 3 and not meta.get("bands") else (
        f"{channels} bands (the files' bands {meta.get('bands') or 'as stored'}), each on a 0-1 scale by its "
        "dtype (uint8 / 255, uint16 / 65535, int16 / 32767, float as stored), then (value - mean) / std"
    )
    return {
        "version": METADATA_VERSION,
        "class_names": list(meta["class_names"]),
        "palette": meta.get("palette"),
        **settle_normalization({}, meta),  # what the model was trained with
        "in_channels": channels,
        **{key: meta.get(key) for key in ("bands", "nodata", "rgb_bands")},
        "input": f"images: float32 (B, {channels}, H, W), {pixels}; any H, W",
        "output": "logits: float32 (B, num_classes, H, W); the class of a pixel is the argmax",
        "num_classes": int(net.num_classes),
        "output_stride": int(net.output_stride),
    }


def write_onnx(net: torch.nn.Module, meta: dict, output: Path, example: torch.Tensor, opset: int = 18) -> None:
    """Export `net` (eval mode) with dynamic batch, height and width, and add the metadata."""
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(
            net, (example,), str(output), input_names=["images"], output_names=["logits"],
            dynamic_shapes={"images": dims}, opset_version=opset, dynamo=True, external_data=False,
        )
    graph = onnx.load(str(output))
    onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(metadata(meta, net))})
    onnx.save(graph, str(output))


def check_against_pytorch(net: torch.nn.Module, output: Path, example: torch.Tensor, tolerance: float) -> float:
    """The largest difference between ONNX Runtime's and PyTorch's logits on `example`."""
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    exported = session.run(["logits"], {"images": example.numpy()})[0]
    with torch.inference_mode():
        expected = net(example).numpy()
    difference = float(np.abs(exported - expected).max()) if exported.shape == expected.shape else float("inf")
    if not difference <= tolerance:
        raise SemsegError(
            f"the exported network differs from PyTorch by {difference:.3g} (more than tolerance={tolerance}) "
            f"on a random {list(example.shape)} input, so nothing was written. Report this with the "
            "checkpoint's model config; the .ckpt still works with semseg.predict."
        )
    return difference


def writable_output(path: Path) -> Path:
    if path.suffix != ".onnx":
        raise SemsegError(f"output={path} must be a .onnx file, e.g. output=model.onnx.")
    if path.is_dir():
        raise SemsegError(f"output={path} is a folder; name the .onnx file to write, e.g. output={path / 'model.onnx'}.")
    problem = check_writable(path.parent, "output")
    if problem:
        raise SemsegError(problem.replace(f"output={path.parent}", f"output={path}"))
    return path


def export(cfg: DictConfig) -> Path:
    """Write the checkpoint's network as ONNX; return the file."""
    output = writable_output(Path(cfg.output))  # before the work, not after it
    model, meta = load_model(cfg.ckpt_path, cfg.get("trusted_targets") or [])
    net = model.net.eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, meta.get("in_channels") or 3, *cfg.check_size, generator=generator)  # not a multiple of the stride
    with replaced_by_name(output) as partial:  # an existing file stays until the new one is checked
        write_onnx(net, meta, partial, example, cfg.opset)
        difference = check_against_pytorch(net, partial, example, cfg.tolerance)
    log.info("wrote %s (ONNX Runtime vs PyTorch: max |logit difference| %.2g on %s)", output, difference, list(example.shape))
    return output


@refuse_unknown_options
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export.yaml")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if cfg.extras.print_config:
        print_config_tree(cfg)
    export(cfg)


if __name__ == "__main__":
    main()
