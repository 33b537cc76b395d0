"""The data description a checkpoint or an exported ONNX file carries, checked as untrusted data.

Class names, normalisation, palette and output stride come from a file anyone may have made;
predict, eval and export use them as numbers and names, so each is checked for its type, length
and range before use: a malformed file is one `semseg: error:` line, not a traceback from numpy
or albumentations, and never a silently different preprocessing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from semseg.errors import SemsegError

MAX_CLASSES = 255  # 255 is the ignore index
MAX_NAME_LENGTH = 200
MAX_OUTPUT_STRIDE = 1024
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_description(meta: dict, source: str | Path, channels: int | None = None) -> None:
    """Refuse a description whose entries are not what semseg writes (see the module docstring).

    `channels` is the number of input channels, the length `mean` and `std` must have (None: the
    description's own `in_channels`, 3 when it has none).
    """
    bad = _bands_problem(meta)
    if not bad and channels is not None and meta.get("in_channels", channels) != channels:
        bad = f"in_channels={meta['in_channels']} differs from the {channels} input channels of its network"
    if not bad:
        bad = _problem(meta, channels if channels is not None else meta.get("in_channels") or 3)
    if bad:
        raise SemsegError(f"{source}: its stored {bad}; it was not written by this semseg. Re-export or retrain it.")


def _problem(meta: dict, channels: int) -> str | None:
    names = meta.get("class_names")
    if not isinstance(names, (list, tuple)) or not 1 <= len(names) <= MAX_CLASSES:
        return f"class_names must be a list of 1 to {MAX_CLASSES} names (got {_shown(names)})"
    if not all(isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH for name in names):
        return f"class_names must be names of 1 to {MAX_NAME_LENGTH} characters (got {_shown(names)})"
    if "num_classes" in meta and (not _is_int(meta["num_classes"]) or meta["num_classes"] != len(names)):
        return f"num_classes={_shown(meta['num_classes'])} does not match its {len(names)} class_names"
    for key in ("mean", "std"):
        problem = _statistics_problem(key, meta.get(key), channels)
        if problem:
            return problem
    palette = meta.get("palette")
    if palette is not None and not (
        isinstance(palette, (list, tuple)) and len(palette) <= 256 and all(_is_colour(colour) for colour in palette)
    ):
        return f"palette must be a list of at most 256 [r, g, b] colours of 0..255 (got {_shown(palette)})"
    stride = meta.get("output_stride", 1)
    if not _is_int(stride) or not 1 <= stride <= MAX_OUTPUT_STRIDE:
        return f"output_stride must be an integer of 1..{MAX_OUTPUT_STRIDE} (got {_shown(stride)})"
    run_id = meta.get("wandb_id")
    if run_id is not None and not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id)):
        return f"wandb_id must be a W&B run id (letters, digits, - and _; got {_shown(run_id)})"
    return None


MAX_BANDS = 1024


def _bands_problem(meta: dict) -> str | None:
    """in_channels, bands, nodata and rgb_bands: how the images were read (semseg.data.bands)."""
    channels = meta.get("in_channels")
    if channels is None:
        return None
    if not _is_int(channels) or not 1 <= channels <= MAX_BANDS:
        return f"in_channels must be an integer of 1..{MAX_BANDS} (got {_shown(channels)})"
    bands = meta.get("bands")
    if bands is not None and not (isinstance(bands, list) and len(bands) == channels and all(_is_int(b) and 0 <= b < 65536 for b in bands)):
        return f"bands must be {channels} band indices (got {_shown(bands)})"
    nodata = meta.get("nodata")
    if nodata is not None and not (isinstance(nodata, (int, float)) and not isinstance(nodata, bool)):
        return f"nodata must be a number (got {_shown(nodata)})"
    rgb = meta.get("rgb_bands")
    if rgb is not None and not (isinstance(rgb, list) and len(rgb) == 3 and all(_is_int(b) and 0 <= b < channels for b in rgb)):
        return f"rgb_bands must be 3 indices of its {channels} bands (got {_shown(rgb)})"
    return None


def _statistics_problem(key: str, values, channels: int) -> str | None:
    if values is None:
        return None
    if not isinstance(values, (list, tuple)) or len(values) != channels or not all(_is_number(v) for v in values):
        return f"{key} must be {channels} numbers, one per input channel (got {_shown(values)})"
    if key == "std" and not all(v > 0 for v in values):
        return f"std must be positive (got {_shown(values)})"
    return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_colour(colour) -> bool:
    return isinstance(colour, (list, tuple)) and len(colour) == 3 and all(_is_int(c) and 0 <= c <= 255 for c in colour)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
