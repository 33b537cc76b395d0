"""Bad input and faults as a careful user meets them: nothing lost, nothing silently wrong, one line each.

Every test here reproduces a finding of a bad-input and fault sweep on real files and real
processes: files the user already has are never replaced, two runs never share a folder, scans
see what a user sees, and each mistake is one `semseg: error:` line.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from semseg.checkpoints.reading import read_checkpoint
from semseg.data.datamodule import class_list
from semseg.data.folder import FolderDataset
from semseg.errors import SemsegError
from semseg.predict import find_images, predict
from semseg.train import train
from semseg.utils.cli import refuse_unknown_options, unknown_option
from semseg.utils.config import compose_config
from tests.helpers.cli import PYTHON, run_cli
from tests.helpers.disk_formats import write_jpeg, write_png
from tests.helpers.settings import REPO, TINY_DATA_OVERRIDES


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The command's one `semseg: error:` line (status 2, no traceback)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("semseg: error: ")]
    assert len(errors) == 1 and result.stderr.count("semseg: error:") == 1, result.stderr[-3000:]
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def folder_data(tmp_path) -> Path:
    """data=folder with two real image subfolders and one linked in, plus the files macOS and
    Jupyter leave behind."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mine"
    for split in ("train", "val"):
        for place, names in (("street", ["a", "b"]), ("park", ["c"])):
            for name in names:
                write_jpeg(root / "outside" / split / place / f"{name}.jpg", 24, 32, rng)
                write_png(root / "outside_masks" / split / place / f"{name}.png", rng.integers(0, 2, (24, 32)).astype(np.uint8))
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        write_jpeg(root / "images" / split / "own.jpg", 24, 32, rng)
        write_png(root / "masks" / split / "own.png", rng.integers(0, 2, (24, 32)).astype(np.uint8))
        for place in ("street", "park"):  # folders linked in, as people assemble datasets
            (root / "images" / split / place).symlink_to(root / "outside" / split / place, target_is_directory=True)
            (root / "masks" / split / place).symlink_to(root / "outside_masks" / split / place, target_is_directory=True)
        (root / "images" / split / "street" / "loop").symlink_to(root / "images" / split, target_is_directory=True)
        (root / "images" / split / "._own.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (root / "images" / split / ".ipynb_checkpoints").mkdir()
        write_jpeg(root / "images" / split / ".ipynb_checkpoints" / "own-checkpoint.jpg", 24, 32, rng)
    return root


def test_symlinked_folders_are_followed_once_and_hidden_files_skipped(folder_data, tmp_path):
    dataset = FolderDataset(folder_data, "train", num_classes=2)
    assert sorted(dataset.names) == ["own", "park/c", "street/a", "street/b"]
    images, _ = find_images(str(folder_data / "images" / "train"))
    assert sorted(p.relative_to(folder_data / "images" / "train").as_posix() for p in images) == [
        "own.jpg", "park/c.jpg", "street/a.jpg", "street/b.jpg"]
    result = run_cli([PYTHON, "-m", "semseg.data.inspect", "data=folder", f"data.root={folder_data}",
                      "data.class_names=[background,thing]", f"output={tmp_path / 'report'}",
                      f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    sizes = (tmp_path / "report" / "sizes.csv").read_text()
    assert "4" in sizes.splitlines()[1]  # four images of one size per split


@pytest.fixture
def predict_cfg(checkpoint, tmp_path):
    def make(input, output, *overrides):
        return compose_config("predict.yaml", [f"ckpt_path={checkpoint}", f"input={input}", f"output={output}",
                                               f"paths.log_dir={tmp_path / 'logs'}", *overrides], tmp_path / "predict")

    yield make
    GlobalHydra.instance().clear()


def test_predict_never_replaces_files_already_in_the_output_folder(predict_cfg, folder_data):
    masks, images = folder_data / "masks" / "val", folder_data / "images" / "val"
    before = tree(folder_data / "outside_masks") | tree(masks)
    with pytest.raises(SemsegError, match=r"would replace 4 file\(s\) already in output=.*overwrite=true"):
        predict(predict_cfg(images, masks))
    assert tree(folder_data / "outside_masks") | tree(masks) == before  # nothing written, nothing replaced
    out = folder_data.parent / "predictions"
    assert len(predict(predict_cfg(images, out))) == 4
    with pytest.raises(SemsegError, match="already in output="):
        predict(predict_cfg(images, out))
    assert len(predict(predict_cfg(images, out, "overwrite=true"))) == 4


def test_predict_goes_on_past_an_unreadable_image_and_lists_it(predict_cfg, tmp_path):
    photos = tmp_path / "photos"
    rng = np.random.default_rng(1)
    for name in ("a", "c"):
        write_jpeg(photos / f"{name}.jpg", 30, 20, rng)
    (photos / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SemsegError, match=r"1 of 3 images could not be read: .*b.jpg .*the masks of the other 2 are in"):
        predict(predict_cfg(photos, tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "a_overlay.png", "c.png", "c_overlay.png"]


@pytest.mark.parametrize("setting, message", [
    ("mean=[0.5,0.5]", r"mean=\[0.5, 0.5\] must be 3 numbers, one per input channel"),
    ("std=[0.2,0,0.2]", r"std=.* must be 3 numbers, one per input channel, all positive"),
    ("std=0.2", "must be 3 numbers"),
])
def test_predict_refuses_normalisation_that_is_not_one_positive_number_per_channel(predict_cfg, folder_data, tmp_path, setting, message):
    with pytest.raises(SemsegError, match=message):
        predict(predict_cfg(folder_data / "images" / "val" / "own.jpg", tmp_path / "out", setting))
    assert not (tmp_path / "out").exists()


def test_predict_into_a_file_is_refused(predict_cfg, folder_data, tmp_path):
    blocker = tmp_path / "masks.png"
    blocker.write_bytes(b"mine")
    with pytest.raises(SemsegError, match="is a file, not a folder"):
        predict(predict_cfg(folder_data / "images" / "val", blocker))
    assert blocker.read_bytes() == b"mine"


def test_two_runs_started_at_once_get_folders_of_their_own(tmp_path, data_dir):
    command = [PYTHON, "-m", "semseg.train", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}",
               "train=false", "test=false", "logger=csv", "extras.print_config=false", *TINY_DATA_OVERRIDES]
    env = {**os.environ, "WANDB_SILENT": "true"}
    runs = [subprocess.Popen([*command, f"seed={seed}"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    assert all(run.wait(timeout=300) == 0 for run in runs), [run.stderr.read()[-2000:] for run in runs]
    folders = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(folders) == 2
    seeds = sorted(next(line for line in (f / ".hydra" / "config.yaml").read_text().splitlines() if line.startswith("seed:"))
                   for f in folders)
    assert seeds == ["seed: 1", "seed: 2"]


@pytest.mark.parametrize("names, message", [
    ("[a]", r"has 1 class; a model chooses between at least two.*data.class_names=\[background,a\]"),
    ("[a,a,c]", "names a more than once"),
    ("[" + ",".join(f"c{i}" for i in range(256)) + "]", "has 256 names; semseg supports at most 255 classes"),
])
def test_class_lists_that_would_be_silently_wrong_are_refused(make_cfg, folder_data, names, message):
    with pytest.raises(SemsegError, match=message):
        train(make_cfg(["data=folder", f"data.root={folder_data}", f"data.class_names={names}", "logger=none"]))
    with pytest.raises(SemsegError, match=message):
        class_list(names.strip("[]").split(","))


def test_every_entry_point_names_a_config_option_that_does_not_exist(tmp_path):
    import importlib

    for entry in ("train", "eval", "predict", "export", "data.inspect"):  # the one check, in front of Hydra
        main = importlib.import_module(f"semseg.{entry}").main
        assert main.__code__ is refuse_unknown_options(lambda: None).__code__, entry
    assert unknown_option(["ckpt_path=x", "inference=slid"]).startswith("inference=slid: there is no config inference/slid.yaml")
    result = run_cli([PYTHON, "-m", "semseg.eval", "ckpt_path=x.ckpt", "data=foldr", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    line = one_error_line(result)
    assert "data=foldr: there is no config data/foldr.yaml; choose one of" in line and "coco" in line


def test_device_requests_that_cannot_run_are_one_line_once(make_cfg, tmp_path, data_dir):
    with pytest.raises(SemsegError, match="trainer.devices=0 asks for no device"):
        train(make_cfg(["trainer.devices=0"]))
    # refused before the processes start, so it is said once, not once per process
    result = run_cli([PYTHON, "-m", "semseg.train", "trainer=ddp_cpu", "trainer.devices=3", "data.batch_size=16",
                      f"paths.data_dir={data_dir}", *TINY_DATA_OVERRIDES, f"paths.log_dir={tmp_path / 'logs'}",
                      "logger=none"], cwd=tmp_path)
    assert "data.batch_size=16 is the global batch and must divide evenly over 3 processes" in one_error_line(result)


def test_eval_of_a_run_folder_says_what_to_pass(checkpoint, tmp_path):
    eval_run = tmp_path / "logs" / "eval" / "runs" / "2026-01-01_00-00-00_1"
    eval_run.mkdir(parents=True)
    result = run_cli([PYTHON, "-m", "semseg.eval", f"ckpt_path={eval_run}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert "is a folder without checkpoints (an eval, predict or export run keeps none)" in one_error_line(result)
    train_run = checkpoint.parents[1]
    with pytest.raises(SemsegError, match=rf"pass one of its checkpoints, e.g. ckpt_path={train_run / 'checkpoints' / 'best.ckpt'}"):
        read_checkpoint(train_run)


@pytest.fixture
def listening_port():
    """A port on 127.0.0.1 that accepts connections (and answers nothing)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_online_wandb_without_a_server_or_a_login_is_one_line_at_once(tmp_path, data_dir, listening_port):
    # no key, no netrc, no W&B or proxy settings: a new user's machine; the server is on 127.0.0.1
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_") and "proxy" not in key.lower()}
    env |= {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none"), "WANDB_SILENT": "true"}
    command = [PYTHON, "-m", "semseg.train", "logger=wandb", "logger.wandb.offline=false", f"paths.data_dir={data_dir}",
               *TINY_DATA_OVERRIDES, f"paths.log_dir={tmp_path / 'logs'}", "trainer.max_epochs=1"]

    def run(server: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env={**env, "WANDB_BASE_URL": server}, capture_output=True,
                              text=True, timeout=300)

    started = time.monotonic()
    line = one_error_line(run(f"http://127.0.0.1:{free_port()}"))
    assert "cannot be reached" in line and "logger.wandb.offline=true" in line and time.monotonic() - started < 60
    no_login = run(f"http://127.0.0.1:{listening_port}")
    line = one_error_line(no_login)
    assert "W&B could not start an online run" in line and "wandb login" in line and "logger.wandb.offline=true" in line


def test_export_into_a_folder_named_like_a_file_is_refused_before_the_work(checkpoint, tmp_path, monkeypatch):
    import semseg.export

    folder = tmp_path / "model.onnx"
    folder.mkdir()
    monkeypatch.setattr(semseg.export, "load_model", None)  # refused before the checkpoint is even read
    cfg = compose_config("export.yaml", [f"ckpt_path={checkpoint}", f"output={folder}", f"paths.log_dir={tmp_path / 'logs'}"],
                         tmp_path / "export")
    with pytest.raises(SemsegError, match="is a folder; name the .onnx file to write"):
        semseg.export.export(cfg)
    assert not any(folder.iterdir())


@pytest.mark.slow
def test_a_killed_export_leaves_a_temporary_the_next_export_removes(checkpoint, tmp_path):
    command = [PYTHON, "-m", "semseg.export", f"ckpt_path={checkpoint}", f"output={tmp_path / 'model.onnx'}",
               f"paths.log_dir={tmp_path / 'logs'}"]
    killed = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".model.onnx.*.tmp")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (left,) = tmp_path.glob(".model.onnx.*.tmp")
    assert not (tmp_path / "model.onnx").exists()
    assert run_cli(command, cwd=tmp_path).returncode == 0
    assert not left.exists() and (tmp_path / "model.onnx").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_readme_lists_the_new_refusals():
    readme = (REPO / "README.md").read_text()
    for refusal in ("overwrite=true", "trainer.devices=0", "logger.wandb.offline=false", "more\nthan 255",
                    "follow symlinked subfolders"):
        assert refusal in readme, refusal


def test_a_split_template_typed_unquoted_gets_the_quoting_that_works(tmp_path):
    result = run_cli([PYTHON, "-m", "semseg.train", "data=folder", "data.root=/datasets/mine",
                      "data.image_dir={split}/images", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert """'data.image_dir="{split}/images"'""" in one_error_line(result)


def test_a_resolver_that_cannot_read_its_file_is_one_line(tmp_path):
    result = run_cli([PYTHON, "-m", "semseg.train", "data=coco", f"data.root={tmp_path / 'nowhere'}",
                      f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert "instances_train.json, which does not exist" in one_error_line(result)
