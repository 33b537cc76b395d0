"""Look at a dataset before training on it: sizes, class shares, and what is wrong with which file.

    python -m semseg.data.inspect data=camvid data.root=/datasets/camvid
    python -m semseg.data.inspect data=folder data.root=/datasets/mine data.class_names=[background,cell]

Per split (each distinct one of `data.splits`): the image count, the histogram of image sizes,
the share of all pixels taken by every class and by ignore (255), and mask values that are no
class. Files that cannot be used (unreadable, image and mask of different sizes, unknown colours)
are listed instead of stopping at the first. A folder whose masks look like ADE20K's (0 unlabelled,
k class k-1) read without `data.reduce_zero_label` gets one warning naming it. Images that are not
8-bit RGB (`data.in_channels` other than 3) also get each band's mean, std, min and max on the 0-1
scale (semseg.data.band_statistics; data.nodata left out), the values for data.mean / data.std.
Writes `sizes.csv`, `classes.csv`, `problems.csv`, `class_frequency.png` (and `bands.csv`) to
`output` (the run folder by default); exits with status 1 when there are problems.
"""

import csv
import logging
import sys
from collections import Counter
from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from semseg.data.band_statistics import KEYS as BAND_KEYS  # noqa: E402
from semseg.data.band_statistics import compute as band_statistics  # noqa: E402
from semseg.data.image_mask_dataset import size_mismatch  # noqa: E402
from semseg.data.io import image_size  # noqa: E402
from semseg.models.net import IGNORE_INDEX  # noqa: E402
from semseg.data.palette import full_palette  # noqa: E402
from semseg.errors import SemsegError  # noqa: E402
from semseg.utils.cli import refuse_unknown_options, report_user_errors  # noqa: E402
from semseg.utils.config import CONFIG_DIR, instantiate  # noqa: E402

log = logging.getLogger("semseg.data.inspect")


