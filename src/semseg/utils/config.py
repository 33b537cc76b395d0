"""Small helpers the entry points share: instantiate lists, print the config, fail clearly."""

import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
import rich.syntax
import rich.tree
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, ValueType
from hydra.errors import OverrideParseException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationResolutionError, InterpolationToMissingValueError, MissingMandatoryValue

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


def resolver_message(error: Exception) -> str | None:
    """The message of a SemsegError a config resolver raised (OmegaConf wraps it, keeping only its
    text), else None."""
    found = re.search(r"SemsegError raised while resolving interpolation: (.*?)(\n\s*full_key|$)", str(error), re.S)
    return found.group(1).strip() if found else None


def report_user_errors(main: Callable) -> Callable:
    """Turn a SemsegError, or a required key left unset, into one clear line on stderr and exit
    status 2, not a traceback.

    In a multirun the error is re-raised so Hydra records the failed job and goes on.
    """

    @functools.wraps(main)
    def wrapper(cfg: DictConfig):
        try:
            return main(cfg)
        except (SemsegError, MissingMandatoryValue, InterpolationToMissingValueError, InterpolationResolutionError) as error:
            if isinstance(error, SemsegError):
                message = one_line(error)
            elif isinstance(error, (MissingMandatoryValue, InterpolationToMissingValueError)):
                message = missing_value_message(error)
            else:
                message = resolver_message(error)
            if in_multirun() or message is None:
                raise
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


def unknown_option(overrides: list[str], config_dir: Path = Path(CONFIG_DIR)) -> str | None:
    """The message for a `group=option` override whose option has no config file, else None.

    Only groups of the project's own config folder are checked (not `hydra/...`, whose options
    come from plugins too); anything the parser does not take is left to Hydra.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:
        return None
    for override in parsed:
        group = override.key_or_group
        folder = config_dir / group
        if override.is_delete() or group.startswith("hydra") or not folder.is_dir():
            continue
        value = override.value()
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        choices = list(value.list) if isinstance(value, ChoiceSweep) else value if isinstance(value, list) else [value]
        for choice in choices:
            if isinstance(choice, str) and not (folder / f"{choice}.yaml").is_file():
                options = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
                return f"{group}={choice}: there is no config {group}/{choice}.yaml; choose one of {options}."
    return None


QUOTED_KEYS = ("data.pair_key",)  # values (regular expressions) Hydra's grammar rarely takes unquoted


def template_hint(overrides: Sequence[str]) -> str | None:
    """The fix for a command-line override Hydra cannot parse because of a `{split}` template or a
    `data.pair_key` expression in it, else None.

    Hydra's override grammar reads `{...}` as a dictionary and `(`, `^`, `\\` as its own syntax, so
    `data.image_dir={split}/images` or `data.pair_key=^(\\d+)_` is a parse error ("no viable
    alternative at input '{split}'") that names neither the cause nor the fix. Entry points call
    this on their raw overrides before Hydra parses them.
    """
    parser = OverridesParser.create()
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or ("{split}" not in value and key.lstrip("+~") not in QUOTED_KEYS):
            continue
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            inner, outer = ('"', "'") if '"' not in value else ("'", '"')
            what = "reads {...} as a dictionary" if "{split}" in value else "takes no ( ) ^ \\ in a value unquoted"
            return (
                f"{override}: on the command line Hydra {what}; quote the value for Hydra and the "
                f"whole override for the shell: {outer}{key}={inner}{value}{inner}{outer}."
            )
    return None


def refuse_unknown_options(hydra_main: Callable) -> Callable:
    """Before Hydra composes the config, refuse a config-group option that does not exist with one
    `semseg: error:` line listing the options (Hydra's own report spans many lines), and turn an
    override Hydra cannot parse for its `{split}` or regular expression into the quoting that works.

    Searching other config folders (`--config-dir`, `hydra.searchpath`) leaves the check to Hydra.
    """

    @functools.wraps(hydra_main)
    def wrapper(*args, **kwargs):
        if not args and not kwargs:
            arguments = get_args_parser().parse_args()
            searches_elsewhere = arguments.config_dir or any("hydra.searchpath" in o for o in arguments.overrides)
            message = template_hint(arguments.overrides) or (None if searches_elsewhere else unknown_option(arguments.overrides))
            if message:
                print(f"semseg: error: {message}", file=sys.stderr)
                sys.exit(2)
        return hydra_main(*args, **kwargs)

    return wrapper


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
