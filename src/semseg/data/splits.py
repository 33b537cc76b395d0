"""Train/val/test splits for a dataset that comes as one folder: by fractions, or by list files.

`data.split_fractions={train: 0.8, val: 0.2}` orders the item names by the SHA-256 of
`"<data.split_seed>:<name>"` and cuts that order into consecutive runs of round(n × fraction)
items, the last split taking the rest. The hash depends on nothing but the seed and the name, so
every run on every machine gets the same split whatever order the file system lists files in, and
adding images keeps the old ones in their order (only those near a cut can change split).
The seed is its own key, not the training `seed`: trying another training seed must not reshuffle
the validation set (set `data.split_seed=${seed}` to tie them on purpose).

`data.split_files={train: train.txt, val: val.txt}` reads the names from files instead, one a
line, as VOC's ImageSets lists do.

data=folder, data=coco (one COCO JSON) and data=labelme (one folder of files) split alike: the
checks and the selection below are shared, so the keys, the order and the messages are the same.
"""

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from semseg.data.io import IMAGE_SUFFIXES
from semseg.errors import SemsegError, listed

log = logging.getLogger(__name__)

TOLERANCE = 1e-6


def not_a_mapping(key: str, value, example: str) -> SemsegError:
    """The error for a setting that should be a {name: value} mapping. A string such as
    'train:0.8' is what the shell's brace expansion leaves of an unquoted {train:0.8,val:0.2}."""
    shell = (" (the shell turned an unquoted {a,b} into two words: quote it, '" + example + "')"
             if isinstance(value, str) and ":" in value else "")
    return SemsegError(f"{key}={value!r} must be a mapping, e.g. {example}{shell}.")


def check_fractions(fractions) -> dict[str, float]:
    """`data.split_fractions` as {split: fraction}, refused unless every fraction is in (0, 1] and they sum to 1."""
    example = "e.g. data.split_fractions={train:0.8,val:0.2}"
    if not isinstance(fractions, Mapping) or not fractions:
        raise not_a_mapping("data.split_fractions", fractions, "data.split_fractions={train:0.8,val:0.2}")
    checked = {}
    for split, fraction in fractions.items():
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise SemsegError(
                f"data.split_fractions.{split}={fraction!r} must be a fraction in (0, 1], {example}."
            )
        checked[str(split)] = float(fraction)
    if abs(sum(checked.values()) - 1) > TOLERANCE:
        raise SemsegError(
            f"data.split_fractions={checked} sums to {sum(checked.values()):g}; the fractions must sum to 1, {example}."
        )
    return checked


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SemsegError(f"data.split_seed={seed!r} must be an integer, e.g. data.split_seed=0.")
    return seed


def hash_order(names: Sequence[str], seed: int) -> list[str]:
    """The names in the order of the SHA-256 of `"<seed>:<name>"` (never Python's per-process hash())."""
    return sorted(names, key=lambda name: (hashlib.sha256(f"{seed}:{name}".encode()).hexdigest(), name))


def assign_fractions(names: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, list[str]]:
    """{split: its names, sorted}: consecutive runs of the hash order, round(n × fraction) long, the
    last split taking the rest. A split left empty is refused, since training or scoring on
    nothing would only fail later and less clearly."""
    order = hash_order(names, seed)
    splits, start = {}, 0
    keys = list(fractions)
    for number, split in enumerate(keys):
        count = len(order) - start if number == len(keys) - 1 else round(len(order) * fractions[split])
        if count <= 0:
            raise SemsegError(
                f"data.split_fractions={dict(fractions)} gives split '{split}' no items of the {len(order)} "
                "found; add images or give it a larger fraction."
            )
        splits[split] = sorted(order[start : start + count])
        start += count
    return splits


def read_split_file(path: Path, key: str) -> list[str]:
    """The names a split file lists, one a line; blank lines and lines starting with `#` are skipped."""
    if not path.is_file():
        raise SemsegError(f"{key} names {path}, which is not a file; give a list file relative to data.root.")
    lines = (line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines())
    names = [line for line in lines if line and not line.startswith("#")]
    if not names:
        raise SemsegError(f"{key}: {path} lists no names; write one item name a line.")
    return list(dict.fromkeys(names))


