"""The benchmark suite's plumbing at tiny sizes (no timing is asserted)."""

import numpy as np
import pytest
import torch

from semseg.bench import growth, onnx_latency, overhead, pipeline
from semseg.bench.__main__ import main
from semseg.bench.timing import alternate, markdown_table
from semseg.utils.config import instantiate


def test_alternate_reverses_the_order_every_other_round():
    calls = []
    samples = alternate({"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or [2.0, 3.0]}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert samples == {"a": [1.0, 1.0, 1.0], "b": [2.0, 3.0] * 3}


def test_markdown_table():
    assert markdown_table(["x", "y"], [[1, "2 s"]]) == "| x | y |\n|---|---|\n| 1 | 2 s |"


@pytest.fixture(scope="module")
def voc_like(tmp_path_factory):
    """A few VOC-sized scenes and the `data=voc` training config at crop 320."""
    root = pipeline.write_voc_like(tmp_path_factory.mktemp("voc"), count=4)
    return pipeline.voc_config(root, crop=320, overrides=["data.num_workers=0"])


def test_torchvision_pipeline_has_the_geometry_of_the_albumentations_config(voc_like):
    """Same sampled scale, crop offset and flip: identical masks, images within a grey level."""
    datamodule = instantiate(voc_like.data)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    geometry = pipeline.geometric_part(dataset.transform)
    assert [type(t).__name__ for t in geometry.transforms] == ["RandomScale", "PadIfNeeded", "RandomCrop", "HorizontalFlip"]
    geometry.set_random_seed(0)
    checks = [pipeline.same_geometry(geometry, *dataset.load(i % 4), [320, 320]) for i in range(24)]
    assert all(check["mask_equal"] for check in checks)
    assert max(check["image_max_diff"] for check in checks) <= 2


def test_resize_nearest_indexes_like_cv2():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 21, (375, 500), dtype=np.uint8)
    for scale in rng.uniform(0.5, 2.0, 20):
        size = (int(375 * scale), int(500 * scale))
        expected = cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST)
        ours = pipeline.resize_nearest(pipeline.tv_tensors.Mask(torch.from_numpy(mask)), size)
        assert np.array_equal(ours.numpy(), expected)


def test_torchvision_pipeline_returns_the_dataset_contract(voc_like):
    image = np.zeros((375, 500, 3), dtype=np.uint8)
    sample = pipeline.TorchvisionPipeline([320, 320])(image=image, mask=np.zeros((375, 500), dtype=np.uint8))
    assert sample["image"].shape == (3, 320, 320) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (320, 320)


def test_steady_intervals_drop_warmup_per_epoch():
    assert overhead.steady_intervals([[0.0, 1.0, 3.0, 6.0], [10.0, 11.0, 13.0]], warmup=1) == [2.0, 3.0, 2.0]


def test_growth_covers_every_model_config():
    assert {"unet", "fcn8s", "patch_classifier", "pixelwise"} <= set(growth.model_names())
    assert growth.step_seconds("pixelwise", 32, batch_size=1, repeats=1) > 0


def test_suite_writes_its_report(tmp_path):
    output = tmp_path / "report.md"
    report = main(["--only", "patch_classifier", "--sizes", "32", "--repeats", "1", "--naive-max-pixels", "256",
                   "--output", str(output)])
    assert output.read_text() == report + "\n"
    assert "## Sliding window vs FCN" in report and "| 32² |" in report


def test_peer_nets_share_the_encoder(make_cfg):
    from semseg.bench.peer import MODELS, PARTNERS, build_nets

    nets = build_nets({model: make_cfg([f"model={model}", "model/encoder=resnet18"]) for model in MODELS}, seed=0)
    assert set(PARTNERS) | set(PARTNERS.values()) == set(nets)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert [net.eval()(images).shape for net in nets.values()] == [(1, 5, 64, 64)] * 7
    encoder_parameters = {name: sum(p.numel() for p in net.encoder.parameters()) for name, net in nets.items()}
    assert len(set(encoder_parameters.values())) == 1, encoder_parameters  # timm's resnet18 everywhere


def test_architectures_counts_every_encoder_decoder_model():
    from semseg.bench import architectures

    results = architectures.measure("tiny_resnet", size=64, num_classes=5)
    assert set(results) == set(architectures.MODELS)
    assert all(r["gflops"] > 0 and 0 < r["decoder_params"] < r["params"] for r in results.values())
    assert results["deeplabv3plus"]["output_stride"] == 16 and results["unet"]["output_stride"] == 32


def test_onnx_latency_compares_both_sides_on_the_same_network(tmp_path):
    nets = onnx_latency.sides("fcn8s", tmp_path)
    image = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        eager, runtime = nets["PyTorch eager"](image), nets["ONNX Runtime"](image)
    assert torch.allclose(eager, runtime, atol=1e-4)
    times = onnx_latency.latency(nets, (64, 96), "slide", rounds=1)
    assert set(times) == {"PyTorch eager", "ONNX Runtime"} and min(times.values()) > 0

