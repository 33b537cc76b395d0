"""Dataset download against an HTTP server on 127.0.0.1: checksum, skip when present, safe unpack."""

import functools
import hashlib
import http.server
import io
import tarfile
import threading

import pytest
from hydra.utils import instantiate

from semseg.data.download import fetch_archive
from semseg.data.voc import VOCSegmentation
from semseg.errors import SemsegError
from tests.helpers.disk_formats import VOC_TRAIN, make_voc


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/served over HTTP on 127.0.0.1; yields (folder, base url)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def voc_archive(server, tmp_path):
    """A tiny VOCtrainval tar on the server; returns (url, md5)."""
    folder, base = server
    source = make_voc(tmp_path / "source")
    archive = folder / "VOCtrainval_tiny.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source / "VOCdevkit", arcname="VOCdevkit")
    return f"{base}/{archive.name}", md5(archive)


def test_data_download_true_fetches_verifies_and_unpacks(make_cfg, voc_archive, tmp_path):
    url, checksum = voc_archive
    root = tmp_path / "voc"
    cfg = make_cfg([
        "data=voc", f"data.root={root}", "data.download=true", "~data.prepare.archives.sbd",
        f'data.prepare.archives.voc2012.url="{url}"', f"data.prepare.archives.voc2012.md5={checksum}",
    ])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    assert (root / "VOCtrainval_tiny.tar").is_file()
    assert VOCSegmentation(root, "train").ids == VOC_TRAIN
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) == len(VOC_TRAIN)
    (root / "VOCtrainval_tiny.tar").unlink()
    fetch_archive(f"{url}.gone", checksum, root, creates="VOCdevkit/VOC2012")  # present: nothing fetched
    assert not (root / "VOCtrainval_tiny.tar.gone").exists()


def test_without_download_a_missing_dataset_says_how_to_get_it(make_cfg, tmp_path):
    datamodule = instantiate(make_cfg(["data=voc", f"data.root={tmp_path / 'none'}"]).data)
    datamodule.prepare_data()
    with pytest.raises(SemsegError, match="data.download=true"):
        datamodule.setup("fit")


def test_wrong_checksum_is_refused_and_nothing_is_unpacked(voc_archive, tmp_path):
    url, checksum = voc_archive
    root = tmp_path / "voc"
    with pytest.raises(SemsegError, match=r"does not match MD5 0{32}.*deleted"):
        fetch_archive(url, "0" * 32, root)
    assert list(root.iterdir()) == []


def write_tar(path, members: dict[str, bytes], links: dict[str, str] = {}) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


def test_member_outside_the_target_is_refused(server, tmp_path):
    folder, base = server
    root = tmp_path / "deep" / "target"
    write_tar(folder / "evil.tgz", {"ok.txt": b"fine", "../evil.txt": b"escaped"})
    with pytest.raises(SemsegError, match=r"evil.tgz holds an unsafe member .*nothing was written outside"):
        fetch_archive(f"{base}/evil.tgz", md5(folder / "evil.tgz"), root)
    assert not (root.parent / "evil.txt").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_absolute_member_and_outward_link_stay_inside(server, tmp_path):
    folder, base = server
    root = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    write_tar(folder / "abs.tgz", {f"{outside}/abs.txt": b"absolute"})
    fetch_archive(f"{base}/abs.tgz", md5(folder / "abs.tgz"), root)
    assert not (outside / "abs.txt").exists()
    assert (root / str(outside).lstrip("/") / "abs.txt").read_bytes() == b"absolute"
    write_tar(folder / "link.tgz", {}, links={"escape": str(outside)})
    with pytest.raises(SemsegError, match="unsafe member"):
        fetch_archive(f"{base}/link.tgz", md5(folder / "link.tgz"), root)
    assert list(outside.iterdir()) == []
