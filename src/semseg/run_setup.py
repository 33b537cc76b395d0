"""The run set-up: every check and rewrite of a config before anything is built.

The one writer of the config, in one order, so that what a run logs and stores is the config it
ran with. Helpers elsewhere (loggers, resume, class weights, normalisation) return values; this
module writes them. `set_up_run` serves training, `set_up_eval` eval, predict and export.
"""

import functools
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from semseg.checkpoints.resume import check_same_model, checkpoint_to_resume
from semseg.data.band_statistics import band_statistics
from semseg.data.class_frequency import class_weights_for_run
from semseg.data.normalization import settle_normalization, stored_normalization
from semseg.errors import SemsegError
from semseg.launch import check_batch_split, check_devices, strategy_for
from semseg.loggers import check_wandb_settings, multirun_wandb_names, resumed_wandb_run, use_run_dir
from semseg.utils.config import instantiate
from semseg.utils.number_settings import check_numbers

log = logging.getLogger(__name__)

LR_RULES = {"none": lambda ratio: 1.0, "linear": lambda ratio: ratio, "sqrt": math.sqrt}


def set_up_run(cfg: DictConfig) -> str | None:
    """Check `cfg` and rewrite it for this run; return the checkpoint to resume from, or None.

    Writes, in this order:
      1. `logger.wandb.group`, `logger.wandb.name`: a multirun's jobs grouped in W&B;
      2. `model.optimizer.lr`: scaled by `lr_scaling` (before the resume check, which compares
         the model config with the checkpoint's, scaled the same way when it was trained);
      3. `model.loss[.ce].class_weights`: `median_frequency` becomes numbers, the ones the
         checkpoint's run counted when resuming, else counted from the train split;
      4. `data.mean`, `data.std`: checked, and for images of other than 3 bands given none, the
         train split's per-band statistics (semseg.data.normalization);
      5. when resuming, `logger.wandb.id`, `logger.wandb.resume`: the run continues its W&B run;
      6. `trainer.strategy`: `ddp` becomes `ddp_spawn` inside a multirun;
    and the environment's `WANDB_DIR` (the run folder).
    """
    check_numbers(cfg)
    check_devices(cfg.trainer)
    check_batch_split(cfg.data.batch_size, cfg.trainer)
    check_wandb_settings(cfg)
    write(cfg, multirun_wandb_names(cfg))
    scale_learning_rate(cfg)
    resume = checkpoint_to_resume(cfg)
    trained = resume[1]["model_config"] if resume else None
    data, cache_dir = functools.cache(lambda: data_for_counting(cfg)), Path(cfg.paths.data_dir) / ".cache"
    write(cfg.model, class_weights_for_run(model_config(cfg), data, cache_dir, trained), prefix="model.")
    write(cfg, {f"data.{key}": value for key, value in settle_normalization(
        cfg.data, prefix="data.", in_channels=cfg.data.get("in_channels", 3),
        band_statistics=lambda: band_statistics(data(), cache_dir)).items()})
    if resume is not None:
        check_same_model(resume[0], trained, model_config(cfg))
        write(cfg, resumed_wandb_run(cfg, resume[1].get("wandb_id")))
    strategy = strategy_for(cfg.trainer)
    if strategy:
        log.info("multirun: trainer.strategy=%s runs as %s, one launch per job", cfg.trainer.strategy, strategy)
        write(cfg, {"trainer.strategy": strategy})
    use_run_dir(cfg)
    return resume[0] if resume else None


def set_up_eval(cfg: DictConfig, meta: Mapping, normalization_keys: str = "data.") -> None:
    """Check and rewrite the config of eval, predict or export for the checkpoint `meta` describes.

    Writes the input normalisation (`data.mean` / `data.std` for eval, `mean` / `std` for predict:
    `normalization_keys`): values the config gives win, with a warning when they differ from the
    checkpoint's, else the checkpoint's; for eval also W&B's multirun names and `WANDB_DIR`.
    """
    check_numbers(cfg)
    if "trainer" in cfg:
        check_devices(cfg.trainer)
    if "data" in cfg:
        check_same_bands(cfg.data, meta)
    node = OmegaConf.select(cfg, normalization_keys.rstrip(".")) if normalization_keys != "" else cfg
    given = {key: node.get(key) for key in ("mean", "std")}
    settled = settle_normalization(given, meta, prefix=normalization_keys)
    trained = stored_normalization(meta)
    for key, value in given.items():
        if value is not None and settled[key] != trained[key]:
            log.warning("%s%s=%s given: the checkpoint was trained with %s", normalization_keys, key, value, trained[key])
    write(cfg, {f"{normalization_keys}{key}": value for key, value in settled.items()})
    check_wandb_settings(cfg)
    write(cfg, multirun_wandb_names(cfg))
    if "logger" in cfg:
        use_run_dir(cfg)


def check_same_bands(data: DictConfig, meta: Mapping) -> None:
    """Eval reads its data with the band count the model was trained on (3 for older checkpoints)."""
    trained, configured = meta.get("in_channels") or 3, data.get("in_channels", 3)
    if trained != configured:
        bands = f" data.bands=[{','.join(str(b) for b in meta['bands'])}]" if meta.get("bands") else ""
        raise SemsegError(
            f"the checkpoint's model takes {trained}-band images but data.in_channels={configured}; "
            f"read the data as in training: data.in_channels={trained}{bands}."
        )


def write(cfg: DictConfig, values: Mapping, prefix: str = "") -> None:
    """Set dotted keys (`logger.wandb.name`) of `cfg`; `prefix` is stripped from them first."""
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key.removeprefix(prefix), value, merge=False)


def model_config(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.model, resolve=True)


def data_for_counting(cfg: DictConfig):
    """The datamodule, its data prepared, without its transforms (nothing counted needs them)."""
    datamodule = instantiate(cfg.data, train_transform=None, eval_transform=None)
    datamodule.prepare_data()
    return datamodule


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
    write(cfg, {"model.optimizer.lr": float(cfg.model.optimizer.lr) * factor})
    log.info("lr_scaling.rule=%s: model.optimizer.lr scaled by %.4g to %.4g", rule, factor, cfg.model.optimizer.lr)
