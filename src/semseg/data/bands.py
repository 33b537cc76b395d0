"""The band settings of a dataset (data.in_channels, data.bands, data.nodata, data.rgb_bands),
checked once, and the RGB view of an N-band image for figures and overlays.

`in_channels` is the number of bands the model takes (3 by default, 8-bit RGB as always);
`bands` the 0-based bands of each file to use, in order (null: all of them); `nodata` a value
that marks pixels without data (any selected band equal to it as stored in the file, NaN too):
their mask becomes 255 (ignored) and their bands 0 before transforms, and band statistics leave
them out; `rgb_bands` the three
bands a figure shows as red, green, blue (null: the first three; one band is shown as gray).
"""

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from semseg.errors import SemsegError


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_in_channels(in_channels) -> int:
    if not _is_int(in_channels) or not 1 <= in_channels <= 1024:
        raise SemsegError(
            f"data.in_channels={in_channels!r} must be the number of image bands the model takes, an integer "
            "from 1 (grayscale) up, e.g. data.in_channels=4 for RGB + near infrared; 3 reads 8-bit RGB."
        )
    return int(in_channels)


def check_bands(bands, in_channels: int) -> list[int] | None:
    """`data.bands` as a list of `in_channels` 0-based indices, or None (all of a file's bands)."""
    if bands is None:
        return None
    if isinstance(bands, str) or not isinstance(bands, Sequence) or not all(_is_int(b) and b >= 0 for b in bands):
        raise SemsegError(
            f"data.bands={bands!r} must list 0-based band indices of the image files, in the order the model "
            "takes them, e.g. data.bands=[3,2,1]; null uses every band."
        )
    if len(bands) != in_channels:
        raise SemsegError(
            f"data.bands={list(bands)} selects {len(bands)} band(s) but data.in_channels={in_channels}; "
            f"make them agree (data.in_channels={len(bands)})."
        )
    return [int(b) for b in bands]


def check_nodata(nodata) -> float | None:
    if nodata is None:
        return None
    if isinstance(nodata, bool) or not isinstance(nodata, numbers.Real):
        raise SemsegError(
            f"data.nodata={nodata!r} must be a number (the value of pixels without data, as stored in the "
            "files, e.g. data.nodata=0 or -9999), or null."
        )
    return float(nodata) if not float(nodata).is_integer() else int(nodata)


def rgb_band_indices(in_channels: int, rgb_bands: Sequence[int] | None = None) -> list[int]:
    """The three bands shown as red, green, blue: `rgb_bands`, else the first three, else band 0
    three times (gray) for images of fewer than three bands."""
    if rgb_bands is None:
        return [0, 1, 2] if in_channels >= 3 else [0, 0, 0]
    if (isinstance(rgb_bands, str) or not isinstance(rgb_bands, Sequence) or len(rgb_bands) not in (1, 3)
            or not all(_is_int(b) and 0 <= b < in_channels for b in rgb_bands)):
        raise SemsegError(
            f"data.rgb_bands={rgb_bands!r} must list the 3 bands (0..{in_channels - 1}, after data.bands) "
            "shown as red, green and blue in figures, e.g. data.rgb_bands=[2,1,0], or one band for gray; "
            "null shows the first three."
        )
    return [int(b) for b in rgb_bands] * (3 if len(rgb_bands) == 1 else 1)


def rgb_view(image, rgb_bands: Sequence[int] | None = None):
    """A (C, H, W) image (tensor or array) as its (3, H, W) RGB view: the bands of
    `rgb_band_indices`, of the same type. Values are not rescaled (un-normalise first, or
    select the same bands of mean / std with `rgb_band_indices`)."""
    indices = rgb_band_indices(image.shape[0], rgb_bands)
    if torch.is_tensor(image):
        return image[torch.tensor(indices, device=image.device)]
    return np.ascontiguousarray(np.asarray(image)[indices])


def check_band_options(in_channels, bands, nodata, rgb_bands) -> dict:
    """All four settings checked, as the dataset and DataModule keep them."""
    in_channels = check_in_channels(in_channels)
    options = dict(in_channels=in_channels, bands=check_bands(bands, in_channels), nodata=check_nodata(nodata))
    rgb_band_indices(in_channels, rgb_bands)
    return options
