"""The `model/loss` group: every loss against its reference, label 255 inert, class weights from the data."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from PIL import Image

from semseg.checkpoints.reading import load_model
from semseg.data import class_frequency
from semseg.data.class_frequency import class_frequencies
from semseg.models.losses import CrossEntropy, WeightedSum
from semseg.models.module import SegmentationModule
from semseg.models.patch_classifier import PatchClassifier
from semseg.run_setup import set_up_run
from semseg.train import train
from semseg.utils.config import CONFIG_DIR
from tests.helpers.cli import PYTHON, run_cli
from tests.helpers.settings import REPO, TINY_DATA_OVERRIDES

LOSSES = sorted(p.stem for p in (Path(CONFIG_DIR) / "model" / "loss").glob("*.yaml"))
CLASSES = 5  # the synthetic data's
# each config's loss, built by hand from the libraries the config names
REFERENCES = {
    "ce": lambda: lambda logits, target: F.cross_entropy(logits, target, ignore_index=255),
    "dice": lambda: smp.losses.DiceLoss(mode="multiclass", ignore_index=255),
    "focal": lambda: smp.losses.FocalLoss(mode="multiclass", ignore_index=255),
    "lovasz": lambda: smp.losses.LovaszLoss(mode="multiclass", ignore_index=255),
    "ce_dice": lambda: lambda logits, target: (
        F.cross_entropy(logits, target, ignore_index=255)
        + 0.5 * smp.losses.DiceLoss(mode="multiclass", ignore_index=255)(logits, target)
    ),
}
# one training step on the synthetic data, no test
ONE_STEP = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
            "logger=csv", "callbacks=model_checkpoint", "test=false"]


def random_batch(seed: int = 0, shape=(2, CLASSES, 9, 11)) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets with about a third of the pixels ignored (255)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 3
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.35] = 255
    return logits, target


def loss_of(make_cfg, option: str, overrides=()):
    return instantiate(make_cfg([f"model/loss={option}", *overrides]).model.loss)


def test_every_loss_option_has_a_reference():
    assert set(LOSSES) == set(REFERENCES)


@pytest.mark.parametrize("option", LOSSES)
def test_loss_configs_equal_the_libraries_called_directly(make_cfg, option):
    loss = loss_of(make_cfg, option)
    for seed in range(3):
        logits, target = random_batch(seed)
        assert torch.allclose(loss(logits, target), REFERENCES[option]()(logits, target), atol=1e-5, rtol=0)


def test_class_weights_weigh_the_cross_entropy(make_cfg):
    weights = [0.5, 1.0, 2.0, 3.0, 4.0]
    loss = loss_of(make_cfg, "ce", [f"model.loss.class_weights={weights}"])
    logits, target = random_batch()
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    assert torch.allclose(loss(logits, target), expected, atol=1e-6)
    assert not torch.allclose(loss(logits, target), F.cross_entropy(logits, target, ignore_index=255))


INERT_CASES = [(option, []) for option in LOSSES] + [("ce", ["model.loss.class_weights=[0.5,1,2,3,4]"])]


@pytest.mark.parametrize(("option", "overrides"), INERT_CASES,
                         ids=[option + ("-weighted" if weights else "") for option, weights in INERT_CASES])
def test_ignored_pixels_change_neither_the_loss_nor_its_gradient(make_cfg, option, overrides):
    loss = loss_of(make_cfg, option, overrides)
    logits, target = random_batch(1)
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    changed = torch.where(ignored, torch.randn_like(logits) * 50, logits)
    values, gradients = [], []
    for x in (logits, changed):
        x = x.clone().requires_grad_(True)
        value = loss(x, target)
        value.backward()
        values.append(value.detach())
        gradients.append(x.grad)
    assert torch.equal(values[0], values[1])
    assert torch.equal(gradients[0][~ignored], gradients[1][~ignored])
    assert gradients[0][~ignored].abs().sum() > 0
    assert torch.count_nonzero(gradients[0][ignored]) == 0 and torch.count_nonzero(gradients[1][ignored]) == 0


@pytest.mark.parametrize("option", LOSSES)
def test_the_sliding_window_samples_are_scored_like_pixels_of_an_image(make_cfg, option):
    """Its training logits are a (B, C, 1, N) strip per image; every loss must read them as pixels."""
    net = PatchClassifier(num_classes=CLASSES, patch_size=9, stages=(4,), hidden=8, num_samples=40)
    module = SegmentationModule(net, torch.optim.SGD, ["a", "b", "c", "d", "e"], loss=loss_of(make_cfg, option))
    images = torch.randn(3, 3, 20, 20)
    masks = torch.randint(0, CLASSES, (3, 20, 20))
    masks[:, :5] = 255
    torch.manual_seed(0)
    logits, targets = net.sample_for_loss(images, masks)
    # the same pixels as one row of one image: a batch-wide loss does not care how pixels are batched
    as_image = logits.permute(1, 0, 2, 3).reshape(1, CLASSES, 1, -1), targets.reshape(1, 1, -1)
    expected = REFERENCES[option]()(*as_image)
    torch.manual_seed(0)
    step_loss = module.loss(*module._training_outputs({"image": images, "mask": masks}))
    assert torch.allclose(step_loss, expected, atol=1e-5)


def median_frequency_by_hand(root: Path, num_classes: int) -> list[float]:
    """Eigen & Fergus' weights from the mask files of the train split, counted here with numpy."""
    pixels, image_pixels = np.zeros(num_classes), np.zeros(num_classes)
    for name in (root / "ImageSets/Segmentation/train.txt").read_text().split():
        mask = np.array(Image.open(root / "SegmentationClass" / f"{name}.png"))
        labelled = mask[mask != 255]
        for c in np.unique(labelled):
            pixels[c] += (labelled == c).sum()
            image_pixels[c] += labelled.size
    frequency = pixels / image_pixels
    return list(np.median(frequency) / frequency)


