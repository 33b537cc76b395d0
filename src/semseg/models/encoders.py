"""Encoders: any timm backbone, as a list of NCHW feature maps at increasing strides.

timm's `features_only` mode gives one contract for every backbone: `channels` and `reductions`
describe the feature maps, so any decoder here works with any encoder. What differs between
backbone families is settled here, once, so no decoder sees it:

- maps that timm gives channels-last (Swin, MambaOut: `output_fmt` NHWC) are returned NCHW;
- models pretrained at one input size (ViT, Swin, EVA) are built with `dynamic_img_size`, so any
  H × W runs; a family that has no such option and fails at other sizes is refused at build time;
- plain ViTs, whose maps all share the patch stride, get a simple feature pyramid (strides 4-32);
- `output_stride` dilates the last stages where timm can (ResNets, ConvNeXt, EfficientNets, ...);
- `in_channels` other than 3 (multi-band or grayscale data) builds the first convolution for
  that many bands (timm's `in_chans`); pretrained RGB weights, downloaded or from a local file,
  are adapted by timm's `adapt_input_conv` as they load: for 1 band the RGB kernels are summed,
  for N bands the RGB kernels are repeated in turn (R, G, B, R, ...) and scaled by 3 / N, so the
  first layer's response to a uniform input keeps its size. One log line says what was done; a
  first convolution timm cannot adapt is refused, never left at random init.
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
import torch.nn.functional as F
from huggingface_hub import constants as hub
from timm.models._features import FeatureGetterNet
from torch import nn

from semseg.errors import SemsegError
from semseg.models import tiny_resnet  # noqa: F401  (registers semseg_tiny_resnet with timm)
from semseg.models.feature_pyramid import STRIDE as PYRAMID_STRIDE
from semseg.models.feature_pyramid import SimpleFeaturePyramid

log = logging.getLogger(__name__)
OUTPUT_STRIDES = (8, 16, 32)


def _unknown_model_message(name: str) -> str:
    architecture = name.split(".", 1)[0]
    close = difflib.get_close_matches(architecture, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean one of {close}?" if close else ""
    return (
        f"unknown timm encoder '{name}'.{hint} Any name from timm.list_models() works, with or without "
        "a pretrained tag, e.g. model.net.encoder.name=resnet18 or resnet50.a1_in1k."
    )


def check_name(name: str) -> None:
    """A timm architecture, optionally tagged (`resnet50.a1_in1k`); a SemsegError otherwise.

    `timm.list_models()` lists untagged names only; `timm.is_model` reads the architecture part
    of a tagged one, and the tag must name one of its pretrained configs.
    """
    if not timm.is_model(name):
        raise SemsegError(_unknown_model_message(name))
    try:
        timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # timm: invalid pretrained tag
        architecture = name.split(".", 1)[0]
        tags = timm.list_pretrained(f"{architecture}.*")
        raise SemsegError(
            f"timm model '{architecture}' has no pretrained tag '{name.split('.', 1)[1]}'. Its tags: "
            f"{tags[:8] or 'none'}; set model.net.encoder.name to one of them, or to '{architecture}'."
        ) from None


def fixed_input_size(name: str) -> bool:
    """Whether timm's pretrained config says the model takes one input size (ViT, Swin, ...)."""
    return bool(getattr(timm.models.get_pretrained_cfg(name), "fixed_input_size", False))


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


