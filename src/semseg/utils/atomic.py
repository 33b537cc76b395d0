"""Files that take their place only once written whole."""

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` when the block ends without an error.

    It is a temporary file in the same folder, flushed to disk, then renamed over `path`: a rename
    within one folder is atomic, so readers see the old file or the new one, never half of either,
    and a crash, a kill or a full disk mid-write keeps the old file. On an error the temporary
    file is removed. The new file gets the usual permissions (the umask's), like a plain write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
