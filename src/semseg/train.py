"""Train a segmentation model, then test its best checkpoint.

    python -m semseg.train model=fcn8s model/encoder=resnet18 trainer.max_epochs=3

Returns the value of `optimized_metric`, so Hydra sweepers can optimise it.
"""

import logging
import sys
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from semseg.callbacks.channels_last import ChannelsLast
from semseg.callbacks.wall_clock import WALL_MIN_KEY
from semseg.callbacks.preemption import INTERRUPTED_EXIT_STATUS
from semseg.checkpoints.reading import best_score
from semseg.errors import SemsegError
from semseg.loggers import finish_loggers, log_run_config
from semseg.run_setup import set_up_run
from semseg.utils.cli import refuse_unknown_options, report_user_errors
from semseg.utils.config import CONFIG_DIR, instantiate, instantiate_dict, print_config_tree
from semseg.utils.run_info import write_metrics

log = logging.getLogger("semseg.train")


def build(cfg: DictConfig):
    """Instantiate data, model, callbacks, loggers and trainer, checking they fit together."""
    datamodule = instantiate(cfg.data)
    model_classes = cfg.model.net.num_classes
    if model_classes != datamodule.num_classes:
        raise SemsegError(
            f"model.net.num_classes={model_classes} but data '{cfg.data.root}' has "
            f"{datamodule.num_classes} classes {datamodule.class_names}. Leave model.net.num_classes "
            "at its default (${data.num_classes}) or pick matching data."
        )
    # the config that built the model, stored in its checkpoints (a partial: Hydra would build its targets)
    model = instantiate(cfg.model, _partial_=True)(model_config=OmegaConf.to_container(cfg.model, resolve=True))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    if cfg.get("channels_last"):
        callbacks.append(ChannelsLast())
    loggers = instantiate_dict(cfg.get("logger"))
    if not loggers:  # it has nowhere to log the learning rate to, and Lightning refuses it
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; return all logged metrics."""
    resume_from = set_up_run(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    log_run_config(cfg, trainer, Path(CONFIG_DIR).parent)
    # built and checked now: a test_inference the net cannot run fails before training, not after it
    test_inference = instantiate(cfg.test_inference, key="test_inference") if cfg.get("test_inference") else None
    if test_inference is not None:
        test_inference.check(model.net)
    try:
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        # the model's results: the wall clock (a log, for time-to-accuracy curves) differs run to run
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k != WALL_MIN_KEY}
        checkpoint = trainer.checkpoint_callback
        score = best_score(checkpoint) if checkpoint is not None else None
        if score is not None:
            metrics[checkpoint.monitor] = score
        if cfg.test:
            best = checkpoint.best_model_path if checkpoint is not None else ""
            if not best:
                log.warning("no best checkpoint; testing the current weights")
            if test_inference is not None:  # checked against the net before training
                model.inference = test_inference
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    finally:
        finish_loggers(trainer)
    write_metrics(cfg.paths.output_dir, metrics)
    return metrics


@refuse_unknown_options
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    if cfg.extras.print_config:
        print_config_tree(cfg)
    torch.set_float32_matmul_precision("high")
    try:
        metrics = train(cfg)
    except SIGTERMException:  # stopped by a signal, state saved by semseg.callbacks.preemption
        sys.exit(INTERRUPTED_EXIT_STATUS)
    value = metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    log.info("%s = %s", cfg.get("optimized_metric"), value)
    return value


if __name__ == "__main__":
    main()
