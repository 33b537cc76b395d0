"""Small JSON caches of what is counted from a dataset's files (class counts, band statistics).

A cache file is named by a hash of what the result depends on, the files' bytes included, so any
change to them counts again, also a rewrite that keeps a file's size and time. A cache file that
cannot be read or does not fit is counted afresh with a warning; a cache folder that cannot be
written only costs the counting next time.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from semseg.utils.atomic import replaced_atomically


def content_key(header: str, paths: Iterable[str | Path]) -> str:
    """A hash of `header` (settings) and every file's resolved path and bytes."""
    digest = hashlib.sha256(f"{header}\n".encode())
    for path in paths:
        with open(path, "rb") as file:
            content = hashlib.file_digest(file, "blake2b").hexdigest()
        digest.update(f"{Path(path).resolve()}\t{content}\n".encode())
    return digest.hexdigest()[:32]


def read_json_cache(cache: Path, fits: Callable[[object], bool], unfit: str, found: str, log: logging.Logger) -> dict | None:
    """The cached content, or None (logging `unfit` to the caller's `log`) when the file is
    unreadable or `fits` refuses it."""
    try:
        content = json.loads(cache.read_text())
        usable = fits(content)
    except (OSError, ValueError):
        usable = False
    if not usable:
        log.warning(unfit, cache)
        return None
    log.info(found, cache)
    return content


def write_json_cache(cache: Path, content: dict, unwritable: str, log: logging.Logger) -> None:
    """Write the cache whole or not at all; `unwritable` (with the path and the error) is logged on failure."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(cache) as file:
            file.write(json.dumps(content).encode())
    except OSError as error:
        log.warning(unwritable, cache, error)
