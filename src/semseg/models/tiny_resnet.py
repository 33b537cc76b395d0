"""`semseg_tiny_resnet`: the default encoder, registered as a timm model under its own name.

timm's ResNet-18 layout at a quarter of the width (16-128 channels) with a deep 3-conv stem 8
wide: 0.7 M parameters, fast enough to train on a laptop CPU. Registering it (rather than
passing width arguments to `resnet18`) means `model.net.encoder.name=resnet50` on the default
config builds a real ResNet-50, never a narrowed one. It has no pretrained weights.
"""

from timm.models import generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, _create_resnet

from semseg.data.normalization import IMAGENET_MEAN, IMAGENET_STD

NAME = "semseg_tiny_resnet"

# timm's register_model reads a module's `default_cfgs`; random init only (no url)
# first_conv names the stem's first convolution, so weights of a file adapt to data.in_channels
default_cfgs = generate_default_cfgs(
    {NAME: dict(url="", mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=1000, first_conv="conv1.0")}
)


@register_model
def semseg_tiny_resnet(pretrained: bool = False, **kwargs):
    layout = dict(block=BasicBlock, layers=(2, 2, 2, 2), channels=(16, 32, 64, 128), stem_type="deep", stem_width=8)
    return _create_resnet(NAME, pretrained, **dict(layout, **kwargs))