def test_ce_dice_with_median_frequency_trains_and_the_checkpoint_keeps_the_weights(make_cfg, data_dir):
    before = sorted(p.relative_to(data_dir) for p in (data_dir / "synthetic").rglob("*"))
    cfg_overrides = ["model/loss=ce_dice", "model.loss.ce.class_weights=median_frequency", *ONE_STEP]
    cfg = make_cfg(cfg_overrides)
    train(cfg)
    expected = median_frequency_by_hand(data_dir / "synthetic", CLASSES)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    meta = torch.load(best, weights_only=True)["semseg"]
    assert meta["class_weights"]["model.loss.ce.class_weights"] == pytest.approx(expected, rel=1e-5)
    assert meta["model_config"]["loss"]["ce"]["class_weights"] == meta["class_weights"]["model.loss.ce.class_weights"]
    assert meta["model_config"]["loss"]["weights"] == {"ce": 1.0, "dice": 0.5}
    # the run config shows the numbers, and eval rebuilds the loss with them
    hparams = (Path(cfg.paths.output_dir) / "csv" / "hparams.yaml").read_text()
    assert "model/loss/ce/class_weights:\n- " in hparams
    model, _ = load_model(best)
    assert model.loss.ce.class_weights == pytest.approx(expected, rel=1e-5)
    assert isinstance(model.loss, WeightedSum) and isinstance(model.loss.dice, smp.losses.DiceLoss)
    # counted once into paths.data_dir/.cache; the dataset folder is left as it was
    assert len(list((data_dir / ".cache" / "class_frequency").glob("*.json"))) >= 1
    assert sorted(p.relative_to(data_dir) for p in (data_dir / "synthetic").rglob("*")) == before
    # resuming with the same command takes the checkpoint's weights (and passes the same-model check)
    resumed = make_cfg([*cfg_overrides, f"ckpt_path={best}"], output="resumed")
    assert set_up_run(resumed) == str(best)
    assert list(resumed.model.loss.ce.class_weights) == meta["class_weights"]["model.loss.ce.class_weights"]


def test_class_counts_are_cached_by_mask_files(make_cfg, tmp_path, data_dir, monkeypatch):
    data = shutil.copytree(data_dir / "synthetic", tmp_path / "data" / "synthetic")
    mask = data / "SegmentationClass" / "train_00003.png"
    values = np.array(Image.open(mask))
    Image.fromarray(values).save(mask, compress_level=0)  # stored: its size depends on its shape alone
    datamodule = instantiate(make_cfg([f"paths.data_dir={tmp_path / 'data'}"]).data)
    cache = tmp_path / "cache"
    counted = class_frequencies(datamodule, "train", cache)
    assert counted["masks"] == 16 and len(list(cache.rglob("*.json"))) == 1

    def no_counting(*args):
        raise AssertionError("counted again")

    monkeypatch.setattr(class_frequency, "count_classes", no_counting)
    assert class_frequencies(datamodule, "train", cache) == counted
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))  # touched, same pixels
    assert class_frequencies(datamodule, "train", cache) == counted
    # rewritten with other labels, the same size and the same time: counted again
    stat = mask.stat()
    Image.fromarray(np.roll(values, 7, axis=1)).save(mask, compress_level=0)
    assert mask.stat().st_size == stat.st_size
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(AssertionError, match="counted again"):
        class_frequencies(datamodule, "train", cache)


