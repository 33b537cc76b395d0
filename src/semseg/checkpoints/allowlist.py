"""What a file someone else made may build: semseg's own building blocks, checked before anything is built.

A checkpoint is loaded with `weights_only=True`, so reading it runs no code; but the model
config it stores names callables (`_target_`), and instantiating that config calls them
(`builtins.open` on a user's file, `torch.load` of a pickle, an import of a module shipped beside
the checkpoint). So every stored config is checked as plain data first:

- every `_target_`, at any depth (`_args_`, lists, `_partial_` nodes), is one that semseg's own
  model configs name (`configs/model/**`, read from the files, so the list is stated once), an
  optimizer of `torch.optim`, or one the user trusts on their own command line
  (`trusted_targets=[...]`);
- leaves are None, booleans, numbers or strings, and no string is an interpolation (`${...}`:
  resolvers import modules and read the environment);
- nesting is bounded.

Anything else is refused with one `semseg: error:` line naming the file, the key and the target,
before any target is resolved or called. Configs a user composes themselves are not checked here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from pathlib import Path

import yaml

from semseg.errors import SemsegError
from semseg.utils.config import CONFIG_DIR

TARGET_KEY = "_target_"
MAX_DEPTH = 32
PLAIN_LEAVES = (type(None), bool, int, float, str)


@functools.cache
def buildable_targets() -> frozenset[str]:
    """Every `_target_` the model configs can name, and `torch.optim`'s optimizers."""
    import torch

    named = set()
    for path in sorted((Path(CONFIG_DIR) / "model").rglob("*.yaml")):
        named.update(targets_in(yaml.safe_load(path.read_text())))
    optimizers = {
        f"torch.optim.{name}" for name, value in vars(torch.optim).items()
        if inspect.isclass(value) and issubclass(value, torch.optim.Optimizer) and value is not torch.optim.Optimizer
    }
    return frozenset(named | optimizers)


def targets_in(node) -> set[str]:
    """The string `_target_`s anywhere in a config (plain dicts and lists)."""
    if isinstance(node, dict):
        found = {node[TARGET_KEY]} if isinstance(node.get(TARGET_KEY), str) else set()
        return found.union(*(targets_in(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(targets_in(item) for item in node))
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
        for key, value in node.items():
            if not isinstance(key, str):
                raise SemsegError(f"{source}: {where} has a key {key!r} that is not a string; it was not written by semseg.train.")
            if key == TARGET_KEY:
                _check_target(value, f"{where}.{key}", source, allowed)
            else:
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


def _check_target(target, where: str, source, allowed: frozenset[str]) -> None:
    if not isinstance(target, str):
        raise SemsegError(f"{source}: {where} is a {type(target).__name__}, not the name of a class; refusing to build it.")
    if target not in allowed:
        raise SemsegError(
            f"{source}: {where} names {target[:120]!r}, which is none of semseg's building blocks "
            "(the targets configs/model/** names); refusing to build it. Only if you trust this file "
            f"and that code, add trusted_targets=[{target[:120]}] to the command."
        )
