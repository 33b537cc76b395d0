"""What a file someone else made may build: semseg's own building blocks, checked before anything is built.

A checkpoint is loaded with `weights_only=True`, so reading it runs no code; but the model
config it stores names callables (`_target_`), and instantiating that config calls them
(`builtins.open` on a user's file, `torch.load` of a pickle, an import of a module shipped beside
the checkpoint). So every stored config is checked as plain data first:

- every `_target_`, at any depth (`_args_`, lists, `_partial_` nodes), is one that semseg's own
  model configs name (`configs/model/**`, read from the files, so the list is stated once), an
  optimizer of `torch.optim`, or one the user trusts on their own command line
  (`trusted_targets=[...]`);
- keys are plain names: Hydra's `_args_`, `_recursive_` and `_convert_` are refused, and
  `_partial_: true` only where semseg's configs build partials;
- the encoder names none of timm's settings that read files or the network, and a class count
  is 2..255;
- leaves are None, booleans, numbers or strings, and no string is an interpolation (`${...}`:
  resolvers import modules and read the environment);
- nesting is bounded.

Anything else is refused with one `semseg: error:` line naming the file, the key and the target,
before any target is resolved or called. Configs a user composes themselves are not checked here.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from semseg.errors import SemsegError
from semseg.utils.config import CONFIG_DIR

TARGET_KEY = "_target_"
PARTIAL_KEY = "_partial_"
MAX_DEPTH = 32
MAX_CLASSES = 255
PLAIN_LEAVES = (type(None), bool, int, float, str)
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # what config keys look like; `_x_` are Hydra's own
# timm.create_model settings that read files or reach the network; the encoder passes unknown
# keys on to timm, so a stored config must not name them (its weights come from the checkpoint)
ENCODER_TARGET = "semseg.models.encoders.TimmEncoder"
ENCODER_REFUSED = frozenset({"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"})


@functools.cache
def model_configs() -> tuple:
    return tuple(yaml.safe_load(path.read_text()) for path in sorted((Path(CONFIG_DIR) / "model").rglob("*.yaml")))


@functools.cache
def buildable_targets() -> frozenset[str]:
    """Every `_target_` the model configs can name, and `torch.optim`'s optimizers."""
    import torch

    named = set().union(*(targets_in(config) for config in model_configs()))
    return frozenset(named | optimizers())


@functools.cache
def partial_targets() -> frozenset[str]:
    """The targets the model configs build as partials (`_partial_: true`), and the optimizers."""
    return frozenset(set().union(*(targets_in(config, partial_only=True) for config in model_configs())) | optimizers())


def optimizers() -> set[str]:
    import torch

    return {
        f"torch.optim.{name}" for name, value in vars(torch.optim).items()
        if inspect.isclass(value) and issubclass(value, torch.optim.Optimizer) and value is not torch.optim.Optimizer
    }


def targets_in(node, partial_only: bool = False) -> set[str]:
    """The string `_target_`s anywhere in a config (plain dicts and lists); with `partial_only`,
    those of `_partial_: true` nodes. An optimizer or scheduler config file is itself a partial."""
    if isinstance(node, dict):
        named = isinstance(node.get(TARGET_KEY), str) and (not partial_only or node.get(PARTIAL_KEY) is True)
        found = {node[TARGET_KEY]} if named else set()
        return found.union(*(targets_in(value, partial_only) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(targets_in(item, partial_only) for item in node))
    return set()


def check_buildable(config, source: str | Path, trusted: Iterable[str] = ()) -> None:
    """Refuse a stored model config that would build anything but semseg's building blocks.

    `source` names the file in the message; `trusted` adds targets the user vouches for.
    """
    allowed = buildable_targets() | {str(target) for target in trusted or ()}
    if not isinstance(config, dict):
        raise SemsegError(f"{source}: its stored model_config is a {type(config).__name__}, not a config; it was not written by semseg.train.")
    _check(config, "model_config", source, allowed, 0)


def _check(node, where: str, source, allowed: frozenset[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SemsegError(f"{source}: {where} is nested more than {MAX_DEPTH} levels deep; it was not written by semseg.train.")
    if isinstance(node, dict):
        _check_node(node, where, source, allowed)
        for key, value in node.items():
            if key != TARGET_KEY:
                _check(value, f"{where}.{key}", source, allowed, depth + 1)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _check(item, f"{where}[{index}]", source, allowed, depth + 1)
    elif not isinstance(node, PLAIN_LEAVES):
        raise SemsegError(f"{source}: {where} holds a {type(node).__name__}; a stored config holds only plain values.")
    elif isinstance(node, str) and "${" in node:
        raise SemsegError(
            f"{source}: {where} = {node[:80]!r} is an interpolation; a stored config holds resolved values only, "
            "so this file was not written by semseg.train. Refusing to read it."
        )


def _check_node(node: dict, where: str, source, allowed: frozenset[str]) -> None:
    """Keys are plain names (Hydra's `_target_` and `_partial_` aside), and what they say is allowed."""
    for key in node:
        if not isinstance(key, str) or not (KEY.fullmatch(key) or key in (TARGET_KEY, PARTIAL_KEY)):
            raise SemsegError(
                f"{source}: {where} has a key {str(key)[:40]!r} that semseg's configs never write (Hydra's "
                "_args_, _recursive_, _convert_ included); refusing to build it."
            )
    target = node.get(TARGET_KEY)
    if TARGET_KEY in node:
        _check_target(target, f"{where}.{TARGET_KEY}", source, allowed)
    if PARTIAL_KEY in node and (node[PARTIAL_KEY] is not True or target not in partial_targets() | (allowed - buildable_targets())):
        raise SemsegError(f"{source}: {where}._partial_ = {node[PARTIAL_KEY]!r} on {target!r}, which semseg's configs never build as a partial; refusing it.")
    refused = ENCODER_REFUSED & set(node) if target == ENCODER_TARGET else set()
    if refused:
        raise SemsegError(f"{source}: {where} sets {sorted(refused)}, which make timm read files or the network; refusing it.")
    classes = node.get("num_classes", 2)
    if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= MAX_CLASSES:
        raise SemsegError(f"{source}: {where}.num_classes = {str(classes)[:40]} is not a class count of 2..{MAX_CLASSES}.")


def _check_target(target, where: str, source, allowed: frozenset[str]) -> None:
    if not isinstance(target, str):
        raise SemsegError(f"{source}: {where} is a {type(target).__name__}, not the name of a class; refusing to build it.")
    if target not in allowed:
        raise SemsegError(
            f"{source}: {where} names {target[:120]!r}, which is none of semseg's building blocks "
            "(the targets configs/model/** names); refusing to build it. Only if you trust this file "
            f"and that code, add trusted_targets=[{target[:120]}] to the command."
        )
