"""Config options kept under an old name: they compose to the same config as the new one, and
choosing one logs one warning line naming the new name.

The Hydra callback `WarnDeprecatedOptions` (configs/hydra/default.yaml) calls
`warn_deprecated_choices` when a job starts, so every entry point warns without code of its own.
"""

import logging
from collections.abc import Mapping

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback

log = logging.getLogger("semseg")

# group -> {old option: new option}; the old option's config file only extends the new one
RENAMED = {"model": {"sliding_window": "patch_classifier"}}


def deprecated_choices(choices: Mapping[str, str | None]) -> list[str]:
    """The warnings for the renamed options among a run's `hydra.runtime.choices`."""
    return [
        f"{group}={old} is deprecated: use {group}={new} (the same config)"
        for group, renamed in RENAMED.items()
        for old, new in renamed.items()
        if choices.get(group) == old
    ]


def warn_deprecated_choices() -> list[str]:
    """Log a warning line for each renamed option the current Hydra run chose; return them."""
    messages = deprecated_choices(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else []
    for message in messages:
        log.warning(message)
    return messages


class WarnDeprecatedOptions(Callback):
    """Hydra callback: warn about renamed options when a job starts (every job of a multirun)."""

    def on_job_start(self, config, **kwargs) -> None:
        warn_deprecated_choices()
