"""Per-iteration learning-rate schedules, all built from the run's total number of steps.

Each factory takes `(optimizer, total_steps, ...)`, so configs can pick one with `_partial_`.
"""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    OneCycleLR,
    PolynomialLR,
)


def poly(optimizer: Optimizer, total_steps: int, power: float = 0.9) -> PolynomialLR:
    """lr = base_lr · (1 - step / total_steps) ^ power, the DeepLab / mmsegmentation default."""
    return PolynomialLR(optimizer, total_iters=total_steps, power=power)


def cosine(optimizer: Optimizer, total_steps: int, min_lr: float = 0.0) -> CosineAnnealingLR:
    return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)


def onecycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.3) -> OneCycleLR:
    """Warm up to each group's configured lr, then anneal (Smith & Topin, 2019)."""
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: 1.0)
