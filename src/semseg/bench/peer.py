"""semseg's U-Net against segmentation_models_pytorch's Unet on the same timm encoder.

Both nets are built with the same seed from random weights, take the same batches in the same order (the
default synthetic data), the same AdamW and one-cycle schedule, and train in lockstep: one step of
each per batch, the order swapped every batch. After the budget both are scored on the whole val
split with semseg's metric.
"""

import tempfile
from pathlib import Path

import torch

from semseg.bench.loop import train_step, val_miou
from semseg.bench.timing import (
    alternate,
    count_flops,
    markdown_table,
    median,
    seconds,
    section,
)
from semseg.utils.config import compose_config, instantiate

ENCODER = "resnet18"
# smp's default decoder widths (256, 128, 64, 32 from /16 up to /2) in semseg's shallowest-first
# order; the deepest entry is unused (that level is the decoder's input)
SMP_WIDTHS = [32, 64, 128, 256, 512]


def build_nets(cfg, seed: int) -> dict[str, torch.nn.Module]:
    """semseg's U-Net (config `model=unet model/encoder=<timm name>`), the same with smp's decoder
    widths (`model.net.decoder.decoder_channels`), and smp's Unet on timm's encoder."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    ours = instantiate(cfg.model.net)
    torch.manual_seed(seed)
    narrow = instantiate(cfg.model.net, decoder={"decoder_channels": SMP_WIDTHS})
    torch.manual_seed(seed)
    theirs = smp.Unet(encoder_name=f"tu-{cfg.model.net.encoder.name}", encoder_weights=None,
                      classes=cfg.data.num_classes)
    return {"semseg U-Net": ours, "semseg U-Net, smp's decoder widths": narrow, "smp Unet": theirs}


class SharedBatches:
    """Hands batch i to every side that asks for it, reading the loader once (epoch after epoch)."""

    def __init__(self, loader):
        self.loader = loader
        self.batches = self._endless()
        self.cache: dict[int, dict] = {}

    def _endless(self):
        while True:
            yield from self.loader

    def __getitem__(self, index: int) -> dict:
        if index not in self.cache:
            self.cache[index] = next(self.batches)
            self.cache.pop(index - 2, None)
        return self.cache[index]


def trainer_side(net, cfg, batches: SharedBatches, total_steps: int):
    """A side of `alternate`: one training step of `net` on the next shared batch, timed."""
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    scheduler = instantiate(cfg.model.scheduler)(optimizer, total_steps=total_steps)
    step_index = iter(range(total_steps))

    net.train()
    return lambda: seconds(lambda: train_step(net, optimizer, batches[next(step_index)], scheduler))


def measure_peer(steps: int = 30, encoder: str = ENCODER, overrides: list[str] = ("data.batch_size=8",)) -> dict:
    """Per net: median step seconds, images/s, val mIoU after `steps`, parameters, GFLOPs per image."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config("train.yaml", [f"model/encoder={encoder}", f"paths.log_dir={tmp}",
                                            *overrides], Path(tmp) / "run")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    nets = build_nets(cfg, cfg.seed)
    torch.manual_seed(cfg.seed)
    batches = SharedBatches(datamodule.train_dataloader())
    times = alternate({name: trainer_side(net, cfg, batches, steps) for name, net in nets.items()}, steps)
    batch_size = datamodule.batch_size
    size = batches[steps - 1]["image"].shape[-1]
    image = torch.randn(1, 3, size, size)
    return {name: {
        "step": median(times[name][1:]),  # the first step is warm-up
        "images_per_s": batch_size / median(times[name][1:]),
        "mIoU": val_miou(net, datamodule.val_dataloader(), datamodule.num_classes),
        "params": sum(p.numel() for p in net.parameters()),
        "gflops": count_flops(lambda net=net: net.eval()(image)) / 1e9,
    } for name, net in nets.items()} | {"setup": {"steps": steps, "batch_size": batch_size, "size": size,
                                                  "encoder": encoder}}


def report(steps: int = 30, encoder: str = ENCODER) -> str:
    result = measure_peer(steps, encoder)
    setup = result.pop("setup")
    rows = [[name, f"{r['params'] / 1e6:.2f} M", f"{r['gflops']:.2f}", f"{r['step'] * 1e3:.0f} ms",
             f"{r['images_per_s']:.1f}", f"{r['mIoU']:.3f}"] for name, r in result.items()]
    theirs = result["smp Unet"]
    for name in ("semseg U-Net", "semseg U-Net, smp's decoder widths"):
        ours = result[name]
        rows.append([f"{name} ÷ smp", f"{ours['params'] / theirs['params']:.2f}",
                     f"{ours['gflops'] / theirs['gflops']:.2f}", f"{ours['step'] / theirs['step']:.2f}",
                     f"{ours['images_per_s'] / theirs['images_per_s']:.2f}", f"{ours['mIoU'] / theirs['mIoU']:.2f}"])
    table = markdown_table(["model", "parameters", f"GFLOPs per {setup['size']}² image", "train step",
                            "train images/s", f"val mIoU after {setup['steps']} steps"], rows)
    return section(f"Peer model: semseg U-Net vs segmentation_models_pytorch Unet (timm `{setup['encoder']}`)", table, [
        f"Both on timm `{setup['encoder']}` from random weights (smp: `tu-{setup['encoder']}`), seed "
        f"identical, default synthetic data (128² crops; batch {setup['batch_size']} instead of 16, for time), AdamW lr 0.003 + "
        f"one-cycle over {setup['steps']} steps, trained in lockstep on the same batches (order swapped "
        "every step); step time is the median after the first step; mIoU on the whole val split "
        "(100 images) with semseg's metric. Decoder widths: semseg's default mirrors the encoder's "
        "(64, 64, 128, 256, 512 from /2 to /32), smp's default is (256, 128, 64, 32, 16) from /16 up to "
        "an extra full-resolution stage; the middle row is semseg's U-Net with "
        f"`model.net.decoder.decoder_channels={SMP_WIDTHS}`, i.e. smp's widths (its full-resolution "
        "block keeps 32 channels)."])
