"""Optimizer parameter groups for fine-tuning (`model.optimizer_groups`).

Two switches: `encoder_lr_mult` gives the parameters of `net.encoder` the learning rate times a
factor (e.g. 0.1, so a pretrained encoder moves less than the fresh decoder), and
`no_weight_decay_norm_bias` exempts normalisation layers' parameters and every bias from weight
decay (decay on them only pulls scales and offsets towards 0). With both off there is one group,
all parameters, as before. Groups are named (`encoder`, `decoder`, `encoder_no_decay`,
`decoder_no_decay`; without the encoder switch `default` and `no_decay`), so the learning-rate
monitor logs `lr-<optimizer>/<group>`.
"""

from collections.abc import Callable

import torch
from torch import nn

from semseg.errors import SemsegError

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.RMSNorm)


def check_encoder(net: nn.Module, encoder_lr_mult: float = 1.0) -> None:
    """An encoder learning rate needs a net with an encoder."""
    if encoder_lr_mult != 1 and not isinstance(getattr(net, "encoder", None), nn.Module):
        raise SemsegError(
            f"model.optimizer_groups.encoder_lr_mult={encoder_lr_mult}, but the net ({type(net).__name__}) has "
            "no encoder (net.encoder). Set model.optimizer_groups.encoder_lr_mult=1, or pick a model built "
            "from an encoder and a decoder (model=unet, fcn8s, fcn16s, fcn32s, deeplabv3plus, upernet or segformer)."
        )


def no_decay_parameters(module: nn.Module) -> set[int]:
    """ids of the parameters of normalisation layers, and of every bias."""
    found = set()
    for layer in module.modules():
        for name, param in layer.named_parameters(recurse=False):
            if isinstance(layer, NORM_LAYERS) or name == "bias":
                found.add(id(param))
    return found


def parameter_groups(
    module: nn.Module, encoder: nn.Module | None = None, encoder_lr_mult: float = 1.0,
    no_weight_decay_norm_bias: bool = False,
) -> list[dict]:
    """The module's parameters in groups: `lr_mult` on the encoder's, `weight_decay` 0 on the exempt."""
    split_encoder = encoder is not None and encoder_lr_mult != 1
    in_encoder = {id(p) for p in encoder.parameters()} if split_encoder else set()
    exempt = no_decay_parameters(module) if no_weight_decay_norm_bias else set()
    groups: dict[str, dict] = {}
    for param in module.parameters():
        part = ("encoder" if id(param) in in_encoder else "decoder") if split_encoder else ""
        name = "_".join(filter(None, [part, "no_decay" if id(param) in exempt else ""])) or "default"
        if name not in groups:
            groups[name] = {"params": [], "name": name}
            if id(param) in in_encoder:
                groups[name]["lr_mult"] = encoder_lr_mult
            if id(param) in exempt:
                groups[name]["weight_decay"] = 0.0
        groups[name]["params"].append(param)
    if list(groups) == ["default"]:  # nothing set apart: one unnamed group, as without this module
        return [{"params": groups["default"]["params"]}]
    return list(groups.values())


def make_optimizer(factory: Callable[..., torch.optim.Optimizer], groups: list[dict]) -> torch.optim.Optimizer:
    """Build the optimizer, then scale each group's lr by its `lr_mult` (the configured lr is the base)."""
    optimizer = factory(params=groups)
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_mult", 1.0)
    return optimizer
