"""Images beyond 8-bit RGB: multi-band and 16-bit TIFFs, read, masked, transformed, summarised and
fed to every model, on real files that tifffile writes here."""

import json
import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import tifffile
import torch
from albumentations.pytorch import ToTensorV2
from omegaconf import OmegaConf
from PIL import Image, ImageOps

from semseg.data.band_statistics import CACHE_FOLDER, band_statistics
from semseg.data.bands import rgb_view
from semseg.data.folder import FolderDataModule, FolderDataset
from semseg.data.io import image_size, read_image
from semseg.data.image_mask_dataset import to_sample
from semseg.data.transforms import RGB_ONLY_TRANSFORMS, Normalize, drop_rgb_only
from semseg.errors import SemsegError
from semseg.utils.config import instantiate
from tests.helpers.disk_formats import save_weights

REPO = Path(__file__).resolve().parents[1]
SIZES = [(20, 30), (24, 18), (17, 40)]  # mixed tile sizes, each smaller side above 13 bands


def uint16_bands(rng, bands: int, h: int, w: int) -> np.ndarray:
    return rng.integers(1, 65536, (bands, h, w)).astype(np.uint16)


def write_folder(root: Path, rng, bands: int = 4, nodata_corner: bool = False) -> dict[str, np.ndarray]:
    """A data=folder layout of uint16 tiles, band-first and band-last in turn; their pixels by name."""
    pixels = {}
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for index, (h, w) in enumerate(SIZES):
            image = uint16_bands(rng, bands, h, w)
            if nodata_corner:
                image[1, :3, :3] = 0  # one band holds nodata there
            layout = image if index % 2 == 0 else image.transpose(1, 2, 0)
            tifffile.imwrite(root / "images" / split / f"t{index}.tif", layout)
            Image.fromarray(rng.integers(0, 2, (h, w)).astype(np.uint8)).save(root / "masks" / split / f"t{index}.png")
            pixels[f"{split}/t{index}"] = image.transpose(1, 2, 0)
    return pixels


# reading

@pytest.mark.parametrize("layout", ["band_first", "band_last"])
def test_uint16_tiles_read_as_float_bands_on_a_0_1_scale_with_bands_selected(tmp_path, layout):
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        image = uint16_bands(rng, 4, h, w)
        path = tmp_path / f"{layout}_{h}x{w}.tif"
        tifffile.imwrite(path, image if layout == "band_first" else image.transpose(1, 2, 0))
        read = read_image(path, in_channels=4)
        assert read.dtype == np.float32 and read.shape == (h, w, 4) and image_size(path) == (h, w)
        np.testing.assert_array_equal(read, image.transpose(1, 2, 0).astype(np.float32) / np.float32(65535))
        chosen = read_image(path, in_channels=2, bands=[3, 0])
        np.testing.assert_array_equal(chosen, read[..., [3, 0]])


def test_a_geotiff_reads_as_its_bands(tmp_path):
    """GeoTIFF tags (pixel scale, tie point, GeoKey directory) do not change what is read."""
    image = uint16_bands(np.random.default_rng(11), 13, 20, 30)
    geo = [(33550, "d", 3, (10.0, 10.0, 0.0), True), (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0), True),
           (34735, "H", 8, (1, 1, 0, 1, 3072, 0, 1, 32633), True)]
    tifffile.imwrite(tmp_path / "s2.tif", image, extratags=geo)
    np.testing.assert_array_equal(read_image(tmp_path / "s2.tif", in_channels=13),
                                  image.transpose(1, 2, 0).astype(np.float32) / np.float32(65535))
    assert image_size(tmp_path / "s2.tif") == (20, 30)


@pytest.mark.parametrize(("in_channels", "bands", "held"), [(3, None, "has 4 band"), (4, [0, 1], r"has 4 band\(s\), 2 after data.bands=\[0, 1\]")])
def test_a_band_count_other_than_in_channels_is_one_error_naming_the_file_and_keys(tmp_path, in_channels, bands, held):
    path = tmp_path / "four.tif"
    tifffile.imwrite(path, uint16_bands(np.random.default_rng(0), 4, 20, 30))
    with pytest.raises(SemsegError, match=held) as error:
        read_image(path, in_channels=in_channels, bands=bands)
    assert str(path) in str(error.value) and "data.in_channels" in str(error.value) and "data.bands" in str(error.value)
    with pytest.raises(SemsegError, match=r"asks for \[7\]"):
        read_image(path, in_channels=1, bands=[7])


