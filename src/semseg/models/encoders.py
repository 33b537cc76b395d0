"""Encoders: any timm backbone, as a list of feature maps at increasing strides.

timm's `features_only` mode gives one contract for every backbone: `channels` and `reductions`
describe the feature maps, so any decoder here works with any encoder.
"""

import contextlib
import difflib
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import timm
import torch
from huggingface_hub import constants as hub
from torch import nn

from semseg.errors import SemsegError
from semseg.models import tiny_resnet  # noqa: F401  (registers semseg_tiny_resnet with timm)


def _unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean one of {close}?" if close else ""
    return (
        f"unknown timm encoder '{name}'.{hint} Any name from timm.list_models() works, "
        "e.g. model.net.encoder.name=resnet18."
    )


@contextlib.contextmanager
def missing_weights() -> Iterator[list[str]]:
    """Collect the parameter names timm reports missing while it loads pretrained weights.

    Built `features_only`, timm loads weights non-strictly (it drops the classifier) and only
    logs what the file lacked; a file of another architecture would otherwise leave part of the
    encoder at random init without a word.
    """
    missing: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = re.match(r"Missing keys \((.*)\) discovered", record.getMessage())
            if found:
                missing.extend(key.strip() for key in found.group(1).split(","))

    handler, builder = Collect(), logging.getLogger("timm.models._builder")
    level = builder.level
    builder.addHandler(handler)
    builder.setLevel(logging.INFO)
    try:
        yield missing
    finally:
        builder.removeHandler(handler)
        builder.setLevel(level)


def create_from_file(name: str, weights: Path, **kwargs) -> nn.Module:
    """timm's `features_only` model `name` with the weights of a local file, all of them."""
    wrong = None
    with missing_weights() as missing:
        try:
            model = timm.create_model(name, pretrained=True, features_only=True,
                                      pretrained_cfg_overlay=dict(file=str(weights)), **kwargs)
        except RuntimeError as error:  # torch's state-dict mismatch (shapes)
            wrong = " ".join(str(error).strip().splitlines()[:2])[:300]
    if not wrong:
        classifier = getattr(timm.models.get_pretrained_cfg(name), "classifier", None)  # dropped on purpose
        heads = {classifier} if isinstance(classifier, str) else set(classifier or ())
        lacking = [key for key in missing if key.rsplit(".", 1)[0] not in heads]
        if not lacking:
            return model
        wrong = f"it lacks {len(lacking)} of the model's tensors, e.g. {', '.join(lacking[:3])}"
    raise SemsegError(
        f"weights file {weights} does not fit timm model '{name}' ({wrong}). Pass the weights of "
        f"'{name}', or the model name they were saved from as model.net.encoder.name."
    )


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_ENDPOINT")


def hub_unreachable() -> bool:
    """True when HF_HUB_OFFLINE is set, or a 3-second direct connection to the Hugging Face hub
    fails. Behind a proxy or with a mirror (HF_ENDPOINT) a direct connection says nothing, so
    there the hub client is left to try, and its own error is reported."""
    if hub.HF_HUB_OFFLINE:
        return True
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return True
    return False


def create_downloaded(name: str, **kwargs) -> nn.Module:
    """timm's `features_only` model `name` with its pretrained weights, from the cache or the hub.

    Offline, the hub client would retry for most of a minute before failing with its own error;
    here it is told at once to use its cache only, and a miss is one clear error.
    """
    config = timm.models.get_pretrained_cfg(name)
    if config is None or not (config.hf_hub_id or config.url or config.file):
        raise SemsegError(
            f"timm has no pretrained weights for '{name}'. Set model.net.encoder.pretrained=false, pass a "
            "local weights file, or name an encoder that has them (e.g. model/encoder=resnet18)."
        )
    offline, previous = hub_unreachable(), hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = offline
    try:
        return timm.create_model(name, pretrained=True, features_only=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as error:  # not cached and not downloadable
        reason = "offline, and they are not in the local cache" if offline else f"{type(error).__name__}: {error}"
        raise SemsegError(
            f"cannot get timm's pretrained weights for '{name}' ({str(reason)[:300]}). Pass a local weights "
            "file, model.net.encoder.pretrained=/path/to/weights.safetensors, or "
            "model.net.encoder.pretrained=false for random init."
        ) from None
    finally:
        hub.HF_HUB_OFFLINE = previous


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
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        if isinstance(pretrained, str):
            weights = Path(pretrained).expanduser()
            if not weights.is_file():
                raise SemsegError(
                    f"pretrained weights file {weights} not found. Set model.net.encoder.pretrained to "
                    "an existing file, true (download), or false (random init)."
                )
            self.model = create_from_file(name, weights, **kwargs)
        elif pretrained:
            self.model = create_downloaded(name, **kwargs)
        else:
            self.model = timm.create_model(name, pretrained=False, features_only=True, **kwargs)
        self.name = name
        self.channels: list[int] = self.model.feature_info.channels()
        self.reductions: list[int] = self.model.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)
