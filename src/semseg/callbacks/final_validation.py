"""Validate after the last epoch too, when validation runs only every k epochs.

With `trainer.check_val_every_n_epoch=k` (k > 1, e.g. the CamVid recipe's 2), the epochs after the
last multiple of k would train without a score: the best checkpoint could not be chosen among
them, and a run of fewer than k epochs would not validate at all.
"""

import lightning as L


class FinalValidation(L.Callback):
    """At the start of the last epoch (of `trainer.max_epochs`), validate every epoch from then on."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        max_epochs = trainer.max_epochs
        last = max_epochs is not None and max_epochs > 0 and trainer.current_epoch == max_epochs - 1
        if last and (trainer.check_val_every_n_epoch or 1) > 1:
            trainer.check_val_every_n_epoch = 1
