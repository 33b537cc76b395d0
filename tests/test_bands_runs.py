"""Multi-band and 16-bit images through whole runs: train from pretrained RGB weights, evaluate,
predict and export 4-band uint16 tiles; train a 1-band 16-bit set; and show that a band beyond
the third reaches the model. Real TIFFs written here with tifffile, real (tiny) Trainer runs."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
import tifffile
import timm
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from PIL import Image

import semseg.models.tiny_resnet  # noqa: F401  (registers semseg_tiny_resnet with timm)
from semseg.data.inspect import inspect_dataset
from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.export import export
from semseg.onnx_net import METADATA_KEY
from semseg.predict import predict
from semseg.train import train
from semseg.utils.config import compose_config
from tests.helpers.disk_formats import save_weights
from tests.helpers.settings import REPO

SIZES = [(40, 56), (48, 36), (36, 64)]  # mixed sizes and orientations
RUN = ["data=folder", "data.class_names=[land,water]", "data.crop_size=[32,32]", "data.batch_size=2",
       "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "model/scheduler=constant", "logger=csv"]


def write_tiles(root: Path, bands: int, rng, label_band: int | None = None) -> None:
    """uint16 tiles in data=folder's layout, band-first and band-last in turn, with 0/1 masks. With
    `label_band`, that band alone says the class (high: water), the others are noise."""
    for split in ("train", "val"):
        for index, (h, w) in enumerate(SIZES * 2):
            image = rng.integers(0, 65536, (bands, h, w)).astype(np.uint16)
            mask = np.zeros((h, w), np.uint8)
            if index % 2:
                mask[: h // 2] = 1
            else:
                mask[:, : w // 2] = 1
            if label_band is not None:
                image[label_band] = np.where(mask == 1, rng.integers(40000, 65536, (h, w)), rng.integers(0, 25000, (h, w)))
            for folder in ("images", "masks"):
                (root / folder / split).mkdir(parents=True, exist_ok=True)
            tiff = image if index % 2 == 0 else image.transpose(1, 2, 0)
            tifffile.imwrite(root / "images" / split / f"tile{index}.tif", np.squeeze(tiff))
            Image.fromarray(mask).save(root / "masks" / split / f"tile{index}.png")


@pytest.fixture(scope="module")
def four_band_run(tmp_path_factory):
    """A U-Net on tiny_resnet, started from RGB weights in a local file, trained on 4-band tiles."""
    tmp = tmp_path_factory.mktemp("bands")
    write_tiles(tmp / "tiles", 4, np.random.default_rng(0))
    torch.manual_seed(0)
    weights = tmp / "tiny_resnet_rgb.safetensors"
    save_weights(timm.create_model("semseg_tiny_resnet", pretrained=False), weights)
    base = [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", "data.num_workers=0",
            "extras.print_config=false"]
    cfg = compose_config("train.yaml", [*base, *RUN, f"data.root={tmp / 'tiles'}", "data.in_channels=4",
                                        f"model.net.encoder.pretrained={weights}"], tmp / "run")
    metrics = train(cfg)
    GlobalHydra.instance().clear()
    return tmp, cfg, metrics


def test_four_band_uint16_tiles_train_from_rgb_weights_with_their_own_statistics(four_band_run):
    tmp, cfg, metrics = four_band_run
    assert np.isfinite(metrics["train/loss"]) and "test/mIoU" in metrics
    meta = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt", weights_only=True)["semseg"]
    assert meta["in_channels"] == 4 and meta["model_config"]["net"]["encoder"]["in_channels"] == 4
    # the train split's per-band statistics on the 0-1 scale, counted by hand here
    pixels = np.concatenate([np.moveaxis(tifffile.imread(p), 0 if tifffile.imread(p).shape[0] == 4 else -1, -1).reshape(-1, 4)
                             for p in sorted((tmp / "tiles" / "images" / "train").glob("*.tif"))]) / 65535
    assert meta["mean"] == pytest.approx(pixels.mean(0).tolist(), rel=1e-5)
    assert meta["std"] == pytest.approx(pixels.std(0).tolist(), rel=1e-4)
    assert list(cfg.data.mean) == pytest.approx(meta["mean"])  # the run config shows the numbers used


def test_four_band_checkpoints_evaluate_predict_at_each_size_and_export(four_band_run, make_cfg, tmp_path):
    tmp, cfg, _ = four_band_run
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    data = [f"data.root={tmp / 'tiles'}", "data=folder", "data.class_names=[land,water]"]
    scores = evaluate(make_cfg([*data, "data.in_channels=4", f"ckpt_path={best}", "logger=csv"], config_name="eval.yaml",
                               output="eval"))
    assert 0 <= scores["test/mIoU"] <= 1
    with pytest.raises(SemsegError, match=r"takes 4-band images but data.in_channels=3; .* data.in_channels=4"):
        evaluate(make_cfg([*data, f"ckpt_path={best}"], config_name="eval.yaml", output="eval3"))
    images = tmp / "tiles" / "images" / "val"
    masks = predict(compose_config("predict.yaml", [f"ckpt_path={best}", f"input={images}", f"output={tmp_path / 'pred'}"],
                                   tmp_path / "predict"))
    for path in sorted(images.glob("*.tif")):
        shape = tifffile.imread(path).shape
        size = shape[1:] if shape[0] == 4 else shape[:2]
        assert np.array(Image.open(tmp_path / "pred" / f"{path.stem}.png")).shape == size
        overlay = Image.open(tmp_path / "pred" / f"{path.stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == size[::-1]
    onnx_file = export(compose_config("export.yaml", [f"ckpt_path={best}", f"output={tmp_path / 'net.onnx'}"],
                                      tmp_path / "export"))
    graph = onnx.load(str(onnx_file))
    assert graph.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 4
    stored = json.loads({p.key: p.value for p in graph.metadata_props}[METADATA_KEY])
    assert stored["in_channels"] == 4 and "(B, 4, H, W)" in stored["input"] and len(stored["mean"]) == 4
    from_onnx = predict(compose_config("predict.yaml", [f"ckpt_path={onnx_file}", f"input={images}",
                                                        f"output={tmp_path / 'onnx'}"], tmp_path / "predict_onnx"))
    for torch_mask, onnx_mask in zip(sorted(masks), sorted(from_onnx)):
        assert (np.array(Image.open(torch_mask)) == np.array(Image.open(onnx_mask))).mean() > 0.99


def test_a_one_band_16_bit_set_trains(make_cfg, tmp_path):
    write_tiles(tmp_path / "tiles", 1, np.random.default_rng(1))
    cfg = make_cfg([*RUN, f"data.root={tmp_path / 'tiles'}", "data.in_channels=1", "model=fcn8s", "callbacks=none",
                    "test=false"])
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and len(cfg.data.mean) == len(cfg.data.std) == 1


def test_a_class_that_only_the_fourth_band_shows_is_learned(make_cfg, tmp_path):
    """The same tiles, the class in band 3 alone: with it the pixelwise model separates the classes,
    with bands 0-2 only it cannot, so the fourth band reaches the network."""
    write_tiles(tmp_path / "tiles", 4, np.random.default_rng(2), label_band=3)
    common = [*RUN, f"data.root={tmp_path / 'tiles'}", "model=pixelwise", "trainer.max_epochs=15",
              "model.optimizer.lr=0.01", "callbacks=none", "test=false"]
    with_band = train(make_cfg([*common, "data.in_channels=4"], output="four"))["val/mIoU"]
    without = train(make_cfg([*common, "data.in_channels=3", "data.bands=[0,1,2]"], output="three"))["val/mIoU"]
    assert with_band > 0.9 and without < 0.7, (with_band, without)


def readme_commands() -> list[list[str]]:
    """The `python -m semseg...` commands of the README's "Beyond RGB" section, as the shell splits them."""
    section = (REPO / "README.md").read_text().split("\n### Beyond RGB", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.startswith("python -m semseg.")]


