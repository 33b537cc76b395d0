"""semseg's U-Net, DeepLabV3+ and SegFormer against segmentation_models_pytorch's models of the
same name, on the same timm encoder.

Every net is built with the same seed from random weights; all take the same batches in the same
order (the default synthetic data), the same AdamW and one-cycle schedule, and train in
lockstep: one step of each per batch, the order reversed every batch. After the budget each is
scored on the whole val split with semseg's metric.
"""

import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig

from semseg.bench.loop import train_step, val_miou
from semseg.bench.timing import alternate, count_flops, markdown_table, median, seconds, section
from semseg.utils.config import compose_config, instantiate

ENCODER = "resnet18"
MODELS = ("unet", "deeplabv3plus", "segformer")
# each semseg row and the smp row it is divided by
PARTNERS = {"semseg U-Net": "smp Unet", "semseg U-Net, smp's widths": "smp Unet",
            "semseg DeepLabV3+": "smp DeepLabV3Plus", "semseg SegFormer": "smp Segformer"}


UNETS = ("semseg U-Net", "semseg U-Net, smp's widths", "smp Unet")


def build_nets(configs: dict[str, DictConfig], seed: int, names=None) -> dict[str, torch.nn.Module]:
    """semseg's nets (`configs[model]`: the composed config of `model=<model>`, for each of MODELS)
    and smp's on the same timm encoder (`tu-<name>`); plus semseg's U-Net with smp's widths
    (`max_width_per_stride=16`: 32, 64, 128, 256 channels at strides 2 to 16). `names`: only these."""
    import segmentation_models_pytorch as smp

    encoder = f"tu-{configs['unet'].model.net.encoder.name}"
    classes = configs["unet"].data.num_classes
    builders = {
        "semseg U-Net": lambda: instantiate(configs["unet"].model.net),
        "semseg U-Net, smp's widths": lambda: instantiate(configs["unet"].model.net,
                                                          decoder={"max_width_per_stride": 16}),
        "smp Unet": lambda: smp.Unet(encoder_name=encoder, encoder_weights=None, classes=classes),
        "semseg DeepLabV3+": lambda: instantiate(configs["deeplabv3plus"].model.net),
        "smp DeepLabV3Plus": lambda: smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=classes,
                                                       encoder_output_stride=16),
        "semseg SegFormer": lambda: instantiate(configs["segformer"].model.net),
        "smp Segformer": lambda: smp.Segformer(encoder_name=encoder, encoder_weights=None, classes=classes),
    }
    nets = {}
    for name, build in builders.items():
        if names is not None and name not in names:
            continue
        torch.manual_seed(seed)
        nets[name] = build()
    return nets


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


