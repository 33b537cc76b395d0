"""Every model maps (B,3,H,W) to (B,C,H,W) logits for any H, W; FCN upsampling starts bilinear."""

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from semseg.errors import SemsegError
from semseg.models.decoders.layers import LearnedUpsample
from semseg.models.encoders import TimmEncoder
from semseg.utils.config import CONFIG_DIR

DECODERS = ["fcn32s", "fcn16s", "fcn8s", "unet"]
ENCODERS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model" / "encoder").glob("*.yaml"))


@pytest.mark.parametrize("factor", [2, 4, 8, 16, 32])
def test_learned_upsample_starts_as_exact_bilinear_interpolation(factor):
    x = torch.randn(2, 3, 5, 7)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    out = LearnedUpsample(3, factor)(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_learned_upsample_is_trainable():
    layer = LearnedUpsample(2, 4)
    layer(torch.randn(1, 2, 3, 3)).sum().backward()
    assert layer.deconv.weight.grad is not None and layer.deconv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("decoder", DECODERS)
def test_odd_input_size_gives_logits_of_input_size(make_cfg, decoder, encoder):
    cfg = make_cfg([f"model={decoder}", f"model/encoder={encoder}"])
    net = instantiate(cfg.model.net).eval()
    with torch.no_grad():
        logits = net(torch.randn(1, 3, 97, 131))
    assert logits.shape == (1, 5, 97, 131)
    assert torch.isfinite(logits).all()


def test_pixelwise_baseline_has_no_spatial_context(make_cfg):
    net = instantiate(make_cfg(["model=pixelwise"]).model.net).eval()
    image = torch.randn(1, 3, 9, 9)
    changed = image.clone()
    changed[..., 0, 0] += 5  # change one pixel: only that pixel's logits may change
    with torch.no_grad():
        diff = (net(image) - net(changed)).abs().sum(1)[0]
    assert diff[0, 0] > 0 and diff.flatten()[1:].max() == 0


def test_unknown_encoder_name_suggests_close_names():
    with pytest.raises(SemsegError, match=r"unknown timm encoder 'resnet181'.*resnet18"):
        TimmEncoder("resnet181")


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    weights = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), weights)
    encoder = TimmEncoder("resnet18", pretrained=str(weights))
    torch.testing.assert_close(encoder.model.conv1.weight, source.conv1.weight)
    fresh = TimmEncoder("resnet18", pretrained=False)
    assert not torch.equal(fresh.model.conv1.weight, source.conv1.weight)


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(SemsegError, match="weights file .*missing.pth not found"):
        TimmEncoder("resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_safetensors_weights_load_and_foreign_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    reference = timm.create_model("resnet18", num_classes=0)
    save_file(reference.state_dict(), tmp_path / "resnet18.safetensors")
    encoder = TimmEncoder("resnet18", pretrained=str(tmp_path / "resnet18.safetensors"))
    torch.testing.assert_close(encoder.model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    with pytest.raises(SemsegError, match=r"weights file .*resnet18.safetensors does not fit timm model 'resnet34'"):
        TimmEncoder("resnet34", pretrained=str(tmp_path / "resnet18.safetensors"))


@pytest.mark.parametrize("name", ["resnet50", "regnety_016"])
def test_naming_an_encoder_on_the_default_config_builds_exactly_that_model(make_cfg, name):
    net = instantiate(make_cfg([f"model.net.encoder.name={name}"]).model.net)
    expected = timm.create_model(name, features_only=True)
    assert sum(p.numel() for p in net.encoder.parameters()) == sum(p.numel() for p in expected.parameters())


@pytest.mark.parametrize(
    ("overrides", "mean", "std"),
    [
        ([], [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # tiny_resnet: no pretrained weights, ImageNet's
        (["model/encoder=tf_efficientnet_lite0"], [0.5] * 3, [0.5] * 3),
        (["model=pixelwise"], [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # no timm encoder
        (["model/encoder=tf_efficientnet_lite0", "data.mean=[0.1,0.2,0.3]"], [0.1, 0.2, 0.3], [0.5] * 3),
    ],
    ids=["imagenet", "encoder", "no-encoder", "explicit"],
)
def test_input_normalisation_follows_the_encoder_unless_given(make_cfg, overrides, mean, std):
    cfg = make_cfg(["data=voc", *overrides])
    assert list(cfg.data.mean) == pytest.approx(mean) and list(cfg.data.std) == pytest.approx(std)
    for key in ("train_transform", "eval_transform"):
        (normalize,) = [t for t in instantiate(cfg.data[key]).transforms if type(t).__name__ == "Normalize"]
        assert list(normalize.mean) == pytest.approx(mean) and list(normalize.std) == pytest.approx(std)