@pytest.mark.parametrize("damage", ["empty", "truncated", "wrong_length", "not_a_folder"])
def test_a_broken_class_count_cache_is_counted_again(make_cfg, tmp_path, damage, caplog):
    datamodule = instantiate(make_cfg().data)
    cache = tmp_path / "cache"
    counted = class_frequencies(datamodule, "train", cache)
    (file,) = cache.rglob("*.json")
    if damage == "not_a_folder":  # the cache folder's place is taken by a file: nothing cached, no error
        shutil.rmtree(cache)
        cache.write_text("a file")
        assert class_frequencies(datamodule, "train", cache) == counted
        assert "cannot write the class-count cache" in caplog.text and cache.read_text() == "a file"
        return
    file.write_text({"empty": "", "truncated": json.dumps(counted)[:20],
                     "wrong_length": json.dumps({**counted, "class_pixels": counted["class_pixels"][:2]})}[damage])
    assert class_frequencies(datamodule, "train", cache) == counted
    assert "unreadable or does not fit 5 classes; counting again" in caplog.text
    assert json.loads(file.read_text()) == counted  # written anew


def test_absent_class_weight_weighs_a_class_the_train_split_lacks(make_cfg):
    cfg = make_cfg(["data.class_names=[background,stripes,checkers,dots,crosshatch,unused]",
                    "model.loss.class_weights=median_frequency", "model.loss.absent_class_weight=2.5", *ONE_STEP])
    train(cfg)
    meta = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt", weights_only=True)["semseg"]
    weights = meta["class_weights"]["model.loss.class_weights"]
    assert len(weights) == 6 and weights[5] == 2.5 and 1.0 in weights  # the median class weighs 1


def test_an_unresolved_median_frequency_loss_refuses_to_run():
    with pytest.raises(RuntimeError, match="not resolved yet"):
        CrossEntropy(class_weights="median_frequency")(*random_batch())


BAD_INPUT = [
    (["model/loss=nope"],
     "model/loss=nope: there is no config model/loss/nope.yaml; choose one of ce, ce_dice, dice, focal, lovasz."),
    (["model.loss.class_weights=[1.0,2.0]"],
     ("model.loss.class_weights has 2 weights but the data has 5 classes ['background', 'stripes', 'checkers', "
      "'dots', 'crosshatch']; give one weight per class, e.g. model.loss.class_weights=[1.0,1.0,1.0,1.0,1.0], or "
      "model.loss.class_weights=median_frequency.")),
    (["data.class_names=[background,stripes,checkers,dots,crosshatch,unused]", "model/loss=ce_dice",
      "model.loss.ce.class_weights=median_frequency"],
     ("model.loss.ce.class_weights=median_frequency: class 5 'unused' never occurs in the 16 masks of the train "
      "split, so the weight would be infinite (and the model cannot learn it: check data.class_names and "
      "data.label_map). To train anyway, set model.loss.ce.absent_class_weight=<w> (e.g. 1.0: the weight in the "
      "val/test loss), or give one weight per class in model.loss.ce.class_weights=[...].")),
    (["model=pixelwise", "model.optimizer_groups.encoder_lr_mult=0.1"],
     ("model.optimizer_groups.encoder_lr_mult=0.1, but the net (PixelwiseClassifier) has no encoder (net.encoder). "
      "Set model.optimizer_groups.encoder_lr_mult=1, or pick a model built from an encoder and a decoder "
      "(model=unet, fcn8s, fcn16s, fcn32s, deeplabv3plus, upernet or segformer).")),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT, ids=["unknown-loss", "weights-length", "absent-class",
                                                                    "no-encoder"])
def test_bad_loss_and_optimizer_settings_are_one_line_before_training(tmp_path, data_dir, overrides, message):
    result = run_cli([PYTHON, "-m", "semseg.train", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}",
                      "logger=csv", "data.num_workers=0", *TINY_DATA_OVERRIDES, *overrides], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"semseg: error: {message}"
    assert not list(tmp_path.glob("train/runs/*/checkpoints/*.ckpt"))


def readme_commands() -> list[list[str]]:
    """The overrides of every `python -m semseg.train` line of the README's losses and fine-tuning section."""
    section = (REPO / "README.md").read_text().split("\n## Losses and fine-tuning\n")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("python -m semseg.train")]
    return [line.split(" #")[0].split()[3:] for line in lines]


def test_the_readme_section_shows_commands():
    assert len(readme_commands()) == 6


@pytest.mark.parametrize("overrides", readme_commands(), ids=" ".join)
def test_readme_commands_of_losses_and_fine_tuning_train(make_cfg, overrides):
    """Cut to 4 epochs of 16 steps: longer than the warmup the README shows."""
    cfg = make_cfg([*overrides, "data.batch_size=1", "trainer.max_epochs=4", "++trainer.limit_val_batches=1",
                    "logger=csv", "callbacks=none", "test=false"])
    assert np.isfinite(train(cfg)["train/loss"])
