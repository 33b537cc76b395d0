"""Checks that run before Hydra creates the run folder, so bad paths fail before any work."""

import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def check_writable(folder: str | Path, key: str) -> str | None:
    """None if files can be created under `folder`, else a message naming `key`."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot write to {key}={folder} ({error.strerror or error}). Pass a writable folder, e.g. {key}=/tmp/semseg-logs."
    return None


class CheckLogDir(Callback):
    """Refuse to start when the log folder cannot be written (one clear line, exit status 2)."""

    def _check(self, config: DictConfig) -> None:
        problem = check_writable(config.paths.log_dir, "paths.log_dir")
        if problem:
            print(f"semseg: error: {problem}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)
