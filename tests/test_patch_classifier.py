"""The sliding-window classifier: naive patches and the dense convolutional pass agree exactly."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from semseg.errors import SemsegError
from semseg.models.patch_classifier import PatchClassifier
from semseg.train import train

MAX_DIFF = 1e-4


def randomise_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial running statistics, so eval-mode BatchNorm is not the identity."""
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return net.eval()


def logits_in_both_modes(net: PatchClassifier, images: torch.Tensor):
    with torch.no_grad():
        net.mode = "naive"
        naive = net(images)
        net.mode = "dense"
        dense = net(images)
    return naive, dense


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(), (21, 27)),  # the config's architecture, odd size
        (dict(patch_size=45, stages=(8, 8, 8), hidden=16), (23, 30)),  # floor-mode pooling drops a row
        (dict(patch_size=7, stages=(), hidden=8), (9, 8)),  # no stage: fully-connected layers only
    ],
)
def test_naive_and_dense_give_the_same_logits_on_random_weights(kwargs, size):
    torch.manual_seed(0)
    net = randomise_batchnorm(PatchClassifier(num_classes=5, **kwargs))
    naive, dense = logits_in_both_modes(net, torch.randn(2, 3, *size))
    assert naive.shape == dense.shape == (2, 5, *size)
    assert (naive - dense).abs().max() <= MAX_DIFF
    assert naive.std() > 0.01, "logits should vary, or the comparison proves nothing"


def test_naive_logits_are_the_classification_of_the_reflect_padded_patch():
    torch.manual_seed(0)
    net = randomise_batchnorm(PatchClassifier(num_classes=3, patch_size=9, stages=(4,), hidden=8))
    image = torch.randn(1, 3, 12, 10)
    patch = F.pad(image, (4, 4, 4, 4), mode="reflect")[..., 0:9, 7:16]  # centred on pixel (0, 7)
    with torch.no_grad():
        expected = net.classifier(net.features(patch))[0]
        net.mode = "naive"
        assert torch.allclose(net(image)[0, :, 0, 7], expected, atol=1e-6)


def test_training_samples_pixels_with_their_own_targets():
    net = PatchClassifier(num_classes=5, patch_size=9, stages=(4,), num_samples=50)
    images = torch.randn(3, 3, 20, 20)
    masks = torch.arange(3 * 20 * 20).view(3, 20, 20) % 5
    logits, targets = net.sample_for_loss(images, masks)
    assert logits.shape == (3, 5, 1, 50) and targets.shape == (3, 1, 50)
    # every target is a mask value of its own image
    for b in range(3):
        assert set(targets[b].flatten().tolist()) <= set(masks[b].flatten().tolist())
    F.cross_entropy(logits, targets).backward()
    assert net.features[0].weight.grad.abs().sum() > 0


def test_trained_model_gives_the_same_logits_in_both_modes(make_cfg):
    cfg = make_cfg(["model=patch_classifier", "trainer.max_epochs=2", "model/scheduler=constant",
                    "logger=csv", "model.net.num_samples=32"])
    metrics = train(cfg)
    assert metrics["test/mIoU"] > 0
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt", weights_only=True)
    net = instantiate(cfg.model.net)
    net.load_state_dict({k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()})
    net.eval()
    assert net.features[1].num_batches_tracked > 0, "the weights come from training"
    naive, dense = logits_in_both_modes(net, torch.randn(1, 3, 19, 25))
    assert (naive - dense).abs().max() <= MAX_DIFF


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(patch_size=32), "patch_size=32: the patch must have a centre pixel"),
        (dict(patch_size=9, stages=(8, 8)), "patch_size=9 is too small for 2 stages"),
        (dict(mode="fast"), r"model.net.mode='fast'; choose one of \['naive', 'dense'\]"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(SemsegError, match=message):
        PatchClassifier(num_classes=5, **kwargs)


def test_image_too_small_for_the_patch_is_a_clear_error():
    net = PatchClassifier(num_classes=5, patch_size=33).eval()
    with pytest.raises(SemsegError, match="image of 10x40 pixels is too small"):
        net(torch.randn(1, 3, 40, 10))
