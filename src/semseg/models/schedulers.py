"""Per-iteration learning-rate schedules, all built from the run's total number of steps.

Each factory takes `(optimizer, total_steps, ...)`, so configs can pick one with `_partial_`.
`poly` and `cosine` take `warmup_steps`: the lr first rises linearly, base_lr · (step + 1) /
warmup_steps, and the decay then spans the remaining steps; `total_steps` stays the whole run.
"""

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    OneCycleLR,
    PolynomialLR,
)

from semseg.errors import SemsegError


def poly(optimizer: Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0) -> PolynomialLR | LambdaLR:
    """lr = base_lr · (1 - step / total_steps) ^ power, the DeepLab / mmsegmentation default."""
    if not warmup_steps:
        return PolynomialLR(optimizer, total_iters=total_steps, power=power)
    return warmup_then(optimizer, total_steps, warmup_steps, partial(_poly_lr, power=power))


def cosine(
    optimizer: Optimizer, total_steps: int, min_lr: float = 0.0, warmup_steps: int = 0
) -> CosineAnnealingLR | LambdaLR:
    if not warmup_steps:
        return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)
    return warmup_then(optimizer, total_steps, warmup_steps, partial(_cosine_lr, min_lr=min_lr))


def onecycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.3) -> OneCycleLR:
    """Warm up to each group's configured lr, then anneal (Smith & Topin, 2019)."""
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: 1.0)


def _poly_lr(base_lr: float, progress: float, power: float) -> float:
    return base_lr * (1 - progress) ** power


def _cosine_lr(base_lr: float, progress: float, min_lr: float) -> float:
    """CosineAnnealingLR's closed form."""
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def _factor(step: int, base_lr: float, total_steps: int, warmup_steps: int, decay) -> float:
    """lr / base_lr at `step`: linear warmup, then `decay(base_lr, progress in [0, 1])`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if base_lr == 0:
        return 0.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return decay(base_lr, progress) / base_lr


def warmup_then(optimizer: Optimizer, total_steps: int, warmup_steps: int, decay) -> LambdaLR:
    """A linear warmup over `warmup_steps`, then `decay` over the rest, for every param group.

    The scheduler keeps `total_steps` in its state, so a resume with another run length is
    refused like for the plain schedules (SegmentationModule._refuse_another_schedule).
    """
    if not 0 < warmup_steps < total_steps:
        raise SemsegError(
            f"model.scheduler.warmup_steps={warmup_steps} must be shorter than this run's {total_steps} "
            "training steps; use fewer warmup steps, or train longer (trainer.max_epochs, trainer.max_steps)."
        )
    factors = [
        partial(_factor, base_lr=group["lr"], total_steps=total_steps, warmup_steps=warmup_steps, decay=decay)
        for group in optimizer.param_groups
    ]
    scheduler = LambdaLR(optimizer, factors)
    scheduler.total_steps = total_steps
    return scheduler
