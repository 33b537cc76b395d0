"""Wall-clock minutes since training started, logged with each validation's metrics.

The CSV and W&B rows of `val/mIoU` then carry `time/wall_min`, so accuracy can be drawn against
time (`python -m semseg.bench.time_to_accuracy`), not only against epochs. The clock counts from
the start of `fit` in this process: start-up before it is left out, and a resumed run starts at 0.
It is a log, not a result: `semseg.train` leaves it out of the metrics it returns and writes.
"""

import time

import lightning as L

WALL_MIN_KEY = "time/wall_min"


class WallClock(L.Callback):
    """Log the minutes since `on_fit_start` at the end of every validation (not the sanity check)."""

    def __init__(self) -> None:
        self.start: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.monotonic()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.start is None:
            return
        pl_module.log(WALL_MIN_KEY, (time.monotonic() - self.start) / 60.0)
