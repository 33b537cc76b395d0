"""Accuracy against wall-clock time: val mIoU over the minutes of training, for runs side by side.

    python -m semseg.bench.time_to_accuracy before=logs/train/runs/A after=logs/train/runs/B \\
        --output bench/results/camvid_time_to_accuracy.png

Each NAME=PATH is a run folder (its CSV log, `csv/metrics.csv`, is found under it) or a
metrics.csv itself. The rows that have both the metric and `time/wall_min` (logged at every
validation by the WallClock callback) become one curve per run; the PNG shows them, and a markdown
table (printed, and written beside the PNG) gives each run's best value, when it was reached, and
when the run first reached the lowest of the runs' best values, so "as good, sooner" reads off it.
"""

import argparse
import csv
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from semseg.bench.timing import markdown_table  # noqa: E402
from semseg.callbacks.wall_clock import WALL_MIN_KEY  # noqa: E402
from semseg.errors import SemsegError  # noqa: E402


def metrics_file(path: Path) -> Path:
    """The metrics.csv a NAME=PATH argument means: the file itself, or the one under a run folder."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise SemsegError(f"{path}: no such run folder or metrics.csv; give a run folder of semseg.train.")
    found = sorted(path.rglob("metrics.csv"))
    if len(found) != 1:
        which = "none" if not found else ", ".join(str(f) for f in found)
        raise SemsegError(f"{path}: expected one metrics.csv under it (logger=csv), found {which}; "
                          "give the file itself.")
    return found[0]


def read_curve(path: Path, metric: str) -> list[tuple[float, float]]:
    """(minutes, value) of every CSV row holding both `time/wall_min` and `metric`, in time order."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        for key in (WALL_MIN_KEY, metric):
            if key not in columns:
                raise SemsegError(f"{path}: no column '{key}' (its columns: {', '.join(columns)}); "
                                  f"{WALL_MIN_KEY} comes from callbacks.wall_clock, on by default in semseg.train.")
        points = []
        for row in reader:
            minutes, value = _number(row.get(WALL_MIN_KEY)), _number(row.get(metric))
            if minutes is not None and value is not None:
                points.append((minutes, value))
    if not points:
        raise SemsegError(f"{path}: no row holds both {WALL_MIN_KEY} and {metric}; did the run validate?")
    return sorted(points)


def _number(text: str | None) -> float | None:
    """A finite float from a CSV cell, None for an empty or unreadable one."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def best_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(minute, value) of the highest value, the earliest of equal ones."""
    return max(points, key=lambda point: (point[1], -point[0]))


def summary(curves: dict[str, list[tuple[float, float]]], metric: str) -> str:
    """A markdown table: each run's best value and its minute, and its first minute at the common target."""
    target = min(best_point(points)[1] for points in curves.values())
    rows = []
    for name, points in curves.items():
        best_minute, best = best_point(points)
        reached = next(minute for minute, value in points if value >= target)
        rows.append([name, f"{best:.3f}", f"{best_minute:.1f}", f"{reached:.1f}", f"{points[-1][0]:.1f}"])
    return markdown_table(["run", f"best {metric}", "at minute", f"first ≥ {target:.3f} at minute",
                           "last validation at minute"], rows)


def draw(curves: dict[str, list[tuple[float, float]]], metric: str, output: Path) -> None:
    """One line per run, value against minutes, each run's best marked."""
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, points in curves.items():
        minutes, values = zip(*points)
        line, = axes.plot(minutes, values, marker="o", markersize=3, label=name)
        best_minute, best = best_point(points)
        axes.annotate(f"{best:.3f}", (best_minute, best), textcoords="offset points", xytext=(0, 6),
                      ha="center", fontsize=8, color=line.get_color())
    axes.margins(y=0.1)  # room for the labels of the best points
    axes.set_xlabel("wall-clock minutes since training started")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=PATH", help="a run folder or metrics.csv, named")
    parser.add_argument("--metric", default="val/mIoU", help="the column to draw (default val/mIoU)")
    parser.add_argument("--output", type=Path, default=Path("time_to_accuracy.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    try:
        curves = {}
        for run in args.runs:
            name, separator, path = run.partition("=")
            if not separator or not name or not path:
                raise SemsegError(f"'{run}': write each run as NAME=PATH, e.g. before=logs/train/runs/2026-12-02_10-00-00.")
            curves[name] = read_curve(metrics_file(Path(path)), args.metric)
    except SemsegError as error:
        print(f"semseg: error: {error}", file=sys.stderr)
        return 2
    draw(curves, args.metric, args.output)
    table = summary(curves, args.metric)
    args.output.with_suffix(".md").write_text(table + "\n")
    print(table + f"\n\nwritten to {args.output} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