@contextlib.contextmanager
def input_conv_messages() -> Iterator[list[str]]:
    """Collect what timm logs about adapting the first convolution while it loads weights."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "input conv" in text or "Unable to convert" in text or "already match the model" in text:
                messages.append(text)

    handler, builder = Collect(), logging.getLogger("timm.models._builder")
    level = builder.level
    builder.addHandler(handler)
    builder.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        yield messages
    finally:
        builder.removeHandler(handler)
        builder.setLevel(level)


def create_pretrained(name: str, pretrained: bool | Path, **kwargs) -> nn.Module:
    """`create_from_file` or `create_downloaded`; with `in_chans` other than 3, the pretrained first
    convolution adapted to it (timm's adapt_input_conv), said in one log line, or refused."""
    in_chans = kwargs.get("in_chans", 3)
    source = f"weights file {pretrained}" if isinstance(pretrained, Path) else "pretrained weights"
    with input_conv_messages() as messages:
        try:
            model = (create_from_file(name, pretrained, **kwargs) if isinstance(pretrained, Path)
                     else create_downloaded(name, **kwargs))
        except SemsegError as error:
            if in_chans == 3:
                raise
            raise SemsegError(
                f"{error} With model.net.encoder.in_channels={in_chans}, timm adapts the first convolution of 3-band "
                f"weights only where its pretrained config of '{name}' names that layer (first_conv)."
            ) from None
    if in_chans == 3:
        return model
    failed = [text for text in messages if "Unable to convert" in text]
    if failed:
        raise SemsegError(
            f"timm cannot adapt the first convolution of the {source} of '{name}' to {in_chans} input channels "
            f"({failed[0]}); set model.net.encoder.pretrained=false, or use data.in_channels=3."
        )
    done = "; ".join(text for text in messages if "Converted input conv" in text) or (
        "the weights already take that many channels" if messages else "no first convolution needed adapting")
    log.info("timm '%s', %s, in_channels=%d: %s (timm adapt_input_conv: 1 band sums the RGB kernels, N bands "
             "repeat them R, G, B, R, ... scaled by 3/N)", name, source, in_chans, done)
    return model


def create(name: str, pretrained: bool | Path, **kwargs) -> nn.Module:
    """timm's `features_only` model: random init, downloaded weights, or a local weights file."""
    if isinstance(pretrained, Path) or pretrained:
        return create_pretrained(name, pretrained, **kwargs)
    return timm.create_model(name, pretrained=False, features_only=True, **kwargs)


def create_any_size(name: str, pretrained: bool | Path, **kwargs) -> nn.Module:
    """`create`, with `dynamic_img_size` for models pretrained at one input size, so any H × W runs.

    A fixed-size family without that option (MaxViT, CoAtNet, Hiera, LeViT) is tried once at a
    size of its own strides other than its pretraining size, and refused if it fails there.
    """
    if not fixed_input_size(name) or "dynamic_img_size" in kwargs:
        return create(name, pretrained, **kwargs)
    try:
        return create(name, pretrained, dynamic_img_size=True, **kwargs)
    except TypeError as error:
        if "dynamic_img_size" not in str(error):
            raise
    model = create(name, pretrained, **kwargs)
    stride = max(model.feature_info.reduction())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, kwargs.get("in_chans", 3), 2 * stride, 3 * stride))
    except (AssertionError, RuntimeError):
        size = "×".join(map(str, timm.models.get_pretrained_cfg(name).input_size[-2:]))
        raise SemsegError(
            f"timm model '{name}' runs only at its pretraining input size {size} (it has no dynamic_img_size), "
            "and semseg feeds images of any size. Choose another encoder, e.g. model.net.encoder.name="
            "swin_tiny_patch4_window7_224 or convnext_tiny."
        ) from None
    return model.train()


def create_backbone(name: str, pretrained: bool | Path, stride: int | None, **kwargs) -> nn.Module:
    """`create_any_size`, dilated to `stride` where the family can (timm's `output_stride`).

    Families that cannot dilate refuse the argument (TypeError, or an assertion); they are built
    as they are, and the caller compares the strides they give with the one asked for.
    """
    if stride and stride < 32:
        try:
            return create_any_size(name, pretrained, output_stride=stride, **kwargs)
        except (TypeError, AssertionError):
            pass
    return create_any_size(name, pretrained, **kwargs)


def is_plain_vit(model: nn.Module) -> bool:
    """ViT, DeiT, EVA, BEiT: every map at the patch stride (hierarchical models' strides differ)."""
    return isinstance(model, FeatureGetterNet) and len(set(model.feature_info.reduction())) == 1


