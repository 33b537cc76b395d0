"""Run a network exported by `semseg.export` with ONNX Runtime, as a callable on torch tensors.

`OnnxNet` has what inference needs from a net (`num_classes`, `output_stride`, a call from
images to logits), so whole and tiled inference and test-time augmentation run it unchanged:
no Lightning, no checkpoint, no model code. Its metadata gives the preprocessing.
"""

import json
from pathlib import Path

import torch

from semseg.errors import SemsegError

METADATA_KEY = "semseg"
METADATA_VERSION = 1


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
        self.meta = json.loads(text)
        if self.meta.get("version", 0) > METADATA_VERSION:
            raise SemsegError(f"{path} was exported by a newer semseg (metadata version {self.meta['version']}); upgrade semseg.")
        self.num_classes = int(self.meta["num_classes"])
        self.output_stride = int(self.meta.get("output_stride", 1))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(["logits"], {"images": images.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits).to(images.device)
