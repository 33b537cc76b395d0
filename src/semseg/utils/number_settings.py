"""Settings that must be numbers: refused with one line before a library trips over them."""

from omegaconf import DictConfig, OmegaConf

from semseg.errors import SemsegError

# settings that must be numbers: key -> (integer?, smallest value, an example)
NUMBERS = {
    "seed": (True, 0, "42"),
    "trainer.max_epochs": (True, -1, "10"),
    "trainer.max_steps": (True, -1, "1000"),
    "data.batch_size": (True, 1, "8"),
    "data.num_workers": (True, 0, "2"),
    "model.optimizer.lr": (False, 0, "0.001"),
    "model.optimizer.weight_decay": (False, 0, "0.0001"),
    "model.optimizer_groups.encoder_lr_mult": (False, 0, "0.1"),
    "model.scheduler.warmup_steps": (True, 0, "500"),
}


def check_numbers(cfg: DictConfig) -> None:
    """Refuse a setting that should be a number but is not, before a library trips over it."""
    for key, (integer, smallest, example) in NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < smallest:
            what = "an integer" if integer else "a number"
            raise SemsegError(f"{key}={value!r} must be {what} of at least {smallest}, e.g. {key}={example}.")
