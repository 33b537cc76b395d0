"""The LightningModule: loss, optimisation and dataset-level metrics for any segmentation net."""

import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from semseg.checkpoints.format import CHECKPOINT_FORMAT, CHECKPOINT_KEY
from semseg.checkpoints.resume import optimizer_differences
from semseg.data.class_frequency import check_class_weights
from semseg.models.net import IGNORE_INDEX
from semseg.errors import SemsegError
from semseg.models.losses import CrossEntropy, cross_entropy_terms
from semseg.models.metrics import SegmentationScores
from semseg.models.net import SampledLossNet, checked_net
from semseg.models.param_groups import check_encoder, make_optimizer, parameter_groups

log = logging.getLogger(__name__)
# what eval, predict and export need to read and normalise images as training did
STORED_DATA_KEYS = ("mean", "std", "palette", "in_channels", "bands", "nodata", "rgb_bands")


def same_size_groups(batch: dict) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """(indices, (H, W)) for each distinct image size in a batch (`size` from the collate, else the batch's)."""
    sizes = batch.get("size")
    if sizes is None:
        return [(torch.arange(len(batch["image"])), tuple(batch["image"].shape[-2:]))]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes.tolist()):
        groups.setdefault(tuple(size), []).append(index)
    return [(torch.tensor(indices), size) for size, indices in groups.items()]


