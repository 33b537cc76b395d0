"""What every benchmark shares: alternate the sides of a comparison, take medians, write markdown.

A shared machine drifts (other jobs, thermal state), so a comparison that ran side A for a minute
and then side B would mostly measure the drift. `alternate` runs the sides in turn, in ABBA
order, and every figure in the report is a median over those turns.
"""

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from torch.utils.flop_counter import FlopCounterMode


def alternate(sides: dict[str, Callable[[], float | list[float]]], rounds: int) -> dict[str, list[float]]:
    """Call every side once per round, order reversed every other round (A B, B A, A B, ...).

    A side returns one sample (seconds) or a list of samples; they are pooled per side.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            result = sides[name]()
            samples[name] += result if isinstance(result, list) else [result]
    return samples


def seconds(run: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None) -> float:
    """Median wall time of `repeats` calls, after one warm-up call (of `warmup` if given)."""
    (warmup or run)()
    return statistics.median(seconds(run) for _ in range(repeats))


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of one call (a multiply-add counts as 2)."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; cells are written with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section(title: str, body: str, notes: Sequence[str] = ()) -> str:
    """One part of the report: a heading, its table, then notes on how it was measured."""
    return "\n\n".join([f"## {title}", body, *notes])


def write_report(text: str, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path
