"""Tiled inference (mmsegmentation's slide convention), Gaussian weighting, TTA, and eval with them."""


import pytest
import torch
from hydra.utils import instantiate

from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.inference import (
    Inference,
    gaussian_window,
    slide_inference,
    tta,
    window_grid,
)
from semseg.models.pixelwise import PixelwiseClassifier


def test_window_positions_follow_mmsegmentation():
    windows = window_grid((1024, 2048), crop_size=769, stride=513)
    assert {top for top, _, _, _ in windows} == {0, 255}
    assert {left for _, left, _, _ in windows} == {0, 513, 1026, 1279}
    assert len(windows) == 8
    assert all(bottom - top == 769 and right - left == 769 for top, left, bottom, right in windows)


@pytest.mark.parametrize(
    "size, crop, stride",
    [((1024, 2048), 769, 513), ((97, 131), 32, 32), ((97, 131), (40, 64), (7, 63)), ((30, 50), 64, 48), ((5, 9), 3, 1)],
)
def test_every_pixel_is_covered(size, crop, stride):
    covered = torch.zeros(size, dtype=torch.bool)
    for top, left, bottom, right in window_grid(size, crop, stride):
        assert 0 <= top < bottom <= size[0] and 0 <= left < right <= size[1]
        covered[top:bottom, left:right] = True
    assert covered.all()


@pytest.fixture
def unet(make_cfg):
    torch.manual_seed(0)
    return instantiate(make_cfg(["model=unet"]).model.net).eval()


@pytest.mark.parametrize("gaussian", [False, True])
def test_crop_at_least_the_image_equals_whole_image_inference(unet, gaussian):
    image = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        whole = unet(image)
        for crop in [(45, 70), 128]:
            tiled = slide_inference(unet, image, crop, 40, num_classes=5, gaussian=gaussian)
            torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("gaussian", [False, True])
def test_overlapping_windows_average_to_the_pixel_logits_of_a_context_free_net(gaussian):
    torch.manual_seed(0)
    net = PixelwiseClassifier(num_classes=4).eval()  # a pixel's logits do not depend on the window
    image = torch.randn(3, 3, 37, 53)
    with torch.no_grad():
        tiled = slide_inference(net, image, crop_size=16, stride=(5, 11), num_classes=4, gaussian=gaussian, batch_size=3)
        torch.testing.assert_close(tiled, net(image), atol=1e-5, rtol=0)


def test_windows_are_run_in_batches():
    calls = []

    def net(crops):
        calls.append(crops.shape)
        return crops[:, :1].repeat(1, 2, 1, 1)

    slide_inference(net, torch.randn(1, 3, 20, 20), crop_size=8, stride=4, num_classes=2, batch_size=5)
    assert [shape[0] for shape in calls] == [5, 5, 5, 1]  # 4 × 4 windows of 8×8
    assert all(shape[-2:] == (8, 8) for shape in calls)


def test_gaussian_window_trusts_the_centre():
    weights = gaussian_window(33, 17)
    assert weights.shape == (33, 17) and (weights > 0).all()
    assert weights[16, 8] == weights.max() == 1
    assert weights[0, 0] < weights[8, 4] < weights[16, 8]


def test_flip_and_scale_tta_average_views():
    torch.manual_seed(0)
    net = PixelwiseClassifier(num_classes=3).eval()  # flip-equivariant, context-free
    image = torch.randn(1, 3, 24, 32)
    with torch.no_grad():
        plain = net(image)
        torch.testing.assert_close(tta(net, image, flip=True), plain, atol=1e-6, rtol=0)
        constant = torch.ones(1, 3, 24, 32) * 0.3  # rescaling changes nothing on a flat image
        multi = tta(net, constant, flip=True, scales=[0.5, 1.0, 1.5])
        torch.testing.assert_close(multi, net(constant), atol=1e-5, rtol=0)
        # a non-equivariant net: the flipped view counts, mirrored back
        shifted = lambda x: net(x) + torch.arange(x.shape[-1]).float()  # noqa: E731
        expected = (shifted(image) + shifted(image.flip(-1)).flip(-1)) / 2
        torch.testing.assert_close(tta(shifted, image, flip=True), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="tiles"), "inference.mode='tiles'; choose 'whole' or 'slide'"),
        (dict(mode="slide", crop_size=64, stride=65), r"inference.stride=\[65, 65\] must be between 1 and"),
        (dict(mode="slide", crop_size=64, stride=0), r"inference.stride=\[0, 0\] must be"),
        (dict(scales=[]), "inference.scales=.* non-empty"),
    ],
)
def test_bad_inference_settings_are_clear_errors(kwargs, message):
    with pytest.raises(SemsegError, match=message):
        Inference(**kwargs)


def test_crop_smaller_than_the_model_stride_is_a_clear_error(unet):
    assert unet.output_stride == 32
    with pytest.raises(SemsegError, match=r"crop_size=\[16, 16\] is smaller than the model's output stride 32"):
        Inference(mode="slide", crop_size=16, stride=8).check(unet)
    with pytest.raises(SemsegError, match="output stride 32"):
        slide_inference(unet, torch.randn(1, 3, 64, 64), 16, 16, num_classes=5)


def test_eval_selects_slide_inference_and_tta(make_cfg, checkpoint):
    def scores(overrides, output):
        return evaluate(make_cfg([f"ckpt_path={checkpoint}", *overrides], config_name="eval.yaml", output=output))

    whole = scores([], "whole")
    big_crop = scores(["inference.mode=slide", "inference.crop_size=64", "inference.stride=64"], "big")
    assert big_crop["test/mIoU"] == pytest.approx(whole["test/mIoU"], abs=1e-6)
    tiled = scores(["inference=slide", "inference.crop_size=32", "inference.stride=16", "inference.gaussian=true",
                    "inference.flip=true", "inference.scales=[0.75,1.0]"], "tiled")
    assert 0 <= tiled["test/mIoU"] <= 1 and tiled["test/loss"] != pytest.approx(whole["test/loss"])
    with pytest.raises(SemsegError, match="output stride 32"):
        scores(["inference=slide", "inference.crop_size=16", "inference.stride=16"], "small")
