"""Input normalisation, settled in one place for every entry point.

`settle_normalization` decides the `mean` / `std` (on a 0-1 pixel scale, one per input channel)
of a run: values given explicitly win, else those a checkpoint's model was trained with, else
the statistics an encoder's pretrained weights expect. timm records those per model in its
pretrained config (ImageNet's for most CNNs, 0.5 / 0.5 for EfficientNet-Lite, ViT and others);
normalising with the wrong ones quietly costs a pretrained encoder accuracy. Training takes the
encoder's through the `input_normalization` resolver in configs/train.yaml; eval, predict and
export take the checkpoint's (semseg.run_setup.set_up_eval, semseg.export).
"""

import functools
import math
from collections.abc import Callable, Mapping

import timm

from semseg.errors import SemsegError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KEYS = ("mean", "std")


def encoder_normalization(encoder_name: str | None) -> dict[str, list[float]]:
    """{"mean": [...], "std": [...]} of a timm model's pretrained config; ImageNet's otherwise.

    Models without a timm encoder (pixelwise, patch_classifier) and names timm does not know get
    ImageNet's statistics; an unknown name is reported when the encoder is built.
    """
    config = None
    if encoder_name:
        try:
            config = timm.models.get_pretrained_cfg(str(encoder_name))
        except (RuntimeError, ValueError, KeyError):
            config = None
    mean = getattr(config, "mean", None) or IMAGENET_MEAN
    std = getattr(config, "std", None) or IMAGENET_STD
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def stored_normalization(meta: Mapping) -> dict[str, list[float]]:
    """The input normalisation a checkpoint's model was trained with.

    Checkpoints written before semseg stored it were all trained with ImageNet's statistics.
    """
    return {
        "mean": [float(v) for v in meta.get("mean") or IMAGENET_MEAN],
        "std": [float(v) for v in meta.get("std") or IMAGENET_STD],
    }


def settle_normalization(
    given: Mapping,
    meta: Mapping | None = None,
    encoder_name: str | None = None,
    prefix: str = "",
    in_channels: int = 3,
    band_statistics: Callable[[], Mapping] | None = None,
) -> dict[str, list[float]]:
    """`mean` and `std` for a run: `given` (explicit values; absent or None: not given), else the
    checkpoint's (`meta`), else, for RGB (`in_channels` 3), the encoder's, and for other band
    counts `band_statistics()` (the train split's, semseg.data.band_statistics; only called
    when needed).

    Given values must be one positive (std) number per channel of the model; `prefix` is how the
    keys are named in messages (`data.` for training and eval, nothing for predict).
    """
    if meta is not None:
        defaults, source = functools.cache(lambda: stored_normalization(meta)), "what the model was trained with"
        in_channels = len(defaults()["mean"])
    elif in_channels != 3:
        defaults = functools.cache(lambda: {key: [float(v) for v in band_statistics()[key]] for key in KEYS})
        source = "the train split's statistics"
    else:
        defaults, source = functools.cache(lambda: encoder_normalization(encoder_name)), "what the encoder's weights expect"
    settled = {}
    for key in KEYS:
        value = given.get(key)
        settled[key] = defaults()[key] if value is None else _checked(value, f"{prefix}{key}", in_channels,
                                                                        lambda key=key: defaults()[key], source)
    return settled


def _checked(value, key: str, channels: int, example: Callable[[], list[float]], source: str) -> list[float]:
    values = [value] if isinstance(value, int | float | str) else list(value)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if len(values) != channels or not numbers or (key.endswith("std") and min(values) <= 0):
        raise SemsegError(
            f"{key}={value} must be {channels} numbers, one per input channel"
            f"{', all positive' if key.endswith('std') else ''}, e.g. {key}=[{','.join(f'{v:g}' for v in example())}] ({source})."
        )
    return [float(v) for v in values]
