"""Files that take their place only once written whole: checkpoints, the sweep leaderboard,
annotation caches, class frequencies, ONNX exports."""

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

# `.<name>.<host>.<pid>.<8 hex>.tmp`: the temporary files replaced_atomically writes
_TEMPORARY = re.compile(r"^\..+\.([A-Za-z0-9-]+)\.(\d+)\.[0-9a-f]{8}\.tmp$")


def _host() -> str:
    """This machine's name as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of writes whose process is gone (killed mid-write).

    Only files of replaced_atomically's own naming, written on this machine by a process that no
    longer runs, are touched: a write in progress here, or on another node sharing the folder
    (SLURM jobs writing one leaderboard), keeps its file.
    """
    removed, host = [], _host()
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        found = _TEMPORARY.match(path.name)
        if not found or found.group(1) != host:
            continue
        pid = int(found.group(2))
        if pid != os.getpid() and not _alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def temporary_path(path: Path) -> Path:
    """Where a new `path` is written before it replaces the old one; `remove_stale_temporaries`
    recognises it when its writer was killed."""
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def replaced_by_name(path: str | Path) -> Iterator[Path]:
    """A temporary file name to write, for writers that take a name (`torch.onnx.export`), that
    replaces `path` when the block ends without an error; on an error it is removed and `path`
    stays as it was. Temporaries that a killed process left in the folder are removed first.
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` when the block ends without an error.

    It is a temporary file in the same folder, flushed to disk, then renamed over `path`: a rename
    within one folder is atomic, so readers see the old file or the new one, never half of either,
    and a crash, a kill or a full disk mid-write keeps the old file. On an error the temporary
    file is removed. The new file gets the usual permissions (the umask's), like a plain write.
    Temporaries that a killed process left in the folder are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_by_name(path) as temporary, open(temporary, "xb") as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing through `replaced_atomically`.

    Lightning's own writer truncates the old file before writing the new one, so a crash, a kill
    or a full disk mid-write destroys `last.ckpt`. Remote paths (`s3://...`) go through
    Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with replaced_atomically(path) as file:
            torch.save(checkpoint, file)
