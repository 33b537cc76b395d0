"""Fetch a dataset archive with checksum verification and unpack it without escaping its folder.

torchvision's `download_url` downloads and checks the MD5; its own extraction calls
`tarfile.extractall` without a filter on Python 3.11, so extraction here uses the "data" filter,
which refuses members that would land outside the target (`../x`, links out) and strips
leading slashes from absolute names.
"""

import logging
import tarfile
import urllib.error
from pathlib import Path

from torchvision.datasets.utils import download_url

from semseg.errors import SemsegError

log = logging.getLogger(__name__)


def extract_safely(archive: Path, target: Path) -> None:
    """Unpack a tar archive (any compression) into `target`, refusing unsafe members."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except tarfile.FilterError as error:
        raise SemsegError(
            f"archive {archive} holds an unsafe member ({error}); extraction stopped and nothing was "
            f"written outside {target}. Delete the archive and download it from a trusted source."
        ) from None
    except tarfile.TarError as error:
        raise SemsegError(f"cannot unpack {archive}: {error}. Delete it and download it again.") from None


def fetch_archive(url: str, md5: str, root: str | Path, creates: str | None = None) -> None:
    """Download `url` into `root`, verify its MD5, then extract it there.

    Skipped when `root/creates` already exists (the folder the archive unpacks to).
    """
    root = Path(root)
    if creates and (root / creates).exists():
        return
    archive = root / url.rsplit("/", 1)[-1]
    log.info("downloading %s to %s", url, archive)
    try:
        download_url(url, str(root), archive.name, md5=md5)
    except RuntimeError as error:  # torchvision's "File not found or corrupted."
        archive.unlink(missing_ok=True)
        raise SemsegError(
            f"the file downloaded from {url} does not match MD5 {md5} ({error}); it was deleted. "
            "Retry, or check the URL and checksum in data.prepare.archives."
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise SemsegError(f"cannot download {url}: {error}. Check the network or the URL.") from None
    extract_safely(archive, root)