def measure_peer(steps: int = 30, encoder: str = ENCODER, overrides: list[str] = ("data.batch_size=8",),
                 names=None) -> dict:
    """Per net: median step seconds, images/s, val mIoU after `steps`, parameters, GFLOPs per image.
    `names`: only these nets (of build_nets'); a `seed=<n>` override sets the weights and the batch order."""
    with tempfile.TemporaryDirectory() as tmp:
        configs = {model: compose_config("train.yaml", [f"model={model}", f"model/encoder={encoder}",
                                                        f"paths.log_dir={tmp}", *overrides], Path(tmp) / "run")
                   for model in MODELS}
    cfg = configs["unet"]
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    nets = build_nets(configs, cfg.seed, names)
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
    for name, partner in PARTNERS.items():
        ours, theirs = result[name], result[partner]
        rows.append([f"{name} ÷ {partner}", f"{ours['params'] / theirs['params']:.2f}",
                     f"{ours['gflops'] / theirs['gflops']:.2f}", f"{ours['step'] / theirs['step']:.2f}",
                     f"{ours['images_per_s'] / theirs['images_per_s']:.2f}", f"{ours['mIoU'] / theirs['mIoU']:.2f}"])
    table = markdown_table(["model", "parameters", f"GFLOPs per {setup['size']}² image", "train step",
                            "train images/s", f"val mIoU after {setup['steps']} steps"], rows)
    return section(f"Peer models: semseg vs segmentation_models_pytorch (timm `{setup['encoder']}`)", table, [
        f"All on timm `{setup['encoder']}` from random weights (smp: `tu-{setup['encoder']}`), seed identical, "
        f"default synthetic data (128² crops; batch {setup['batch_size']} instead of 16, for time), AdamW lr "
        f"0.003 + one-cycle over {setup['steps']} steps, trained in lockstep on the same batches (order "
        "reversed every step); step time is the median after the first step; mIoU on the whole val split "
        "(100 images) with semseg's metric. semseg's nets are the default configs `model=unet`, "
        "`model=deeplabv3plus` (encoder dilated to output stride 16) and `model=segformer`; smp's are "
        "`Unet`, `DeepLabV3Plus(encoder_output_stride=16)` and `Segformer` with their defaults. U-Net "
        "decoder widths at strides 2, 4, 8, 16: semseg's default caps the encoder's at 8 × the stride "
        "(16, 32, 64, 128; full-resolution block 16), smp's are 32, 64, 128, 256 (then 16 at full "
        "resolution); the row \"smp's widths\" is semseg's U-Net with `model.net.decoder.max_width_per_stride=16`, "
        "i.e. smp's widths (its full-resolution block keeps 32 channels)."])


def unet_seeds_report(steps: int = 300, seeds=(0, 1, 2), encoder: str = ENCODER,
                      overrides: list[str] = ("data.batch_size=8",)) -> str:
    """The U-Net rows of the peer comparison, trained `steps` steps once per seed: val mIoU mean ± spread.

    One 30-step run left semseg's U-Net at 0.85x smp's mIoU, within what a seed can change; this
    part gives the spread (sample standard deviation, and min-max) over seeds, each seed a new
    initialisation and a new batch order shared by the three nets."""
    runs = [measure_peer(steps, encoder, [*overrides, f"seed={seed}"], UNETS) for seed in seeds]
    rows = []
    for name in UNETS:
        scores = torch.tensor([run[name]["mIoU"] for run in runs], dtype=torch.float64)
        rows.append([name, *(f"{s:.3f}" for s in scores.tolist()), f"{scores.mean():.3f} ± {spread(scores):.3f}",
                     f"{scores.min():.3f}-{scores.max():.3f}", f"{median([run[name]['step'] for run in runs]) * 1e3:.0f} ms"])
    for name in UNETS[:2]:
        ratios = torch.tensor([run[name]["mIoU"] / run["smp Unet"]["mIoU"] if run["smp Unet"]["mIoU"] else float("nan")
                               for run in runs], dtype=torch.float64)
        rows.append([f"{name} ÷ smp Unet", *(f"{r:.2f}" for r in ratios.tolist()),
                     f"{ratios.mean():.2f} ± {spread(ratios):.2f}", f"{ratios.min():.2f}-{ratios.max():.2f}", ""])
    table = markdown_table(["model", *(f"seed {seed}" for seed in seeds), "mean ± sd", "min-max", "train step"], rows)
    return section(f"Peer U-Net over {len(seeds)} seeds: semseg vs segmentation_models_pytorch ({steps} steps)", table, [
        f"val mIoU after {steps} steps of AdamW 0.003 + one-cycle, per seed (`seed=<n>`: the weights and the order of "
        f"the shared batches), otherwise as the peer part: timm `{encoder}` from random weights, default synthetic "
        "data at 128², batch 8, the three nets in lockstep on the same batches, mIoU on the whole val split. "
        "± is the sample standard deviation over seeds; the ratio rows divide seed by seed."])


def spread(values: torch.Tensor) -> float:
    """Sample standard deviation; 0 for a single value."""
    return float(values.std()) if len(values) > 1 else 0.0
