"""Stop cleanly on SIGTERM or Ctrl+C and save a checkpoint that resumes exactly.

Lightning already stops after the current training batch on SIGTERM (the signal schedulers send
before preempting a job). This callback adds:
  - Ctrl+C (SIGINT) takes the same path; a second Ctrl+C aborts at once, without saving;
  - a signal that arrives during validation is held until validation ends, because Lightning
    would otherwise abandon it half done, and the score of that epoch would be lost;
  - the state is saved to `<dirpath>/last.ckpt`, where `ckpt_path=last` looks.
Other exceptions (a crash, a non-finite loss) save nothing: the last good checkpoint stays.
"""

import logging
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from semseg.checkpoints.format import LAST_CHECKPOINT

log = logging.getLogger(__name__)

# the exit status of a run stopped by a signal and saved: 128 + SIGTERM, as if it were killed
INTERRUPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preemption(L.Callback):
    """Args:
    dirpath: the run's checkpoint folder.
    """

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self._trainer: L.Trainer | None = None
        self._stop_after_batch = None  # Lightning's SIGTERM handler
        self._received = False
        self._held = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._trainer = trainer
        self._stop_after_batch = signal.getsignal(signal.SIGTERM)
        self._received = self._held = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        # Lightning puts the handlers it found back when the trainer tears down

    def _on_signal(self, signum: int, frame) -> None:
        if self._received:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self._received = True
        name = signal.Signals(signum).name
        if self._trainer.validating:
            log.warning("%s received: stopping after this validation (Ctrl+C again aborts without saving)", name)
            self._held = True
        else:
            log.warning("%s received: stopping after this batch (Ctrl+C again aborts without saving)", name)
            self._stop()

    def _stop(self) -> None:
        if callable(self._stop_after_batch):
            self._stop_after_batch(signal.SIGTERM, None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._held:
            self._held = False
            self._stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning raises SIGTERMException only between training batches or after an epoch
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        path = self.dirpath / LAST_CHECKPOINT
        trainer.save_checkpoint(path)
        log.warning(
            "interrupted at global step %d (epoch %d); saved %s. Resume with ckpt_path=%s or ckpt_path=last",
            trainer.global_step, trainer.current_epoch, path, path,
        )
