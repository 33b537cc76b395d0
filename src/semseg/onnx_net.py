"""Run a network exported by `semseg.export` with ONNX Runtime, as a callable on torch tensors.

`OnnxNet` has what inference needs from a net (`num_classes`, `output_stride`, a call from
images to logits), so whole and tiled inference and test-time augmentation run it unchanged:
no Lightning, no checkpoint, no model code. Its metadata gives the preprocessing.
"""

import json
from pathlib import Path

import torch

from semseg.checkpoints.description import check_description
from semseg.errors import SemsegError

METADATA_KEY = "semseg"
METADATA_VERSION = 1
MAX_METADATA_CHARS = 1_000_000


def read_metadata(text: str, path: Path, channels: int) -> dict:
    """The `semseg` metadata of an ONNX file, checked as untrusted data (semseg.checkpoints.description)."""
    if len(text) > MAX_METADATA_CHARS:
        raise SemsegError(f"{path}: its '{METADATA_KEY}' metadata is {len(text)} characters, more than semseg writes; re-export it.")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise SemsegError(f"{path}: its '{METADATA_KEY}' metadata is not valid JSON ({str(error)[:100]}); re-export it with python -m semseg.export.") from None
    if not isinstance(meta, dict):
        raise SemsegError(f"{path}: its '{METADATA_KEY}' metadata is a JSON {type(meta).__name__}, not an object; re-export it.")
    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise SemsegError(f"{path}: its metadata version {str(version)[:40]!r} is not a number; re-export it.")
    if version > METADATA_VERSION:
        raise SemsegError(f"{path} was exported by a newer semseg (metadata version {version}); upgrade semseg.")
    if "num_classes" not in meta:
        raise SemsegError(f"{path}: its '{METADATA_KEY}' metadata has no num_classes; re-export it.")
    check_description(meta, path, channels)
    return meta


def input_channels(session, path: Path) -> int:
    """The channel count of the graph's `images` input, refusing a graph that is not semseg's (B, C, H, W)."""
    inputs = {item.name: item for item in session.get_inputs()}
    shape = inputs["images"].shape if "images" in inputs else None
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int) or "logits" not in {o.name for o in session.get_outputs()}:
        raise SemsegError(f"{path}: its graph does not map `images` (B, C, H, W) to `logits`, as semseg.export writes; re-export it.")
    return shape[1]


class OnnxNet:
    """An exported network; `meta` holds class names, palette, mean, std (see semseg.export)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import onnxruntime  # only this path needs it

        path = Path(path)
        if not path.is_file():
            raise SemsegError(f"ONNX file {path} not found. Export one with python -m semseg.export ckpt_path=... output={path}.")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own types for files it cannot parse
            raise SemsegError(f"{path} is not a readable ONNX model ({type(error).__name__}). Pass a file written by semseg.export.") from None
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if not text:
            raise SemsegError(
                f"{path} is an ONNX model, but not one written by semseg.export (it has no '{METADATA_KEY}' "
                "metadata with its classes and normalisation). Export it with python -m semseg.export."
            )
        self.meta = read_metadata(text, path, input_channels(self.session, path))
        self.num_classes = self.meta["num_classes"]
        self.output_stride = self.meta.get("output_stride", 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(["logits"], {"images": images.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits).to(images.device)
