"""Config composition and building: the config folder, composing a config as the entry points do,
instantiating configs (a SemsegError inside a constructor surfaces as is), printing and flattening.

Importing it registers the configs' OmegaConf resolvers.
"""

from pathlib import Path

import hydra
import rich.syntax
import rich.tree
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from semseg.errors import SemsegError
from semseg.utils import resolvers
from semseg.utils.deprecated_options import RENAMED

resolvers.register()

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "configs")


def config_options(group: str, config_dir: str | Path = CONFIG_DIR) -> list[str]:
    """The options one chooses in a config group (`model=<option>`): its config files, less the
    bases others extend (`_name.yaml`) and the old names of renamed options."""
    old_names = RENAMED.get(group, {})
    return sorted(
        path.stem for path in (Path(config_dir) / group).glob("*.yaml")
        if not path.stem.startswith("_") and path.stem not in old_names
    )


def instantiate_dict(cfg: DictConfig | None) -> list:
    """Instantiate every entry of a dict of configs (callbacks, loggers); None gives []."""
    if not cfg:
        return []
    return [instantiate(entry) for entry in cfg.values() if entry and "_target_" in entry]


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the resolved config as a rich tree (one branch per top-level group); rank 0 only."""
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    first = ["data", "model", "callbacks", "logger", "trainer", "paths"]
    for key in first + [k for k in cfg if k not in first]:
        if key not in cfg:
            continue
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(key).add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as file:
            rich.print(tree, file=file)


def instantiate(cfg: DictConfig, **kwargs):
    """`hydra.utils.instantiate`, but a SemsegError raised inside a constructor surfaces as is."""
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except hydra.errors.InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SemsegError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def flat_config(cfg: DictConfig) -> dict:
    """The resolved config as flat `a/b/c: value` pairs, the shape loggers display best."""
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def flatten(tree: dict) -> dict:
    """Nested dicts as flat `a/b/c: value` pairs."""
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(tree, "")
    return flat


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config as the entry points do, run folder set to output_dir (tests, notebooks)."""
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra.compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return cfg
