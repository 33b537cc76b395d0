"""Segmentation losses: `(logits (B, C, H, W), target (B, H, W) int64, 255 = ignore) -> scalar`.

`configs/model/loss/` picks one. Cross-entropy is PyTorch's, with optional class weights;
Dice, focal and Lovász are segmentation_models_pytorch's, instantiated by their configs in
multiclass mode with `ignore_index=255`; `WeightedSum` adds named terms (`model/loss=ce_dice`).
A pixel labelled 255 changes neither a loss nor its gradient (tests/test_losses.py).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semseg.data.class_frequency import MEDIAN_FREQUENCY
from semseg.data.io import IGNORE_INDEX
from semseg.errors import SemsegError

LOSS_KEY = "model.loss"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy, 255 ignored, optionally weighted per class.

    Args:
        class_weights: None (unweighted), one weight per class, or "median_frequency": weights
            counted from the training masks by `SegmentationModule.setup` before training
            (semseg.data.class_frequency); until then the loss refuses to run.
        absent_class_weight: with median_frequency, the weight of a class that never occurs in
            the training masks; None makes such a training split an error.
    """

    def __init__(self, class_weights: Sequence[float] | str | None = None, absent_class_weight: float | None = None):
        super().__init__()
        if absent_class_weight is not None and not (_is_number(absent_class_weight) and absent_class_weight >= 0):
            raise SemsegError(f"absent_class_weight={absent_class_weight!r} must be a number >= 0, e.g. 1.0, or null.")
        self.absent_class_weight = absent_class_weight
        self.register_buffer("weight", None, persistent=False)  # the config holds the numbers
        if class_weights is None or class_weights == MEDIAN_FREQUENCY:
            self.class_weights = class_weights
        elif isinstance(class_weights, str) or not all(_is_number(w) and w >= 0 for w in class_weights):
            raise SemsegError(
                f"class_weights={class_weights!r}: give null, {MEDIAN_FREQUENCY}, or one number >= 0 per "
                "class, e.g. class_weights=[1.0,2.0,2.0]."
            )
        else:
            self.set_class_weights(class_weights)

    def set_class_weights(self, weights: Sequence[float]) -> None:
        self.class_weights = [float(w) for w in weights]
        self.weight = torch.tensor(self.class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.class_weights == MEDIAN_FREQUENCY:
            raise RuntimeError(
                f"class_weights={MEDIAN_FREQUENCY} is not resolved yet: SegmentationModule.setup counts "
                "them from the datamodule's train split before training."
            )
        weight = None if self.weight is None else self.weight.to(device=logits.device, dtype=logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)


class WeightedSum(nn.Module):
    """Σ weights[name] · term(logits, target) over named loss terms, e.g. ce + 0.5 · dice.

    Terms are registered under their config names, so a term's settings are
    `model.loss.<name>.*` in the config and in messages alike. A term missing from `weights`
    weighs 1.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, **terms: nn.Module):
        super().__init__()
        weights = dict(weights or {})
        if not terms or set(weights) - set(terms):
            raise SemsegError(
                f"{LOSS_KEY}.weights names {sorted(set(weights) - set(terms))}, which are not terms of "
                f"{LOSS_KEY} (its terms: {sorted(terms)}); weigh only terms the loss has."
            )
        for name, term in terms.items():
            self.add_module(name, term)
        self.weights = {name: float(weights.get(name, 1.0)) for name in terms}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(weight * getattr(self, name)(logits, target) for name, weight in self.weights.items())


def cross_entropy_terms(loss: Callable) -> Iterator[tuple[str, CrossEntropy]]:
    """(config key, term) for every CrossEntropy in a loss, e.g. ("model.loss.ce", ...)."""
    if not isinstance(loss, nn.Module):
        return
    for name, part in loss.named_modules():
        if isinstance(part, CrossEntropy):
            yield (f"{LOSS_KEY}.{name}" if name else LOSS_KEY), part


def check_class_weights(loss: Callable, class_names: Sequence[str]) -> None:
    """Refuse explicit class weights whose count is not the class count, naming the key to fix."""
    for key, term in cross_entropy_terms(loss):
        weights = term.class_weights
        if isinstance(weights, list) and len(weights) != len(class_names):
            raise SemsegError(
                f"{key}.class_weights has {len(weights)} weights but the data has {len(class_names)} "
                f"classes {list(class_names)}; give one weight per class, e.g. {key}.class_weights="
                f"[{','.join(['1.0'] * len(class_names))}], or {key}.class_weights={MEDIAN_FREQUENCY}."
            )