class TimmEncoder(nn.Module):
    """A timm backbone in `features_only` mode, giving NCHW maps at increasing strides.

    Args:
        name: timm model name, e.g. "resnet18", or with a pretrained tag, "resnet50.a1_in1k".
        pretrained: False for random init (runs offline), True to fetch timm's weights from the
            hub, or a path to a local weights file (.pth / .safetensors) for that model.
        out_indices: which feature levels to return; None for all.
        output_stride: the stride the deepest features must have: 8 or 16 dilate the last stages
            (timm's `output_stride`), and a backbone that cannot is refused; None keeps its own.
        preferred_output_stride: the same where the backbone can dilate; one that cannot keeps
            its own stride (DeepLabV3+ asks for 16 this way, so it runs on any backbone).
        in_channels: the bands of the input (`data.in_channels`); pretrained RGB weights are
            adapted to them (see the module docstring).
        **kwargs: passed to `timm.create_model` (e.g. `drop_path_rate`).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool | str = False,
        out_indices: tuple[int, ...] | None = None,
        output_stride: int | None = None,
        preferred_output_stride: int | None = None,
        in_channels: int = 3,
        **kwargs,
    ):
        super().__init__()
        check_name(name)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise SemsegError(f"model.net.encoder.in_channels={in_channels!r} must be a band count, 1 or more "
                              "(by default data.in_channels).")
        if in_channels != 3:
            kwargs["in_chans"] = in_channels
        for key, value in (("output_stride", output_stride), ("preferred_output_stride", preferred_output_stride)):
            if value is not None and value not in OUTPUT_STRIDES:
                raise SemsegError(f"model.net.encoder.{key}={value}: use one of {list(OUTPUT_STRIDES)}, or null "
                                  "for the backbone's own stride.")
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        if isinstance(pretrained, str):
            pretrained = Path(pretrained).expanduser()
            if not pretrained.is_file():
                raise SemsegError(
                    f"pretrained weights file {pretrained} not found. Set model.net.encoder.pretrained to "
                    "an existing file, true (download), or false (random init)."
                )
        wanted = output_stride or preferred_output_stride
        self.model = create_backbone(name, pretrained, wanted, **kwargs)
        self.name = name
        self.in_channels = in_channels
        self.channels_last = getattr(self.model, "output_fmt", "NCHW") == "NHWC"
        self.channels: list[int] = self.model.feature_info.channels()
        self.reductions: list[int] = self.model.feature_info.reduction()
        self.pyramid = None
        if is_plain_vit(self.model):
            self.patch_stride = self.reductions[-1]
            self.pyramid = SimpleFeaturePyramid(self.channels[-1], max_stride=max(wanted or 32, PYRAMID_STRIDE))
            self.channels, self.reductions = self.pyramid.channels, self.pyramid.reductions
        self._check_stride(output_stride, preferred_output_stride)

    def _check_stride(self, output_stride: int | None, preferred: int | None) -> None:
        deepest = max(self.reductions)
        if output_stride and deepest != output_stride:
            raise SemsegError(
                f"model.net.encoder.output_stride={output_stride}, but timm '{self.name}' cannot be dilated to it "
                f"(its deepest features have stride {deepest}). Set model.net.encoder.output_stride=null to keep "
                "its own stride, or choose a backbone that dilates (ResNets, ConvNeXt, EfficientNets, "
                "MobileNetV3, RegNets), e.g. model/encoder=resnet50."
            )
        if preferred and deepest > preferred:
            log.info("timm '%s' cannot be dilated to stride %d; it keeps its own, %d.", self.name, preferred, deepest)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.pyramid is not None:
            h, w = x.shape[-2:]
            patch = self.patch_stride
            last = self.model(F.pad(x, (0, -w % patch, 0, -h % patch)))[-1]
            return self.pyramid(last, (h // PYRAMID_STRIDE, w // PYRAMID_STRIDE))
        features = self.model(x)
        if self.channels_last:
            features = [feature.permute(0, 3, 1, 2) for feature in features]
        return features