@pytest.mark.parametrize(("dtype", "scale"), [(np.uint8, 255), (np.uint16, 65535), (np.int16, 32767), (np.float32, 1)])
def test_every_dtype_reaches_the_0_1_scale_by_its_range(tmp_path, dtype, scale):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    image = (rng.integers(info.min, info.max, (5, 20, 30), endpoint=True) if info else rng.random((5, 20, 30))).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", image)
    expected = image.transpose(1, 2, 0).astype(np.float32) / np.float32(scale)
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif", in_channels=5), np.clip(expected, -1, 1))


def test_one_band_16_bit_tiffs_and_grayscale_pngs_read_as_one_band(tmp_path):
    image = np.random.default_rng(2).integers(0, 65536, (20, 30)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", image)
    Image.fromarray(image).save(tmp_path / "g.png")
    Image.fromarray((image >> 8).astype(np.uint8)).save(tmp_path / "g8.jpg", quality=100)
    for name in ("g.tif", "g.png"):
        read = read_image(tmp_path / name, in_channels=1)
        assert read.shape == (20, 30, 1) and read.dtype == np.float32
        np.testing.assert_array_equal(read[..., 0], image.astype(np.float32) / np.float32(65535))
    assert read_image(tmp_path / "g8.jpg", in_channels=1).shape == (20, 30, 1)
    # the default (in_channels=3) keeps what semseg always did: 8-bit RGB scaled by the image's range
    assert read_image(tmp_path / "g.tif").dtype == np.uint8 and read_image(tmp_path / "g.tif").shape == (20, 30, 3)


def test_tiff_orientation_turns_bands_as_pillow_turns_rgb(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.tif"
        tifffile.imwrite(path, rgb, extratags=[(274, "H", 1, orientation, True)])
        upright = read_image(path)  # through Pillow, as always
        bands = read_image(path, in_channels=3, bands=[0, 1, 2])  # through tifffile
        np.testing.assert_array_equal((bands * 255).round().astype(np.uint8), upright)
        assert image_size(path) == upright.shape[:2]


def old_read_image(path: Path) -> np.ndarray:
    """read_image before multi-band support, for 8-bit files (no 16-bit scaling involved)."""
    with Image.open(path) as image:
        return np.array(ImageOps.exif_transpose(image).convert("RGB"))


def test_the_rgb_path_gives_the_same_bytes_as_before(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (21, 33, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=90)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    tifffile.imwrite(tmp_path / "x.tif", rgb)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    before = A.Compose([A.Normalize(mean=mean, std=std), ToTensorV2()])
    cfg = OmegaConf.load(REPO / "configs/data/transforms/normalize.yaml")
    cfg.transforms[0].mean, cfg.transforms[0].std = list(mean), list(std)
    now = instantiate(cfg)
    assert isinstance(now.transforms[0], Normalize)
    for name in ("x.jpg", "x.png", "gray.png", "x.tif"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.tobytes() == old_read_image(tmp_path / name).tobytes()
        assert torch.equal(now(image=image)["image"], before(image=image)["image"])
        old_sample = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        assert torch.equal(to_sample(image, np.zeros(image.shape[:2]), "x")["image"], old_sample)


def test_normalize_takes_one_mean_and_std_per_band_of_float_images():
    image = np.random.default_rng(5).random((8, 9, 13), dtype=np.float32)
    mean, std = np.linspace(0.1, 0.6, 13), np.linspace(0.2, 0.4, 13)
    out = Normalize(mean, std)(image=image)["image"]
    np.testing.assert_allclose(out, (image - mean) / std, rtol=1e-5, atol=1e-6)
    rgb = (image[..., :3] * 255).astype(np.uint8)  # uint8: the same as float pixels / 255
    np.testing.assert_allclose(Normalize(mean[:3], std[:3])(image=rgb)["image"],
                               Normalize(mean[:3], std[:3])(image=rgb.astype(np.float32) / 255)["image"], atol=1e-5)
    with pytest.raises(SemsegError, match="one mean and std per band"):
        Normalize(mean[:3], std[:3])(image=image)


# dataset: nodata, transforms

def test_nodata_pixels_become_ignore_before_transforms(tmp_path):
    write_folder(tmp_path, np.random.default_rng(6), nodata_corner=True)
    dataset = FolderDataset(tmp_path, "train", num_classes=2, in_channels=4, nodata=0)
    for index in range(len(dataset)):
        image, mask = dataset.load(index)
        assert image.dtype == np.float32 and image.shape[-1] == 4
        assert (mask[:3, :3] == 255).all() and (mask[3:, 3:] != 255).all()
        assert (image[:3, :3] == 0).all() and (image[3:, 3:] > 0).all()  # every band of a nodata pixel is 0
    plain = FolderDataset(tmp_path, "train", num_classes=2, in_channels=4)
    assert (plain.load(0)[1] != 255).all()


def test_nan_nodata_of_float_images_never_reaches_the_network(tmp_path):
    from semseg.data.io import read_image_and_nodata

    image = np.random.default_rng(12).random((3, 20, 30)).astype(np.float32)
    image[2, 5:7, 5:9] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", image)
    read, nodata = read_image_and_nodata(tmp_path / "f.tif", in_channels=3, nodata=float("nan"))
    assert read.dtype == np.float32 and not np.isnan(read).any() and nodata.sum() == 8 and (read[nodata] == 0).all()


def scale_crop(crop: int, bands: int) -> A.Compose:
    """configs/data/transforms/scale_crop_train.yaml at a small crop, with per-band statistics."""
    cfg = OmegaConf.load(REPO / "configs/data/transforms/scale_crop_train.yaml")
    cfg.transforms[1].min_height = cfg.transforms[1].min_width = crop
    cfg.transforms[2].height = cfg.transforms[2].width = crop
    cfg.transforms[5].mean, cfg.transforms[5].std = [0.5] * bands, [0.25] * bands
    return instantiate(cfg)


@pytest.mark.parametrize("bands", [4, 13])
def test_the_training_pipeline_runs_on_n_bands_and_keeps_masks_aligned(bands, caplog):
    """RandomScale, PadIfNeeded, RandomCrop, HorizontalFlip on float bands: each band comes out as it
    would alone (albumentations splits cv2 calls of more than 4 channels), the mask as with one band,
    the image follows the mask, and ColorJitter is left out with one log line."""
    rng = np.random.default_rng(bands)
    mask = np.kron(rng.integers(0, 4, (4, 4)), np.ones((12, 12), dtype=np.int64)).astype(np.uint8)[:44, :40]
    image = np.repeat((mask / 4.0).astype(np.float32)[..., None], bands, axis=-1)
    image[..., -1] = rng.random(mask.shape)
    with caplog.at_level(logging.INFO, logger="semseg.data.transforms"):
        pipeline = drop_rgb_only(scale_crop(32, bands), bands, "data.train_transform")
    assert "ColorJitter" in caplog.text and caplog.text.count("leave out") == 1
    assert not any(type(t).__name__ in RGB_ONLY_TRANSFORMS for t in pipeline.transforms)
    one_band = drop_rgb_only(scale_crop(32, 1), 1, "data.train_transform")
    for seed in range(6):
        pipeline.set_random_seed(seed)
        out = pipeline(image=image, mask=mask)
        assert out["image"].shape == (bands, 32, 32) and out["mask"].shape == (32, 32)
        for band in (0, bands - 1):
            one_band.set_random_seed(seed)
            alone = one_band(image=np.ascontiguousarray(image[..., band : band + 1]), mask=mask)
            assert torch.equal(out["mask"], alone["mask"])
            torch.testing.assert_close(out["image"][band], alone["image"][0], rtol=0, atol=1e-6)
        band, labels = out["image"][0].numpy() * 0.25 + 0.5, out["mask"].numpy()  # un-normalised
        labelled = labels != 255
        # inside blocks (a 5x5 neighbourhood of one label: cv2's nearest-neighbour masks sit up to
        # half a source pixel off its bilinear images), image and mask agree
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(labels.astype(np.int64), 2, constant_values=-1), (5, 5))
        interior = labelled & (windows.min((-1, -2)) == windows.max((-1, -2)))
        assert interior.sum() > 20
        np.testing.assert_allclose(band[interior] * 4, labels[interior], atol=1e-4)
        assert np.allclose(out["image"][:, ~labelled], (0 - 0.5) / 0.25)  # padding: 0 before normalising


def test_the_rgb_only_list_is_what_albumentations_refuses_on_other_band_counts():
    """Each listed transform fails on 4 bands (so dropping it loses nothing that would run); band-agnostic
    image-only transforms run (so they stay)."""
    image = np.random.default_rng(13).random((16, 16, 4), dtype=np.float32)
    for name in sorted(RGB_ONLY_TRANSFORMS):
        with pytest.raises(Exception):  # noqa: B017 (albumentations raises TypeError or ValueError)
            A.Compose([getattr(A, name)(p=1)], seed=0)(image=image)
    for kept in (A.GaussianBlur(p=1), A.RandomBrightnessContrast(p=1), A.GaussNoise(p=1), A.RandomGamma(p=1)):
        assert A.Compose([kept], seed=0)(image=image)["image"].shape == image.shape


def test_the_datamodule_drops_rgb_only_transforms_only_for_other_band_counts(tmp_path):
    write_folder(tmp_path, np.random.default_rng(7))
    splits = {"train": "train", "val": "val", "test": "val"}
    rgb = FolderDataModule(root=str(tmp_path), class_names=["a", "b"], splits=splits, train_transform=scale_crop(16, 3))
    assert type(rgb.transforms["train"].transforms[4]).__name__ == "ColorJitter"
    four = FolderDataModule(root=str(tmp_path), class_names=["a", "b"], splits=splits, in_channels=4, nodata=0,
                            train_transform=scale_crop(16, 4), eval_transform=A.Compose([Normalize([0.5] * 4, [0.25] * 4), ToTensorV2()]))
    assert type(four.transforms["train"].transforms[4]).__name__ == "NoOp"
    four.setup("fit")
    sample = four.datasets["train"][0]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (4, 16, 16)
    assert four.datasets["val"][1]["image"].shape == (4, *SIZES[1])
    assert four.description()["in_channels"] == 4 and four.description()["rgb_bands"] == [0, 1, 2]
    with pytest.raises(SemsegError, match="data.bands=.*selects 2 band"):
        FolderDataModule(root=str(tmp_path), class_names=["a", "b"], splits=splits, in_channels=4, bands=[0, 1])
    with pytest.raises(SemsegError, match="data.rgb_bands"):
        FolderDataModule(root=str(tmp_path), class_names=["a", "b"], splits=splits, in_channels=4, rgb_bands=[0, 1, 4])


def test_rgb_view_picks_three_bands_or_repeats_gray():
    image = torch.arange(5 * 2 * 2, dtype=torch.float32).view(5, 2, 2)
    assert torch.equal(rgb_view(image), image[:3])
    assert torch.equal(rgb_view(image, [4, 2, 0]), image[[4, 2, 0]])
    gray = np.ones((1, 2, 2))
    assert rgb_view(gray).shape == (3, 2, 2)
    with pytest.raises(SemsegError, match="data.rgb_bands"):
        rgb_view(image, [5, 0, 0])


# band statistics

def test_band_statistics_match_numpy_leave_out_nodata_and_are_cached(tmp_path, caplog):
    root = tmp_path / "data"
    pixels = write_folder(root, np.random.default_rng(8), nodata_corner=True)
    datamodule = FolderDataModule(root=str(root), class_names=["a", "b"], splits={"train": "train", "val": "val"},
                                  in_channels=4, nodata=0)
    stats = band_statistics(datamodule, tmp_path / "cache")
    values = np.concatenate([
        # the float32 0-1 pixels read_image gives, summed in float64
        (image[~(image == 0).any(-1)].astype(np.float32) / np.float32(65535)).astype(np.float64)
        for name, image in pixels.items() if name.startswith("train")
    ])
    assert stats["images"] == 3 and stats["pixels"] == len(values)
    np.testing.assert_allclose(stats["mean"], values.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats["std"], values.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["min"], values.min(0))
    np.testing.assert_allclose(stats["max"], values.max(0))
    cached = list((tmp_path / "cache" / CACHE_FOLDER).glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == stats
    with caplog.at_level(logging.INFO, logger="semseg.data.band_statistics"):
        assert band_statistics(datamodule, tmp_path / "cache") == stats
    assert "read from the cache" in caplog.text
    cached[0].write_text("{broken")
    assert band_statistics(datamodule, tmp_path / "cache") == stats  # counted again, with a warning
    tifffile.imwrite(root / "images" / "train" / "t0.tif", uint16_bands(np.random.default_rng(9), 4, *SIZES[0]))
    assert band_statistics(datamodule, tmp_path / "cache") != stats  # a changed file changes the key
    assert len(list((tmp_path / "cache" / CACHE_FOLDER).glob("*.json"))) == 2


def test_inspect_writes_the_bands_of_multi_band_data(tmp_path, capsys):
    from semseg.data.inspect import inspect_dataset

    write_folder(tmp_path / "data", np.random.default_rng(10))
    cfg = OmegaConf.create({
        "data": {"_target_": "semseg.data.folder.FolderDataModule", "root": str(tmp_path / "data"),
                 "class_names": ["a", "b"], "splits": {"train": "train", "val": "val"}, "in_channels": 4},
        "max_images": None, "output": str(tmp_path / "out"),
    })
    reports = inspect_dataset(cfg)
    assert all(len(report.bands["mean"]) == 4 for report in reports)
    rows = (tmp_path / "out" / "bands.csv").read_text().splitlines()
    assert rows[0] == "split,band,mean,std,min,max" and len(rows) == 1 + 2 * 4
    assert "bands on the 0-1 scale" in capsys.readouterr().out


# models

MODELS = ["fcn8s", "fcn16s", "fcn32s", "unet", "deeplabv3plus", "upernet", "segformer", "pixelwise", "patch_classifier"]


@pytest.mark.parametrize("model", MODELS)
def test_every_model_takes_the_configured_band_count(make_cfg, model):
    extra = ["model.net.stages=[8]", "model.net.hidden=8", "model.net.patch_size=9"] if model == "patch_classifier" else []
    for bands in (1, 4, 13):
        cfg = make_cfg([f"model={model}", f"data.in_channels={bands}", *extra])
        net = instantiate(cfg.model.net).eval()
        with torch.no_grad():
            assert net(torch.randn(1, bands, 40, 56)).shape == (1, cfg.data.num_classes, 40, 56)


@pytest.mark.parametrize(("name", "first_conv"), [("resnet18", "conv1"), ("semseg_tiny_resnet", "conv1.0")])
@pytest.mark.parametrize("bands", [1, 4, 13])
def test_pretrained_rgb_weights_from_a_file_adapt_their_first_convolution(tmp_path, caplog, name, first_conv, bands):
    import timm
    from timm.models import adapt_input_conv

    from semseg.models.encoders import TimmEncoder

    torch.manual_seed(0)
    state = save_weights(timm.create_model(name, pretrained=False), tmp_path / "rgb.safetensors")
    with caplog.at_level(logging.INFO, logger="semseg.models.encoders"):
        encoder = TimmEncoder(name, pretrained=str(tmp_path / "rgb.safetensors"), in_channels=bands)
    adapted = encoder.model.get_submodule(first_conv).weight
    assert adapted.shape[1] == bands
    torch.testing.assert_close(adapted, adapt_input_conv(bands, state[f"{first_conv}.weight"]), rtol=0, atol=0)
    layer2 = "layer1.0.conv1.weight"  # the rest loads unchanged
    assert torch.equal(encoder.model.state_dict()[layer2], state[layer2])
    lines = [r.getMessage() for r in caplog.records if r.name == "semseg.models.encoders"]
    assert len(lines) == 1 and f"in_channels={bands}" in lines[0] and "Converted input conv" in lines[0]
    with torch.no_grad():
        assert [f.shape[1] for f in encoder(torch.zeros(1, bands, 64, 64))] == encoder.channels