class MaskStatistics(Dataset):
    """Item i: the size of image i and the pixel count of each value of its mask, or its problem."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict:
        index = self.indices[position]
        image_path, mask_path = self.dataset.image_paths[index], self.dataset.mask_paths[index]
        try:
            size = image_size(image_path)
            values = self.dataset.read_mask(mask_path)
        except SemsegError as error:
            return {"file": str(mask_path), "problem": str(error)}
        except Exception as error:  # listed like the others, so one odd file does not end the report
            return {"file": str(mask_path), "problem": f"{type(error).__name__}: {error}"}
        if values.shape != size:
            return {"file": str(image_path), "problem": size_mismatch(image_path, size, mask_path, values.shape)}
        return {"file": str(mask_path), "size": size, "counts": np.bincount(values.ravel(), minlength=256).tolist()}


def _as_is(item):
    return item


class SplitReport:
    """What one split holds, summed over its images."""

    def __init__(self, split: str, num_classes: int):
        self.split, self.num_classes = split, num_classes
        self.images = 0
        self.sizes: Counter = Counter()
        self.pixels = np.zeros(256, dtype=np.int64)
        self.images_with = np.zeros(256, dtype=np.int64)
        self.example: dict[int, str] = {}  # a file holding each value that is no class
        self.problems: list[tuple[str, str]] = []
        self.palette = None  # the dataset's own class colours, if it has them
        self.reduce_zero_label = None  # the dataset's setting, where it has the option (data=folder)
        self.raw_values = None  # value -> the raw values in the files that read as it, where known
        self.bands = None  # per-band statistics (band_statistics), for data.in_channels other than 3

    def add(self, item: dict) -> None:
        if "problem" in item:
            self.problems.append((item["file"], item["problem"]))
            return
        counts = np.asarray(item["counts"], dtype=np.int64)
        self.images += 1
        self.sizes[tuple(item["size"])] += 1
        self.pixels += counts
        self.images_with += counts > 0
        for value in self.outside_values(counts):
            self.example.setdefault(value, item["file"])

    def outside_values(self, counts: np.ndarray) -> list[int]:
        return [v for v in np.flatnonzero(counts).tolist() if v >= self.num_classes and v != IGNORE_INDEX]


def inspect_split(datamodule, split: str, num_workers: int, max_images: int | None) -> SplitReport:
    report = SplitReport(split, datamodule.num_classes)
    try:
        dataset = datamodule.dataset(split=split, transform=None)
    except SemsegError as error:
        report.problems.append(("", str(error)))
        return report
    report.palette = getattr(dataset, "palette", None)
    report.reduce_zero_label = getattr(dataset, "reduce_zero_label", None)
    report.raw_values = getattr(dataset, "raw_values", None)
    indices = list(range(len(dataset)))
    if max_images and len(indices) > max_images:
        indices = sorted(set(np.linspace(0, len(indices) - 1, max_images).round().astype(int).tolist()))
    loader = DataLoader(MaskStatistics(dataset, indices), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    for item in loader:
        report.add(item)
    if getattr(dataset, "in_channels", 3) != 3 and not report.problems:
        try:
            report.bands = band_statistics(dataset, num_workers, indices)
        except SemsegError as error:
            report.problems.append(("", str(error)))
    return report


def print_report(report: SplitReport, class_names: list[str], console: Console) -> None:
    console.rule(f"split '{report.split}': {report.images} images")
    sizes = ", ".join(f"{w}x{h} ({n})" for (h, w), n in report.sizes.most_common(8))
    more = len(report.sizes) - 8
    console.print(f"image sizes (width x height): {sizes or 'none'}{f', and {more} other sizes' if more > 0 else ''}")
    table = Table("class", "pixel share", "images with it")
    total = max(int(report.pixels.sum()), 1)
    for index, name in enumerate(class_names):
        table.add_row(f"{index} {name}", f"{report.pixels[index] / total:.2%}", str(report.images_with[index]))
    table.add_row(f"{IGNORE_INDEX} ignore", f"{report.pixels[IGNORE_INDEX] / total:.2%}", str(report.images_with[IGNORE_INDEX]))
    console.print(table)
    if report.bands:
        bands = Table("band", *BAND_KEYS, title="bands on the 0-1 scale (for data.mean / data.std)")
        for band, values in enumerate(zip(*(report.bands[key] for key in BAND_KEYS))):
            bands.add_row(str(band), *(f"{v:.4f}" for v in values))
        console.print(bands)
    for value, example in sorted(report.example.items()):
        raws = report.raw_values(value) if report.raw_values else [value]
        raw = f" (raw {', '.join(map(str, raws))})" if raws != [value] else ""
        console.print(
            f"[red]value {value}{raw} is no class[/red]: {report.pixels[value]} pixels in {report.images_with[value]} "
            f"masks, e.g. {example}. Map it with data.label_map (e.g. ++data.label_map={{{raws[0]}:255}} to ignore it) or add a class."
        )
    for file, problem in report.problems[:10]:
        console.print(f"[red]problem[/red]: {problem}")
    if len(report.problems) > 10:
        console.print(f"[red]and {len(report.problems) - 10} more problems[/red] (problems.csv)")


def zero_label_hint(reports: list[SplitReport], num_classes: int) -> str | None:
    """A warning when the masks hold 0 and the value N with N classes, nothing else above N but
    ignore, read without reduce_zero_label: ADE20K's convention (0 unlabelled, k is class k-1),
    which read as is shifts every class by one and leaves the last as no class."""
    pixels = sum((r.pixels for r in reports if r.reduce_zero_label is False), np.zeros(256, dtype=np.int64))
    above = pixels[num_classes + 1 : IGNORE_INDEX]
    if num_classes >= IGNORE_INDEX or not (pixels[0] and pixels[num_classes]) or above.any():
        return None
    return (
        f"masks hold values 0..{num_classes} with {num_classes} classes: if 0 means unlabelled and value k is class "
        f"k-1 (as in ADE20K), set data.reduce_zero_label=true (0 becomes 255, ignored; k becomes k-1)."
    )


def write_files(reports: list[SplitReport], class_names: list[str], palette, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "sizes.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["split", "width", "height", "images"])
        for report in reports:
            writer.writerows([report.split, w, h, n] for (h, w), n in sorted(report.sizes.items()))
    with open(output / "classes.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["split", "value", "class", "pixels", "share", "images"])
        for report in reports:
            total = max(int(report.pixels.sum()), 1)
            names = {i: name for i, name in enumerate(class_names)} | {IGNORE_INDEX: "ignore"}
            values = list(range(len(class_names))) + sorted(report.example) + [IGNORE_INDEX]
            for value in values:
                writer.writerow([report.split, value, names.get(value, "no class"), int(report.pixels[value]),
                                 f"{report.pixels[value] / total:.6f}", int(report.images_with[value])])
    if any(report.bands for report in reports):
        with open(output / "bands.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["split", "band", *BAND_KEYS])
            for report in reports:
                for band, values in enumerate(zip(*(report.bands[key] for key in BAND_KEYS)) if report.bands else []):
                    writer.writerow([report.split, band, *(f"{v:.6f}" for v in values)])
    with open(output / "problems.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["split", "file", "problem"])
        for report in reports:
            writer.writerows([report.split, f, p] for f, p in report.problems)
    frequency_chart(reports, class_names, palette).savefig(output / "class_frequency.png", dpi=100)
    plt.close("all")


def frequency_chart(reports: list[SplitReport], class_names: list[str], palette):
    """One bar per class and split: the share of the split's labelled pixels, in class colours.

    At most 40 inches wide, labels smaller for many classes: ADE20K's 150 would otherwise make a
    15000-pixel image that takes seconds to draw and no viewer shows whole."""
    colours = full_palette(palette)[: len(class_names)] / 255.0
    width_inches = min(max(6.0, 0.5 * len(class_names) * max(len(reports), 1)), 40.0)
    fig, ax = plt.subplots(figsize=(width_inches, 4))
    width = 0.8 / max(len(reports), 1)
    hatches = ["", "//", "..", "xx"]
    for number, report in enumerate(reports):
        labelled = max(int(report.pixels[: len(class_names)].sum()), 1)
        share = report.pixels[: len(class_names)] / labelled
        positions = np.arange(len(class_names)) + (number - (len(reports) - 1) / 2) * width
        ax.bar(positions, share, width, color=colours, edgecolor="black",
               hatch=hatches[number % len(hatches)], label=report.split)
    ax.set_xticks(np.arange(len(class_names)), class_names, rotation=60, ha="right",
                  fontsize=10 if len(class_names) <= 60 else 6)
    ax.set_ylabel("share of labelled pixels")
    ax.set_title("class frequency" + (f" (bars: {', '.join(r.split for r in reports)})" if len(reports) > 1 else ""))
    if len(reports) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


def inspect_dataset(cfg: DictConfig) -> list[SplitReport]:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    splits = list(dict.fromkeys(datamodule.splits.values()))  # test may be val: once
    reports = [inspect_split(datamodule, split, cfg.data.get("num_workers", 0), cfg.max_images) for split in splits]
    console = Console()
    for report in reports:
        print_report(report, datamodule.class_names, console)
    hint = zero_label_hint(reports, datamodule.num_classes)
    if hint:
        console.print(f"[yellow]warning[/yellow]: {hint}", soft_wrap=True)
    palette = next((p for p in [datamodule.palette, *(r.palette for r in reports)] if p is not None), None)
    write_files(reports, datamodule.class_names, palette, Path(cfg.output))
    written = "sizes.csv, classes.csv, problems.csv, class_frequency.png" + (", bands.csv" if any(r.bands for r in reports) else "")
    console.print(f"written: {written} in {cfg.output}")
    return reports


@refuse_unknown_options
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="inspect.yaml")
@report_user_errors
def main(cfg: DictConfig) -> None:
    reports = inspect_dataset(cfg)
    problems = sum(len(r.problems) + len(r.example) for r in reports)
    if problems:
        print(f"semseg: {problems} problem(s) found; see above and {Path(cfg.output) / 'problems.csv'}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
