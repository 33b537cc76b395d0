"""`data.verify=true`: read and check every image/mask pair of a split before training starts.

A file that cannot be used (truncated, the wrong size, a value that is no class) otherwise stops
a run when the loader first reaches it, maybe hours in. Verifying reads every pair once through
the dataset's own checks (in `data.num_workers` processes) and reports all problems at once.
"""

import logging
import time

from torch.utils.data import DataLoader, Dataset

from semseg.errors import SemsegError

log = logging.getLogger(__name__)
SHOWN = 3


class _Problems(Dataset):
    """Item i: None if pair i loads and passes its checks, else the problem."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> str | None:
        try:
            self.dataset.load(index)
        except SemsegError as error:
            return str(error)
        except Exception as error:  # anything else a reader trips over is a problem of this file too
            return f"{self.dataset.image_paths[index]}: {type(error).__name__}: {error}"
        return None


def _as_is(item):
    return item


def verify_files(dataset, split: str, num_workers: int = 0) -> None:
    """Raise one SemsegError naming the problems of a split's files, if it has any."""
    started = time.perf_counter()
    loader = DataLoader(_Problems(dataset), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    problems = [problem for problem in loader if problem]
    if problems:
        shown = " | ".join(problems[:SHOWN])
        more = f" (and {len(problems) - SHOWN} more: `python -m semseg.data.inspect` lists them all)" if len(problems) > SHOWN else ""
        raise SemsegError(f"data.verify: {len(problems)} of {len(dataset)} pairs of split '{split}' cannot be used: {shown}{more}")
    log.info("data.verify: the %d pairs of split '%s' are fine (%.1f s)", len(dataset), split, time.perf_counter() - started)
