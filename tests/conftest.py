"""Shared fixtures: a tiny synthetic dataset on disk and real Hydra composition."""

import os

# no test reaches for the Hugging Face hub (set before timm imports it); subprocesses inherit it
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from semseg.data.synthetic import generate  # noqa: E402
from semseg.utils.config import compose_config  # noqa: E402
from tests.helpers.settings import TINY_DATA, TINY_DATA_OVERRIDES  # noqa: E402


@pytest.fixture(autouse=True)
def torch_threads_as_they_were():
    """Each test starts with the session's torch thread count. Lightning's DDP launchers lower it
    in the launching process, and float32 sums round differently with another count, which the
    exact-resume tests would read as a resume that is not exact."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data dir holding the tiny synthetic dataset, generated once per session."""
    root = tmp_path_factory.mktemp("data")
    generate(root / "synthetic", seed=0, **TINY_DATA)
    return root


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """Build a train/eval config on the tiny dataset, logs under tmp_path."""

    def make(overrides: list[str] = (), config_name: str = "train.yaml", output: str = "run") -> DictConfig:
        base = [
            f"paths.data_dir={data_dir}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "data.num_workers=0",
            "data.batch_size=4",
            "extras.print_config=false",
        ]
        cfg = compose_config(config_name, base + list(overrides), tmp_path / output)
        if cfg.data.get("prepare", {}).get("_target_") != "semseg.data.synthetic.generate":
            return cfg
        return compose_config(config_name, base + TINY_DATA_OVERRIDES + list(overrides), tmp_path / output)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, data_dir) -> Path:
    """A best.ckpt of a briefly trained FCN-8s (output stride 32), shared by eval/predict tests."""
    from semseg.train import train

    tmp = tmp_path_factory.mktemp("trained")
    overrides = [
        f"paths.data_dir={data_dir}", f"paths.log_dir={tmp / 'logs'}", "data.num_workers=0",
        "data.batch_size=4", "extras.print_config=false", *TINY_DATA_OVERRIDES, "model=fcn8s",
        "trainer.max_epochs=1", "model/scheduler=constant", "logger=csv", "callbacks=model_checkpoint",
        "test=false",
    ]
    train(compose_config("train.yaml", overrides, tmp / "run"))
    GlobalHydra.instance().clear()
    return tmp / "run" / "checkpoints" / "best.ckpt"
