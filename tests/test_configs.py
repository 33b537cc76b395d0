"""Every config composes, resolves and instantiates its lightweight parts."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from semseg.utils.cli import unknown_option
from semseg.utils.config import config_options, instantiate_dict
from semseg.utils.deprecated_options import warn_deprecated_choices
from tests.helpers.cli import PYTHON, run_cli

GROUPS = ["data", "model", "model/encoder", "model/optimizer", "model/scheduler", "model/loss", "trainer",
          "logger", "callbacks", "experiment", "debug"]


def options(group: str) -> list[str]:
    return config_options(group)


CASES = [(group, option) for group in GROUPS for option in options(group)]
# options whose mandatory keys (???) the user must give
REQUIRED = {(group, option): ["data.root=/datasets/mine", "data.class_names=[background,cell]"]
            for group, option in (("data", "folder"), ("data", "coco"), ("data", "labelme"))}


def test_every_listed_group_has_options():
    assert all(options(group) for group in GROUPS)


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_train_config_composes_and_resolves(make_cfg, group, option):
    cfg = make_cfg([f"{group}={option}", *REQUIRED.get((group, option), [])])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.model.net.num_classes == cfg.data.num_classes == len(cfg.data.class_names)
    for part in instantiate_dict(cfg.get("callbacks")) + instantiate_dict(cfg.get("logger")):
        assert part is not None


def test_the_old_name_model_sliding_window_composes_to_patch_classifier_and_warns(make_cfg, data_dir, tmp_path, caplog):
    new = OmegaConf.to_yaml(make_cfg(["model=patch_classifier"]).model)
    assert OmegaConf.to_yaml(make_cfg(["model=sliding_window"]).model) == new
    assert "sliding_window" not in options("model")
    with caplog.at_level("WARNING", logger="semseg"):
        (message,) = warn_deprecated_choices()
    assert message == caplog.messages[-1] and "model=sliding_window is deprecated" in message and "use model=patch_classifier" in message
    # on the command line too: one line, when the job starts (here it then stops at trainer.devices=0)
    result = run_cli([PYTHON, "-m", "semseg.train", "model=sliding_window", "trainer.devices=0", "logger=none",
                      f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert output.count("model=sliding_window is deprecated") == 1 and "semseg: error: trainer.devices=0" in output, output[-3000:]


def test_the_base_of_the_model_configs_is_no_option():
    assert "_module" not in options("model") and "unet" in options("model")
    message = unknown_option(["model=_module"])
    assert message.startswith("model=_module: model/_module.yaml is a base other configs extend, not an option")
    assert "_module," not in message and "sliding_window" not in message


def test_eval_config_composes_and_requires_a_checkpoint(make_cfg):
    cfg = make_cfg([], config_name="eval.yaml")
    assert OmegaConf.is_missing(cfg, "ckpt_path")
    OmegaConf.to_container(cfg.data, resolve=True)


def test_default_run_folder_layout(make_cfg):
    cfg = make_cfg([])
    assert cfg.hydra.run.dir.startswith(f"{cfg.paths.log_dir}/train/runs/")
    assert cfg.hydra.sweep.dir.startswith(f"{cfg.paths.log_dir}/train/multiruns/")


@pytest.mark.parametrize("name", ["poly", "cosine", "onecycle", "constant"])
def test_schedulers_run_the_configured_number_of_steps(make_cfg, name):
    cfg = make_cfg([f"model/scheduler={name}"])
    optimizer = instantiate(cfg.model.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))])
    base_lr = cfg.model.optimizer.lr
    scheduler = instantiate(cfg.model.scheduler)(optimizer, total_steps=20)
    lrs = []
    for _ in range(20):
        optimizer.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert max(lrs) == pytest.approx(base_lr, rel=0.05)
    if name in ("poly", "cosine", "onecycle"):
        assert lrs[-1] < 0.2 * base_lr