class SegmentationModule(L.LightningModule):
    """Trains `net` with a segmentation loss (255 ignored) and logs VOC-style mIoU.

    Args:
        net: a `semseg.models.net.SegmentationNet`: (B, 3, H, W) images to (B, C, H, W) logits.
        optimizer: partial optimizer taking the parameters (or parameter groups).
        scheduler: partial `(optimizer, total_steps) -> scheduler`, stepped every iteration,
            or None for a constant learning rate.
        class_names: one name per class, used in metric names (`val/IoU/<name>`).
        model_config: the config that built `net`, stored in checkpoints so eval can rebuild it.
        inference: optional `(net, images) -> logits` used for val/test instead of `net(images)`,
            e.g. a `semseg.inference.Inference` for tiled inference and test-time augmentation.
        loss: `(logits (B, C, H, W), target (B, H, W), 255 = ignore) -> scalar` for the train,
            val and test loss (semseg.models.losses); None is plain cross-entropy.
        optimizer_groups: `encoder_lr_mult`, `no_weight_decay_norm_bias` (semseg.models.param_groups);
            None is one group.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: Sequence[str],
        scheduler: Callable | None = None,
        model_config: dict | None = None,
        inference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        optimizer_groups: Mapping | None = None,
    ):
        super().__init__()
        self.net = checked_net(net)
        self.loss = loss if loss is not None else CrossEntropy()
        check_class_weights({key: {"class_weights": term.class_weights} for key, term in cross_entropy_terms(self.loss)},
                            class_names)
        self.optimizer_groups = dict(optimizer_groups or {})
        check_encoder(net, self.optimizer_groups.get("encoder_lr_mult", 1.0))
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.model_config = model_config or {}
        self.inference = inference
        self.scores = nn.ModuleDict(
            {stage: SegmentationScores(len(self.class_names)) for stage in ("val", "test")}
        )
        # the loss per labelled pixel over the whole split, whatever the batching or process count
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        # the last computed confusion matrix per stage, for reporting callbacks
        self.last_confusion: dict[str, torch.Tensor] = {}
        # the data's normalisation and colours, stored in checkpoints for eval and predict
        self.data_description: dict = {}
        # the learning-rate schedule's length, stored in checkpoints so a resume keeps it
        self.schedule_steps: int | None = None
        self._resumed_schedule_steps: int | None = None
        self._resumed_optimization: tuple[dict | None, dict | None] = (None, None)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "description"):  # set up before the module, so its datasets exist
            self.data_description = datamodule.description()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _training_outputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and targets for the loss; a net with `sample_for_loss` scores only some pixels."""
        if isinstance(self.net, SampledLossNet):
            return self.net.sample_for_loss(batch["image"], batch["mask"])
        return self(batch["image"]), batch["mask"]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(*self._training_outputs(batch))
        self._stop_unless_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _stop_unless_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop before a NaN/inf loss reaches the weights, so no checkpoint ever holds NaN weights.

        Every process takes part in the decision, so under DDP all of them stop together.
        """
        finite = bool(torch.isfinite(loss))
        trainer = self._trainer  # None when driven by hand, as the benchmarks do
        if finite if trainer is None else trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        value = f"is {loss.item()}" if not finite else "is not finite in another process"
        checkpoint = trainer.checkpoint_callback if trainer is not None else None
        kept = f" in {checkpoint.dirpath}" if checkpoint is not None and checkpoint.dirpath else ""
        raise SemsegError(
            f"train/loss {value} at {where}; training stopped before this step's update, so the "
            f"checkpoints{kept} keep the last finite weights. Lower model.optimizer.lr, or check the data."
        )

    def _evaluate(self, batch: dict, stage: str) -> list[torch.Tensor]:
        """Score every image at its own size; return its (H, W) prediction, in batch order.

        Images of one size run through the network together; a batch mixing sizes (padded by the
        collate) runs once per size, cropped to it, so the padding never reaches the network and
        a prediction, and the split's mIoU, do not depend on the batch size.
        """
        predictions: list[torch.Tensor | None] = [None] * len(batch["image"])
        for indices, (h, w) in same_size_groups(batch):
            everything = len(indices) == len(batch["image"])
            images = batch["image"][..., :h, :w] if everything else batch["image"][indices, :, :h, :w]
            masks = batch["mask"][..., :h, :w] if everything else batch["mask"][indices, :h, :w]
            logits = self.inference(self.net, images) if self.inference else self(images)
            labelled = (masks != IGNORE_INDEX).sum()
            if labelled > 0:
                self.losses[stage].update(self.loss(logits, masks), weight=labelled)
            labels = logits.argmax(1)
            self.scores[stage].update(labels, masks)
            for index, label in zip(indices.tolist(), labels):
                predictions[index] = label
        return predictions

    def validation_step(self, batch: dict, batch_idx: int) -> list[torch.Tensor]:
        return self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> list[torch.Tensor]:
        return self._evaluate(batch, "test")

    def _log_scores(self, stage: str) -> None:
        scores = self.scores[stage].compute()
        self.last_confusion[stage] = scores["confusion"].cpu()
        self.log(f"{stage}/loss", self.losses[stage].compute(), prog_bar=True)
        self.losses[stage].reset()
        self.log(f"{stage}/mIoU", scores["mIoU"].float(), prog_bar=True)
        self.log(f"{stage}/pixel_acc", scores["pixel_acc"].float())
        for name, iou in zip(self.class_names, scores["IoU"]):
            self.log(f"{stage}/IoU/{name}", iou.float())
        self.scores[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def configure_optimizers(self):
        encoder = getattr(self.net, "encoder", None)
        optimizer = make_optimizer(self.optimizer_factory, parameter_groups(self, encoder, **self.optimizer_groups))
        if self.scheduler_factory is None:
            self._refuse_another_optimizer(optimizer)
            return optimizer
        self.schedule_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=self.schedule_steps)
        self._refuse_another_schedule(scheduler)
        self._refuse_another_optimizer(optimizer, scheduler)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _refuse_another_optimizer(self, optimizer, scheduler=None) -> None:
        """A resumed run's optimizer state must be the one this config builds (Lightning would
        restore the saved learning rates and settings over the configured ones)."""
        saved, saved_schedule = self._resumed_optimization
        if saved is None:
            return
        fresh_schedule = scheduler.state_dict() if scheduler is not None else None
        differences = optimizer_differences(saved, optimizer.state_dict(), saved_schedule, fresh_schedule)
        if differences:
            raise SemsegError(
                f"cannot resume: the checkpoint's optimizer state differs from this config's ({'; '.join(differences[:3])}). "
                "Resume with the settings of that run (its .hydra/config.yaml), or start a new run."
            )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before Lightning restores anything: the weights must be this model's, tensor by tensor."""
        steps = checkpoint.get(CHECKPOINT_KEY, {}).get("schedule_steps")
        self._resumed_schedule_steps = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
        self._resumed_optimization = (checkpoint.get("optimizer_states") or [None])[0], (checkpoint.get("lr_schedulers") or [None])[0]
        own = {key: tuple(value.shape) for key, value in self.state_dict().items()}
        stored = {key: tuple(value.shape) for key, value in checkpoint.get("state_dict", {}).items()}
        wrong = sorted(key for key in own.keys() | stored.keys() if own.get(key) != stored.get(key))
        if wrong:
            raise SemsegError(
                f"cannot resume: the checkpoint's weights do not fit this model ({len(wrong)} tensors missing, extra "
                f"or of another shape, e.g. {', '.join(wrong[:3])}). Resume with the settings of that run."
            )

    def _refuse_another_schedule(self, scheduler) -> None:
        """A resumed run must keep the schedule it was saved with.

        Lightning restores the scheduler's state, length included: with more epochs it would step
        past the end and crash, with fewer it would end at once. Schedules without a length
        (constant) may go on for any number of steps.
        """
        saved = self._resumed_schedule_steps
        has_length = {"total_steps", "total_iters", "T_max"} & set(scheduler.state_dict())
        if saved is None or saved == self.schedule_steps or not has_length:
            return
        raise SemsegError(
            f"cannot resume: the checkpoint's learning-rate schedule spans {saved} steps, this run's "
            f"{self.schedule_steps} (trainer.max_epochs, trainer.max_steps, data.batch_size or the "
            "training set differ). Resume with the settings of that run (its .hydra/config.yaml), or "
            "start a new run."
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # update, not replace: callbacks add entries first (semseg.callbacks.run_state)
        checkpoint.setdefault(CHECKPOINT_KEY, {}).update(
            format=CHECKPOINT_FORMAT,
            schedule_steps=self.schedule_steps,
            **{key: self.data_description.get(key) for key in STORED_DATA_KEYS},
            class_names=self.class_names,
            model_config=self.model_config,
            class_weights={f"{key}.class_weights": term.class_weights for key, term in cross_entropy_terms(self.loss)
                           if term.class_weights is not None},
        )