def match_names(entries: Sequence[str], names: Sequence[str], path: Path, folder: Path,
                suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[str]:
    """Item names for the entries of a split file: an entry is an item name (the image's path under
    data.image_dir without extension, `/`-separated), with or without the image's extension (one
    of `suffixes`: data=labelme's entries may end in `.json` too)."""
    known = set(names)
    found, unknown = [], []
    for entry in entries:
        name = entry.replace("\\", "/").removeprefix("./")
        if name not in known and Path(name).suffix.lower() in suffixes:
            name = name[: -len(Path(name).suffix)]
        if name in known:
            found.append(name)
        else:
            unknown.append(entry)
    if unknown:
        raise SemsegError(
            f"{len(unknown)} name(s) in {path} have no image in {folder}: {listed(unknown)}. An entry is an "
            f"image's path under data.image_dir, with or without its extension (e.g. {names[0] if names else 'a/b'})."
        )
    return list(dict.fromkeys(found))


@rank_zero_only
def write_split_lists(lists: Mapping[str, Sequence[str]], folder: str | Path) -> None:
    """`<folder>/<split>.txt`, one name a line: the split as used, to read back or to pin it with data.split_files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in lists.items():
        (folder / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    log.info("split lists (%s) written to %s", ", ".join(f"{s}: {len(n)}" for s, n in lists.items()), folder)


# ---- shared by the readers of one source (data=coco's one JSON, data=labelme's one folder) ------


def check_one_source(fractions, files, templates: Mapping[str, str]) -> None:
    """One folder split by fractions cannot also have a folder per split, nor list files besides
    (data=folder's rule, for any reader: `templates` are its {key: template} settings)."""
    if fractions and files:
        raise SemsegError("data.split_fractions and data.split_files are both set; keep one (the other =null).")
    if fractions:
        for key, template in templates.items():
            if "{split}" in template:
                raise SemsegError(
                    f"data.split_fractions splits one folder, but {key}={template} has a folder per split; "
                    f"set {key} to the one folder, e.g. "
                    f"{key}={template.replace('/{split}', '').replace('{split}', '.')}."
                )
    if files is not None and not isinstance(files, Mapping):
        raise not_a_mapping("data.split_files", files, "data.split_files={train:train.txt,val:val.txt}")


def split_options(fractions, seed, files, templates: Mapping[str, str]) -> tuple[dict | None, int, dict | None]:
    """`data.split_fractions`, `data.split_seed`, `data.split_files` checked, as plain dicts (or None)."""
    fractions = dict(fractions) if isinstance(fractions, Mapping) else fractions
    files = dict(files) if isinstance(files, Mapping) else files
    check_one_source(fractions, files, templates)
    return (check_fractions(fractions) if fractions else None), check_seed(seed), (files or None)


def first_available(names: str | Sequence[str], available: Callable[[str], bool]) -> str:
    """A `data.splits` entry: a split name, or candidates of which the first available is taken
    (the first candidate when none is, so that the dataset names what is missing)."""
    if isinstance(names, str):
        return names
    names = list(names)
    return next((name for name in names if available(name)), names[0])


def check_stages(chosen: Mapping[str, str], fractions: Mapping | None) -> None:
    """With split_fractions every stage must read one of its splits, and a split no stage reads is
    worth a warning (a test fraction while data.splits.test is still val)."""
    if not fractions:
        return
    unknown = {stage: name for stage, name in chosen.items() if name not in fractions}
    if unknown:
        stage, name = next(iter(unknown.items()))
        raise SemsegError(
            f"data.splits.{stage}={name} is not one of the splits of data.split_fractions {list(fractions)}; "
            f"set data.splits.{stage} to one of them."
        )
    for name in fractions:
        if name not in chosen.values():
            log.warning("data.split_fractions gives split '%s' a share of the images, but no stage reads it "
                        "(data.splits=%s); e.g. data.splits.test=%s", name, dict(chosen), name)


def unique_names(names: Sequence[str], what: Sequence) -> None:
    """Item names that a split assigns must name one item each; `what` says what each one is."""
    first: dict[str, object] = {}
    for name, item in zip(names, what):
        if name in first:
            raise SemsegError(
                f"{first[name]} and {item} have the same item name '{name}' (path without extension), so a "
                "split cannot tell them apart. Keep one of them, or rename one."
            )
        first[name] = item


def select_split(names: Sequence[str], split: str, fractions: Mapping[str, float] | None, seed: int,
                 files: Mapping[str, str] | None, root: Path, folder: Path,
                 suffixes: Sequence[str] = IMAGE_SUFFIXES) -> tuple[list[str], dict | None]:
    """The names of `split` (in the order of `names`), and with fractions every split's lists.

    Without fractions or files the split is the whole source. With fractions: the split's run of
    the hash order (assign_fractions); with files: the names its list file gives (match_names).
    """
    if fractions:
        if split not in fractions:
            raise SemsegError(
                f"split '{split}' is not one of data.split_fractions {sorted(fractions)}; set data.splits "
                f"to those names, e.g. data.splits={{train:{list(fractions)[0]},val:{list(fractions)[-1]}}}."
            )
        lists = assign_fractions(names, fractions, seed)
        chosen = set(lists[split])
        return [name for name in names if name in chosen], lists
    if files:
        if split not in files:
            raise SemsegError(
                f"split '{split}' has no list file in data.split_files (it has {sorted(files)}); "
                f"add data.split_files.{split}=<file> or set data.splits to those names."
            )
        path = root / str(files[split])
        chosen = set(match_names(read_split_file(path, f"data.split_files.{split}"), names, path, folder, suffixes))
        return [name for name in names if name in chosen], None
    return list(names), None


class WritesSplitLists:
    """A data module mixin: `prepare_data` writes the split lists of data.split_fractions to
    `splits_dir` (the run folder's `splits/`), once, on rank 0, never beside the data. The class
    using it sets `split_fractions`, `splits_dir` and a `dataset(split=...)` whose instances
    carry `split_lists`, as data=folder does."""

    split_fractions: Mapping[str, float] | None = None
    splits_dir: str | None = None
    lists_written = False

    def prepare_data(self) -> None:
        super().prepare_data()
        if self.split_fractions and self.splits_dir and not self.lists_written:
            first = next(iter(self.split_fractions))
            write_split_lists(self.dataset(split=first).split_lists, self.splits_dir)
            self.lists_written = True
