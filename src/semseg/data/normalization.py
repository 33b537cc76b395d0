"""Input normalisation: the statistics an encoder's pretrained weights expect.

timm records them per model in its pretrained config (ImageNet's for most CNNs, 0.5 / 0.5 for
EfficientNet-Lite, ViT and others). Normalising with the wrong ones quietly costs a pretrained
encoder accuracy, so data configs take them from the encoder by default (`input_normalization`
resolver) and checkpoints store them for eval and predict.
"""

import timm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def stored_normalization(meta: dict) -> dict[str, list[float]]:
    """The input normalisation a checkpoint's model was trained with.

    Checkpoints written before semseg stored it were all trained with ImageNet's statistics.
    """
    return {
        "mean": list(meta.get("mean") or IMAGENET_MEAN),
        "std": list(meta.get("std") or IMAGENET_STD),
    }
