"""The run set-up: every check and rewrite of a training config before anything is built.

One place, in one order, so that what a run logs and stores is the config it ran with.
"""

import logging
import math

from omegaconf import DictConfig, OmegaConf, open_dict

from semseg.checkpoints.resume import check_same_model, checkpoint_to_resume, counted_class_weights
from semseg.errors import SemsegError
from semseg.launch import check_batch_split, check_devices, strategy_for
from semseg.loggers import continue_wandb_run, name_wandb_runs, use_run_dir
from semseg.utils.number_settings import check_numbers

log = logging.getLogger(__name__)

LR_RULES = {"none": lambda ratio: 1.0, "linear": lambda ratio: ratio, "sqrt": math.sqrt}


def set_up_run(cfg: DictConfig) -> str | None:
    """Check `cfg` and rewrite it for this run; return the checkpoint to resume from, or None.

    Writes, in this order:
      1. `logger.wandb.group`, `logger.wandb.name`: a multirun's jobs grouped in W&B;
      2. `model.optimizer.lr`: scaled by `lr_scaling` (before the resume check, which compares
         the model config with the checkpoint's, scaled the same way when it was trained);
      3. when resuming, `model.loss[.ce].class_weights`: `median_frequency` becomes the numbers
         the checkpoint's run counted; then `logger.wandb.id`, `logger.wandb.resume`: the run
         continues its W&B run;
      4. `trainer.strategy`: `ddp` becomes `ddp_spawn` inside a multirun;
    and the environment's `WANDB_DIR` (the run folder).
    """
    check_numbers(cfg)
    check_devices(cfg.trainer)
    check_batch_split(cfg.data.batch_size, cfg.trainer)
    name_wandb_runs(cfg)
    scale_learning_rate(cfg)
    resume = checkpoint_to_resume(cfg)
    if resume is not None:
        path, meta = resume
        with open_dict(cfg):
            for key, weights in counted_class_weights(model_config(cfg), meta["model_config"]).items():
                OmegaConf.update(cfg.model, key, weights)
        check_same_model(path, meta["model_config"], model_config(cfg))
        continue_wandb_run(cfg, meta.get("wandb_id"))
    strategy = strategy_for(cfg.trainer)
    if strategy:
        log.info("multirun: trainer.strategy=%s runs as %s, one launch per job", cfg.trainer.strategy, strategy)
        with open_dict(cfg):
            cfg.trainer.strategy = strategy
    use_run_dir(cfg)
    return resume[0] if resume else None


def model_config(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.model, resolve=True)


def scale_learning_rate(cfg: DictConfig) -> None:
    """Apply `lr_scaling`: lr × rule(data.batch_size / lr_scaling.base_batch_size).

    `data.batch_size` is the global batch, so the world size alone never changes the lr; a larger
    global batch does, by the linear (Goyal et al., 2017) or square-root rule.
    """
    scaling = cfg.get("lr_scaling") or {}
    rule = str(scaling.get("rule", "none"))
    if rule not in LR_RULES:
        raise SemsegError(f"lr_scaling.rule={rule} is not one of {sorted(LR_RULES)}.")
    if rule == "none":
        return
    factor = LR_RULES[rule](cfg.data.batch_size / scaling.base_batch_size)
    with open_dict(cfg):
        cfg.model.optimizer.lr = float(cfg.model.optimizer.lr) * factor
    log.info("lr_scaling.rule=%s: model.optimizer.lr scaled by %.4g to %.4g", rule, factor, cfg.model.optimizer.lr)
