"""Lightning's ModelCheckpoint, with `last.ckpt` written at the end of every epoch.

With `save_last=True` the pinned Lightning rewrites `last.ckpt` only when it also saves a top-k
checkpoint, so after a hard kill `last.ckpt` could be many epochs old (it held epoch 0 of a run
whose score stopped improving after it). Here it is also written whenever an epoch (or a
validation) ends without any other save. The class keeps Lightning's name, so the callback
state stored in checkpoints keeps its key.
"""

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    def _save_last_if_nothing_saved(self, trainer: L.Trainer) -> None:
        # _should_skip_saving_checkpoint: sanity check, fast_dev_run, or already saved at this step
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # when validation ends an epoch, Lightning saves in on_train_epoch_end, which comes after
        if trainer.state.fn == "fit" and not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_nothing_saved(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_nothing_saved(trainer)
