"""Small helpers the entry points share: instantiate lists, print the config, fail clearly."""

import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import rich.syntax
import rich.tree
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from semseg.errors import SemsegError
from semseg.utils import resolvers
from semseg.utils.run_info import in_multirun

resolvers.register()

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "configs")


def instantiate_dict(cfg: DictConfig | None) -> list:
    """Instantiate every entry of a dict of configs (callbacks, loggers); None gives []."""
    if not cfg:
        return []
    return [instantiate(entry) for entry in cfg.values() if entry and "_target_" in entry]


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the resolved config as a rich tree (one branch per top-level group); rank 0 only."""
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    first = ["data", "model", "callbacks", "logger", "trainer", "paths"]
    for key in first + [k for k in cfg if k not in first]:
        if key not in cfg:
            continue
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(key).add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as file:
            rich.print(tree, file=file)


def one_line(error: SemsegError) -> str:
    """The message of a SemsegError, also one raised in a DataLoader worker.

    PyTorch re-raises a worker's exception as the same type with the worker's whole traceback as
    its message; the user's fix is in the last line.
    """
    text = str(error)
    if "Original Traceback" in text:
        text = text.rsplit("SemsegError: ", 1)[-1].strip()
    return text


def missing_value_message(error: Exception) -> str:
    """Name the key left at `???` (also when it is reached through an interpolation)."""
    found = re.search(r"Missing mandatory value: ([\w.]+)", str(error))
    key = found.group(1) if found else getattr(error, "full_key", "a key")
    return f"{key} has no value (??? in its config); set it on the command line, e.g. {key}=<value>."


def report_user_errors(main: Callable) -> Callable:
    """Turn a SemsegError, or a required key left unset, into one clear line on stderr and exit
    status 2, not a traceback.

    In a multirun the error is re-raised so Hydra records the failed job and goes on.
    """

    @functools.wraps(main)
    def wrapper(cfg: DictConfig):
        try:
            return main(cfg)
        except (SemsegError, MissingMandatoryValue, InterpolationToMissingValueError) as error:
            if in_multirun():
                raise
            message = one_line(error) if isinstance(error, SemsegError) else missing_value_message(error)
            print(f"semseg: error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper


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


def instantiate(cfg: DictConfig, **kwargs):
    """`hydra.utils.instantiate`, but a SemsegError raised inside a constructor surfaces as is."""
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except hydra.errors.InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SemsegError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def flat_config(cfg: DictConfig) -> dict:
    """The resolved config as flat `a/b/c: value` pairs, the shape loggers display best."""
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def flatten(tree: dict) -> dict:
    """Nested dicts as flat `a/b/c: value` pairs."""
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(tree, "")
    return flat


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config as the entry points do, run folder set to output_dir (tests, notebooks)."""
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra.compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return cfg
