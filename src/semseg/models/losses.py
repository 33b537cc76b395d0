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

from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError

LOSS_KEY = "model.loss"


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy, 255 ignored, optionally weighted per class.

    Args:
        class_weights: None (unweighted) or one weight per class. A setting such as
            `median_frequency` is turned into numbers by the run set-up before the loss is built
            (semseg.data.class_frequency); a loss built with it anyway refuses to run.
        absent_class_weight: read by that counting (the weight of a class the training masks
            lack); taken here only because it sits in the loss's config.
    """

    def __init__(self, class_weights: Sequence[float] | str | None = None, absent_class_weight: float | None = None):
        super().__init__()
        self.absent_class_weight = absent_class_weight
        self.class_weights = class_weights if class_weights is None or isinstance(class_weights, str) else [float(w) for w in class_weights]
        weight = torch.tensor(self.class_weights) if isinstance(self.class_weights, list) else None
        self.register_buffer("weight", weight, persistent=False)  # the config holds the numbers

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if isinstance(self.class_weights, str):
            raise RuntimeError(
                f"class_weights={self.class_weights} is not resolved yet: the run set-up (semseg.run_setup) "
                "turns it into numbers before the model is built."
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
