"""Every encoder-decoder model on every backbone family: logits at the input's size, the strides
the encoder reports, dilation, tagged names, and one error line for what cannot work.

Random init, batch 1, eval mode, no gradients; each encoder is built once per module and shared
by the decoders (the net is put together as EncoderDecoder does it from the composed config).
"""

import pytest
import timm
import torch
from omegaconf import OmegaConf

from semseg.errors import SemsegError
from semseg.models.encoder_decoder import EncoderDecoder
from semseg.models.encoders import TimmEncoder
from semseg.utils.config import instantiate

MODELS = ["fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv3plus", "upernet", "segformer"]
FAMILIES = ["resnet18", "convnext_tiny", "swin_tiny_patch4_window7_224", "vit_small_patch16_224",
            "tf_efficientnet_lite0"]
H, W = 97, 131


@pytest.fixture(scope="module")
def encoders() -> dict:
    return {}


def build(cfg, encoders: dict) -> EncoderDecoder:
    """The net of `cfg`, its encoder built once per encoder config."""
    key = OmegaConf.to_yaml(cfg.model.net.encoder)
    if key not in encoders:
        encoders[key] = instantiate(cfg.model.net.encoder).eval()
    return EncoderDecoder(encoders[key], instantiate(cfg.model.net.decoder), cfg.model.net.num_classes).eval()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_on_every_backbone_family_gives_logits_of_the_input_size(make_cfg, encoders, model, family):
    net = build(make_cfg([f"model={model}", f"model.net.encoder.name={family}"]), encoders)
    with torch.no_grad():
        logits = net(torch.randn(1, 3, H, W))
    assert logits.shape == (1, 5, H, W) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_features_are_nchw_at_the_strides_the_encoder_reports(family):
    """Swin's maps come NHWC from timm and a ViT's all at stride 16; the encoder hides both."""
    encoder = TimmEncoder(family).eval()
    stride = max(encoder.reductions)
    size = (2 * stride, 3 * stride)
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, *size))
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, size[0] // r, size[1] // r) for c, r in zip(encoder.channels, encoder.reductions)]
    assert encoder.reductions == sorted(encoder.reductions) and stride == 32


@pytest.mark.parametrize("stride", [8, 16])
def test_deeplabv3plus_dilates_the_encoder_to_its_output_stride(make_cfg, stride):
    cfg = make_cfg(["model=deeplabv3plus", "model/encoder=resnet18", f"model.net.encoder.output_stride={stride}"])
    net = instantiate(cfg.model.net).eval()
    assert net.encoder.reductions == {8: [2, 4, 8, 8, 8], 16: [2, 4, 8, 16, 16]}[stride]
    assert net.output_stride == stride
    assert net.decoder.aspp.branches[1][0].dilation == (96 // stride,) * 2  # the paper's 6 at 16, 12 at 8
    with torch.no_grad():
        features = net.encoder(torch.randn(1, 3, 64, 96))
        logits = net(torch.randn(1, 3, H, W))
    assert features[-1].shape[-2:] == (64 // stride, 96 // stride)
    assert logits.shape == (1, 5, H, W)


def test_deeplabv3plus_asks_for_stride_16_where_the_backbone_can_dilate(make_cfg):
    def deepest(*overrides):
        return max(instantiate(make_cfg(["model=deeplabv3plus", *overrides]).model.net.encoder).reductions)

    assert deepest() == 16  # tiny_resnet, dilated
    assert deepest("model.net.encoder.name=convnext_tiny") == 16
    assert deepest("model.net.encoder.name=vit_small_patch16_224") == 16  # the pyramid stops at the ViT's own
    assert deepest("model.net.encoder.name=swin_tiny_patch4_window7_224") == 32  # cannot dilate: keeps its own


def test_a_tagged_name_builds_that_architecture(make_cfg):
    cfg = make_cfg(["model=unet", "model.net.encoder.name=resnet18.a1_in1k"])
    net = instantiate(cfg.model.net).eval()
    expected = timm.create_model("resnet18", features_only=True)
    assert sum(p.numel() for p in net.encoder.parameters()) == sum(p.numel() for p in expected.parameters())
    with torch.no_grad():
        assert net(torch.randn(1, 3, H, W)).shape == (1, 5, H, W)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=deeplabv3plus", "model.net.encoder.name=swin_tiny_patch4_window7_224",
          "model.net.encoder.output_stride=8"],
         r"model.net.encoder.output_stride=8, but timm 'swin_tiny_patch4_window7_224' cannot be dilated.*"
         r"output_stride=null"),
        (["model=unet", "model.net.encoder.output_stride=12"], r"model.net.encoder.output_stride=12: use one of"),
        (["model=unet", "model.net.decoder.decoder_channels=[16,32,64]"],
         r"decoder_channels=\[16, 32, 64\]: this encoder has 5 levels .*give 5 positive widths"),
        (["model=unet", "model.net.decoder.decoder_channels=[16,16,0,64,128]"], r"give 5 positive widths"),
        (["model=fcn8s", "+model.net.encoder.out_indices=[3,4]"],
         r"model.net.decoder.num_skips=2, but the encoder gives 2 feature levels"),
        (["model=deeplabv3plus", "+model.net.encoder.out_indices=[4]"],
         r"model=deeplabv3plus needs a low-level feature map .*model.net.encoder.out_indices"),
        (["model.net.encoder.name=resnet18.no_such_tag"], r"timm model 'resnet18' has no pretrained tag 'no_such_tag'"),
        (["model.net.encoder.name=levit_128"], r"'levit_128' runs only at its pretraining input size 224×224"),
    ],
    ids=["stride-8-on-swin", "stride-12", "decoder-channels-short", "decoder-channels-zero", "fcn8s-two-levels",
         "deeplab-one-level", "unknown-tag", "fixed-size-family"],
)
def test_what_cannot_work_is_one_error_naming_the_keys(make_cfg, overrides, message):
    with pytest.raises(SemsegError, match=message):
        instantiate(make_cfg(overrides).model.net)


def test_unet_default_widths_keep_tiny_resnet_and_narrow_full_width_encoders(make_cfg):
    """tiny_resnet's own widths are under the cap (the default experiment's net is unchanged);
    ResNet-50's are capped at 8 × the stride."""
    def widths(*overrides):
        decoder = instantiate(make_cfg(["model=unet", *overrides]).model.net).decoder
        return [block[1][0].out_channels for block in decoder.blocks]  # deepest first

    assert widths() == [64, 32, 16, 16]
    assert widths("model/encoder=resnet50") == [128, 64, 32, 16]


@pytest.mark.parametrize("size", [(4, 5), (2, 7), (13, 9), (1, 1)])
def test_upernet_pooling_is_adaptive_average_pooling(size):
    from semseg.models.decoders.upernet import AdaptiveAvgPool

    x = torch.randn(2, 3, *size)
    for bins in (1, 2, 3, 6):
        torch.testing.assert_close(AdaptiveAvgPool(bins)(x), torch.nn.functional.adaptive_avg_pool2d(x, bins))
