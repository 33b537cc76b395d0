"""The command line's face: refuse an unknown config option or an override Hydra cannot parse
before Hydra composes the config, and turn a user's mistake into one `semseg: error:` line.

Every `python -m semseg.*` Hydra main is wrapped as
`@refuse_unknown_options @hydra.main(...) @report_user_errors`.
"""

import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, ValueType
from hydra.errors import OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError, InterpolationToMissingValueError, MissingMandatoryValue

from semseg.errors import SemsegError
from semseg.utils.config import CONFIG_DIR, config_options
from semseg.utils.run_info import in_multirun


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
            if not isinstance(choice, str):
                continue
            options = ", ".join(config_options(group, config_dir))
            if not (folder / f"{choice}.yaml").is_file():
                return f"{group}={choice}: there is no config {group}/{choice}.yaml; choose one of {options}."
            if choice.startswith("_"):
                return f"{group}={choice}: {group}/{choice}.yaml is a base other configs extend, not an option; choose one of {options}."
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
