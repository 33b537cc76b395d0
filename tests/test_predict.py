"""semseg.predict: palette masks and overlays for any image, and one clear error per bad input."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from semseg.checkpoints.reading import load_model
from semseg.data.palette import voc_palette
from semseg.errors import SemsegError
from semseg.predict import predict
from semseg.utils.config import compose_config
from tests.helpers.cli import run_cli
from tests.helpers.settings import REPO


@pytest.fixture
def photos(tmp_path) -> Path:
    """RGB JPEG, grayscale PNG and RGBA PNG of odd sizes, plus a file that is not an image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (33, 41), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 255, (64, 50, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def predict_cfg(checkpoint, tmp_path):
    """Compose predict.yaml for the shared checkpoint, run folder under tmp_path."""

    def make(input, output, *overrides):
        overrides = [f"ckpt_path={checkpoint}", f"input={input}", f"output={output}",
                     f"paths.log_dir={tmp_path / 'logs'}", *overrides]
        return compose_config("predict.yaml", overrides, tmp_path / "predict")

    yield make
    GlobalHydra.instance().clear()


def test_predict_writes_palette_masks_and_overlays_for_any_image(predict_cfg, checkpoint, photos, tmp_path):
    """The shared checkpoint stores ImageNet's statistics (its encoder's): the mask is the net's
    argmax on the image normalised with them."""
    out = tmp_path / "masks"
    written = predict(predict_cfg(photos, out))
    assert sorted(p.name for p in written) == ["gray.png", "rgb.png", "rgba.png"]
    for name, size in [("rgb", (70, 45)), ("gray", (41, 33)), ("rgba", (50, 64))]:
        mask = Image.open(out / f"{name}.png")
        assert mask.mode == "P" and mask.size == size
        assert np.array(mask).max() < 5
        assert mask.getpalette()[:9] == voc_palette()[:3].flatten().tolist()
        overlay = Image.open(out / f"{name}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == size

    # the mask is the argmax of the network's logits on the normalised image
    model, _ = load_model(checkpoint)
    image = np.array(Image.open(photos / "rgb.jpg").convert("RGB"), dtype=np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    batch = torch.from_numpy(((image - mean) / std).transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        expected = model.net(batch).argmax(1)[0].numpy()
    assert (np.array(Image.open(out / "rgb.png")) == expected).mean() > 0.99


def test_slide_predict_on_a_glob(predict_cfg, photos, tmp_path):
    out = tmp_path / "tiled"
    written = predict(predict_cfg(f"{photos}/*.jpg", out, "inference=slide",
                                  "inference.crop_size=32", "inference.stride=24", "inference.flip=true"))
    assert [p.name for p in written] == ["rgb.png"]
    assert Image.open(out / "rgb.png").size == (70, 45)


def test_bad_inputs_are_clear_errors(predict_cfg, photos, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SemsegError, match=f"input folder {empty} holds no images"):
        predict(predict_cfg(empty, tmp_path / "o"))
    with pytest.raises(SemsegError, match=r"input=.*\*.tif matches no file"):
        predict(predict_cfg(f"{photos}/*.tif", tmp_path / "o"))
    broken = photos / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(SemsegError, match=rf"1 of 4 images could not be read: {broken} \(the log says why\)"):
        predict(predict_cfg(photos, tmp_path / "with_broken"))  # the other three are written
    with pytest.raises(SemsegError, match=r"crop_size=\[16, 16\] is smaller than the model's output stride 32"):
        predict(predict_cfg(photos / "rgb.jpg", tmp_path / "o", "inference=slide",
                            "inference.crop_size=16", "inference.stride=8"))
    with pytest.raises(SemsegError, match=r"stride=\[64, 64\] must be between 1 and inference.crop_size=\[32, 32\]"):
        predict(predict_cfg(photos / "rgb.jpg", tmp_path / "o", "inference=slide",
                            "inference.crop_size=32", "inference.stride=64"))


def test_make_predict_and_its_cli_errors(checkpoint, photos, tmp_path):
    venv = Path(sys.executable).parents[1]
    result = run_cli(
        ["make", "-C", str(REPO), "-o", f"{venv}/.installed", f"VENV={venv}", "predict", f"ckpt_path={checkpoint}",
         f"input={photos / 'rgb.jpg'}", f"output={tmp_path / 'out'}", f"paths.log_dir={tmp_path / 'logs'}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "rgb.png").is_file() and (tmp_path / "out" / "rgb_overlay.png").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_cli([sys.executable, "-m", "semseg.predict", f"ckpt_path={checkpoint}", f"input={empty}",
                   f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert bad.returncode == 2 and f"semseg: error: input folder {empty} holds no images" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_outputs_mirror_nested_inputs_and_never_collide(predict_cfg, tmp_path):
    photos = tmp_path / "trip"
    rng = np.random.default_rng(1)
    for relative in ["day1/beach.jpg", "day2/beach.jpg", "day2/beach.png", "sunset.tif"]:
        (photos / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(photos / relative)
    out = tmp_path / "masks"
    written = predict(predict_cfg(photos, out))
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "day1/beach.png", "day2/beach_jpg.png", "day2/beach_png.png", "sunset.png"]
    assert (out / "day2/beach_jpg_overlay.png").is_file()
    # a second run into a folder inside the input folder does not read its own outputs as inputs
    inside = photos / "masks"
    assert len(predict(predict_cfg(photos, inside))) == 4
    assert len(predict(predict_cfg(photos, inside, "overwrite=true"))) == 4


def test_predict_never_overwrites_an_input_image(predict_cfg, photos):
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    with pytest.raises(SemsegError, match=r"predicting would overwrite the input image .*gray.png. Choose an output folder"):
        predict(predict_cfg(photos, photos))
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_predict_normalises_as_the_checkpoint_was_trained(make_cfg, tmp_path, photos):
    """A model trained with data.mean/std of its own: predict uses the stored statistics."""
    from semseg.train import train

    cfg = make_cfg(["model=fcn8s", "data.mean=[0.2,0.3,0.4]", "data.std=[0.5,0.4,0.3]", "trainer.max_epochs=1",
                    "++trainer.limit_train_batches=2", "logger=csv", "callbacks=model_checkpoint", "test=false"])
    train(cfg)
    checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    meta = torch.load(checkpoint, weights_only=True)["semseg"]
    assert meta["mean"] == pytest.approx([0.2, 0.3, 0.4]) and meta["std"] == pytest.approx([0.5, 0.4, 0.3])
    out = tmp_path / "normalised"
    GlobalHydra.instance().clear()
    predict(compose_config("predict.yaml", [f"ckpt_path={checkpoint}", f"input={photos / 'rgb.jpg'}", f"output={out}"],
                           tmp_path / "predict"))
    model, _ = load_model(checkpoint)
    image = np.array(Image.open(photos / "rgb.jpg").convert("RGB"), dtype=np.float32) / 255
    batch = torch.from_numpy(((image - meta["mean"]) / meta["std"]).transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        expected = model.net(batch).argmax(1)[0].numpy()
    assert (np.array(Image.open(out / "rgb.png")) == expected).mean() > 0.99


def test_16_bit_grayscale_images_are_scaled_by_their_range_not_clipped(tmp_path):
    from semseg.data.io import read_image

    values = np.linspace(1000, 50000, 30 * 40).reshape(30, 40).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "scan.png")
    image = read_image(tmp_path / "scan.png")
    assert image.shape == (30, 40, 3) and image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert len(np.unique(image)) > 200, "a plain convert would clip 99 % of the pixels to 255"
