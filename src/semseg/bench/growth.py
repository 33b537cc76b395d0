"""How the cost of a training step grows with resolution, for every model config.

One training step = the module's `training_step` (forward + loss, sampled pixels for the sliding
window), backward and an AdamW step, on a random batch; median of `repeats` after one warm-up.
"""

import warnings

import torch

from semseg.bench.sliding_window_cost import composed_model_config
from semseg.bench.timing import markdown_table, median_seconds, section
from semseg.utils.config import config_options, instantiate


def model_names() -> list[str]:
    """Every option of the `model` group."""
    return config_options("model")


def step_seconds(name: str, size: int, batch_size: int, repeats: int) -> float:
    torch.manual_seed(0)
    module = instantiate(composed_model_config(name)).train()
    optimizer = module.optimizer_factory(params=module.parameters())
    batch = {"image": torch.randn(batch_size, 3, size, size),
             "mask": torch.randint(0, module.net.num_classes, (batch_size, size, size))}

    def step() -> None:
        with warnings.catch_warnings():  # self.log outside a Trainer warns and does nothing
            warnings.simplefilter("ignore")
            loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_seconds(step, repeats)


def report(sizes=(128, 256, 512), batch_size: int = 2, repeats: int = 3, models: list[str] | None = None) -> str:
    models = models or model_names()
    times = {(name, size): step_seconds(name, size, batch_size, repeats) for size in sizes for name in models}
    rows = [[f"`model={name}`", *(f"{times[name, size] * 1e3:.0f} ms" for size in sizes),
             f"{times[name, sizes[-1]] / times[name, sizes[0]]:.1f}×"] for name in models]
    table = markdown_table(["model", *(f"{size}²" for size in sizes), f"{sizes[-1]}² ÷ {sizes[0]}²"], rows)
    return section("Growth: time per training step against resolution", table, [
        f"Batch {batch_size}, default config of each model (encoders: `tiny_resnet`), random images; "
        f"forward + loss + backward + AdamW, median of {repeats} after one warm-up. The pixel count "
        f"grows {(sizes[-1] / sizes[0]) ** 2:.0f}× from {sizes[0]}² to {sizes[-1]}². `patch_classifier` "
        "trains on 64 sampled pixels per image, so its step cost barely depends on the image size."])
