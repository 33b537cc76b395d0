"""What Lightning + Hydra cost: the same training through a plain PyTorch loop and `semseg.train`.

Both sides get one composed default config (U-Net, `tiny_resnet`, synthetic 128², batch 16) cut
to `epochs` × `steps`, and build the identical net, DataLoader, AdamW and one-cycle schedule from
it; the template side is the real `semseg.train.train` with the default callbacks (checkpoints,
rich progress bar, model summary, learning-rate monitor, validation figures) and loggers (W&B
offline, CSV). Both validate on the whole val split after every epoch.

Step time is the interval between the starts of consecutive training steps (a batch in hand), so
it holds the loader wait, forward, backward, optimiser, scheduler and every per-step hook and
log. Steady state drops the first `warmup` intervals of each epoch; the interval that spans a
validation is never counted (it is not between two steps of one epoch).
"""

import json
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from semseg.bench.loop import train_step, val_miou
from semseg.bench.timing import alternate, markdown_table, median, section
from semseg.train import train
from semseg.utils.config import compose_config, instantiate


class StepClock(L.Callback):
    """Writes the start time of every training step, per epoch, to `path` (JSON) when fit ends."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.epochs: list[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.epochs[-1].append(time.perf_counter())

    def on_fit_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps(self.epochs))


def steady_intervals(epochs: list[list[float]], warmup: int) -> list[float]:
    """Seconds between consecutive step starts within each epoch, the first `warmup` dropped."""
    return [b - a for stamps in epochs for a, b in list(zip(stamps, stamps[1:]))[warmup:]]


def bench_config(tmp: Path, run: int, epochs: int, steps: int, overrides: list[str] = ()):
    """The default training config cut to epochs × steps, with a StepClock, logs under tmp."""
    clock = tmp / f"clock{run}.json"
    return compose_config("train.yaml", [
        f"paths.log_dir={tmp / 'logs'}", "extras.print_config=false", "test=false",
        f"trainer.max_epochs={epochs}", f"++trainer.limit_train_batches={steps}",
        f"+callbacks.step_clock._target_={StepClock.__module__}.StepClock", f"+callbacks.step_clock.path={clock}",
        *overrides,
    ], tmp / f"run{run}")


def plain_loop(cfg) -> dict:
    """Plain PyTorch: build from the config, train epochs × steps, validate (mIoU) after each epoch."""
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    net = instantiate(cfg.model.net)
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    epochs, steps = cfg.trainer.max_epochs, cfg.trainer.limit_train_batches
    scheduler = instantiate(cfg.model.scheduler)(optimizer, total_steps=epochs * steps)
    train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
    stamps = []
    for _ in range(epochs):
        net.train()
        stamps.append([])
        for _, batch in zip(range(steps), train_loader):
            stamps[-1].append(time.perf_counter())
            train_step(net, optimizer, batch, scheduler)
        val_miou(net, val_loader, datamodule.num_classes)
    return {"start-up": stamps[0][0] - started, "total": time.perf_counter() - started, "epochs": stamps}


def template_run(cfg) -> dict:
    """The real `semseg.train.train` on the same config; step times come from its StepClock."""
    started = time.perf_counter()
    train(cfg)
    total = time.perf_counter() - started
    stamps = json.loads(Path(cfg.callbacks.step_clock.path).read_text())
    return {"start-up": stamps[0][0] - started, "total": total, "epochs": stamps}


def measure_overhead(rounds: int = 3, epochs: int = 2, steps: int = 25, warmup: int = 2,
                     overrides: list[str] = ()) -> dict[str, dict[str, list[float]]]:
    """Alternate plain and template runs; per side: steady step times, start-ups, totals."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    results = {side: {"start-up": [], "total": []} for side in ("plain", "semseg")}
    runs = iter(range(2 * rounds + 1))
    with tempfile.TemporaryDirectory() as tmp:
        instantiate(bench_config(Path(tmp), next(runs), epochs, steps, overrides).data).prepare_data()  # once

        def side(name, run):
            def call() -> list[float]:
                outcome = run(bench_config(Path(tmp), next(runs), epochs, steps, overrides))
                results[name]["start-up"].append(outcome["start-up"])
                results[name]["total"].append(outcome["total"])
                return steady_intervals(outcome["epochs"], warmup)
            return call

        steps_by_side = alternate({"plain": side("plain", plain_loop), "semseg": side("semseg", template_run)}, rounds)
    for name, intervals in steps_by_side.items():
        results[name]["step"] = intervals
    return results


def report(rounds: int = 2, epochs: int = 2, steps: int = 25, warmup: int = 2) -> str:
    results = measure_overhead(rounds, epochs, steps, warmup)
    plain, ours = ({key: median(values) for key, values in results[side].items()} for side in ("plain", "semseg"))
    rows = [
        [f"steady-state step time (median of {len(results['plain']['step'])} / {len(results['semseg']['step'])} steps)",
         f"{plain['step'] * 1e3:.1f} ms", f"{ours['step'] * 1e3:.1f} ms", f"{ours['step'] / plain['step']:.3f}"],
        ["start-up: call to first training step", f"{plain['start-up']:.2f} s", f"{ours['start-up']:.2f} s",
         f"{ours['start-up'] / plain['start-up']:.1f}"],
        [f"whole run: {epochs} × {steps} steps + {epochs} validations", f"{plain['total']:.1f} s",
         f"{ours['total']:.1f} s", f"{ours['total'] / plain['total']:.2f}"],
    ]
    table = markdown_table(["measure (median over runs)", "(a) plain PyTorch loop", "(b) `semseg.train`",
                            "ratio (b)/(a)"], rows)
    return section("Template overhead: plain PyTorch loop vs `semseg.train`", table, [
        f"{rounds} runs per side, alternated (a b, b a, a b, ...). Default experiment (U-Net, `tiny_resnet`, "
        f"synthetic 128², batch 16, 1 loader worker, AdamW + one-cycle) cut to {epochs} epochs × "
        f"{steps} steps, `test=false`. A step is the time between the starts of two consecutive "
        f"training steps (loader wait, forward, backward, optimiser, per-step hooks and logging); "
        f"the first {warmup} of each epoch are warm-up and dropped. Start-up (b) includes W&B offline "
        "initialisation and Lightning's 2-batch sanity validation; the whole run (b) includes "
        "checkpoint writing and the validation figures of every epoch."])
