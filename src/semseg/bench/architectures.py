"""What each encoder-decoder model costs: parameters and GFLOPs of one image, every `model=` on one
timm encoder.

No timing: FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts
as 2) on one forward pass in eval mode, random weights, so the figures are exact and do not
depend on the machine.
"""

import torch
from hydra import compose, initialize_config_dir

from semseg.bench.timing import count_flops, markdown_table, section
from semseg.utils.config import CONFIG_DIR, instantiate

MODELS = ("fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv3plus", "upernet", "segformer")


def net_config(model: str, encoder: str, num_classes: int):
    """The net of `model=<model> model/encoder=<encoder>`, composed as `semseg.train` would."""
    overrides = [f"model={model}", f"model/encoder={encoder}", f"model.net.num_classes={num_classes}"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train.yaml", overrides=overrides).model.net


def measure(encoder: str = "resnet50", size: int = 512, num_classes: int = 21, models=MODELS) -> dict[str, dict]:
    """Per model: parameters, decoder parameters, GFLOPs per `size`² image and the output stride."""
    image = torch.randn(1, 3, size, size)
    results = {}
    for model in models:
        torch.manual_seed(0)
        net = instantiate(net_config(model, encoder, num_classes)).eval()
        with torch.no_grad():
            flops = count_flops(lambda net=net: net(image))
        results[model] = {"params": sum(p.numel() for p in net.parameters()),
                          "decoder_params": sum(p.numel() for p in net.decoder.parameters()),
                          "gflops": flops / 1e9, "output_stride": net.output_stride}
    return results


def report(encoder: str = "resnet50", size: int = 512, num_classes: int = 21) -> str:
    results = measure(encoder, size, num_classes)
    rows = [[f"`model={model}`", f"{r['params'] / 1e6:.1f} M", f"{r['decoder_params'] / 1e6:.2f} M",
             f"{r['gflops']:.1f}", r["output_stride"]] for model, r in results.items()]
    table = markdown_table(["model", "parameters", "of which decoder", f"GFLOPs per {size}² image",
                            "output stride"], rows)
    return section(f"Architectures: size and cost on timm `{encoder}`", table, [
        f"Default config of each model with `model/encoder={encoder}`, {num_classes} classes, random weights; "
        f"one {size}×{size} image, eval mode, FLOPs from `torch.utils.flop_counter.FlopCounterMode` (a "
        "multiply-add counts as 2). `deeplabv3plus` dilates the encoder to output stride 16."])
