"""Encoders: any timm backbone, as a list of feature maps at increasing strides.

timm's `features_only` mode gives one contract for every backbone: `channels` and `reductions`
describe the feature maps, so any decoder here works with any encoder.
"""

import difflib
from pathlib import Path

import timm
import torch
from torch import nn

from semseg.errors import SemsegError


def _unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean one of {close}?" if close else ""
    return (
        f"unknown timm encoder '{name}'.{hint} Any name from timm.list_models() works, "
        "e.g. model.net.encoder.name=resnet18."
    )


class TimmEncoder(nn.Module):
    """A timm backbone in `features_only` mode.

    Args:
        name: timm model name, e.g. "resnet18".
        pretrained: False for random init (runs offline), True to fetch timm's weights from the
            hub, or a path to a local weights file (.pth / .safetensors) for that model.
        out_indices: which feature levels to return; None for all.
        **kwargs: passed to `timm.create_model` (e.g. `channels`, `drop_path_rate`).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool | str = False,
        out_indices: tuple[int, ...] | None = None,
        **kwargs,
    ):
        super().__init__()
        if name not in timm.list_models():
            raise SemsegError(_unknown_model_message(name))
        if isinstance(pretrained, str):
            weights = Path(pretrained).expanduser()
            if not weights.is_file():
                raise SemsegError(
                    f"pretrained weights file {weights} not found. Set model.net.encoder.pretrained to "
                    "an existing file, true (download), or false (random init)."
                )
            kwargs["pretrained_cfg_overlay"] = dict(file=str(weights))
            pretrained = True
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        try:
            self.model = timm.create_model(name, pretrained=pretrained, features_only=True, **kwargs)
        except RuntimeError as error:  # torch's state-dict mismatch, raised while timm loads a file
            if "pretrained_cfg_overlay" not in kwargs:
                raise
            first = str(error).strip().splitlines()[0:2]
            raise SemsegError(
                f"weights file {kwargs['pretrained_cfg_overlay']['file']} does not fit timm model '{name}' "
                f"({' '.join(first)[:300]}). Pass the weights of '{name}', or the model name they were "
                "saved from as model.net.encoder.name."
            ) from None
        self.name = name
        self.channels: list[int] = self.model.feature_info.channels()
        self.reductions: list[int] = self.model.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)