def test_the_beyond_rgb_commands_of_the_readme_run_in_order(make_cfg, tmp_path):
    """inspect, train (from a weights file of the named encoder), eval, predict, export, as printed;
    only the tiles, the weights file, the output places and the run size differ."""
    commands = readme_commands()
    assert [words[2] for words in commands] == ["semseg.data.inspect", "semseg.train", "semseg.eval", "semseg.predict", "semseg.export"]
    tiles = tmp_path / "tiles"
    write_tiles(tiles, 4, np.random.default_rng(3))
    weights = tmp_path / "resnet18.safetensors"
    save_weights(timm.create_model("resnet18", pretrained=False), weights)
    run = tmp_path / "run"
    places = {"/datasets/tiles": str(tiles), "/weights/resnet18.a1_in1k.safetensors": str(weights),
              "<run>": str(run), "output=predictions": f"output={tmp_path / 'predictions'}",
              "output=tiles.onnx": f"output={tmp_path / 'tiles.onnx'}"}

    def placed(words: list[str]) -> list[str]:
        for old, new in places.items():
            words = [word.replace(old, new) for word in words]
        return words

    tiny = ["trainer.max_epochs=1", "data.batch_size=2", "data.crop_size=[32,32]", "logger=csv"]
    for words in commands:
        entry, overrides = words[2], placed(words[3:])
        if entry == "semseg.data.inspect":
            reports = inspect_dataset(make_cfg([*overrides, f"output={tmp_path / 'report'}"], config_name="inspect.yaml"))
            assert reports and not any(report.problems for report in reports)
            assert (tmp_path / "report" / "bands.csv").is_file()
        elif entry == "semseg.train":
            cfg = make_cfg([*overrides, *tiny])
            with open_dict(cfg):
                cfg.paths.output_dir = str(run)
            assert np.isfinite(train(cfg)["train/loss"])
        elif entry == "semseg.eval":
            assert "test/mIoU" in evaluate(make_cfg([*overrides, "logger=csv"], config_name="eval.yaml", output="eval"))
        elif entry == "semseg.predict":
            written = predict(compose_config("predict.yaml", overrides, tmp_path / "predict"))
            assert len(written) == len(list((tiles / "images" / "val").glob("*.tif")))
        else:
            assert export(compose_config("export.yaml", overrides, tmp_path / "export")).is_file()
