"""Every command of the README's "Train on your own data" section and its ADE20K one, run as
printed on a tiny tree of the layout it names (only the dataset folder and run size differ)."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from semseg.data.inspect import inspect_dataset
from semseg.train import train
from tests.helpers.annotation_files import make_coco, make_cvat_export, make_flat_labelme, make_label_studio_export, make_labelme
from tests.helpers.disk_formats import make_ade20k, make_drive, make_kvasir, write_jpeg, write_png
from tests.helpers.settings import REPO

TINY = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1", "data.batch_size=2", "data.crop_size=[32,32]", "model=fcn8s",
        "logger=csv", "callbacks=none"]


def readme_commands() -> list[str]:
    """`python -m semseg...` commands of the sections, from bash blocks (continuations joined) and table cells."""
    text = (REPO / "README.md").read_text()
    own = text.split("\n## Train on your own data\n", 1)[1].split("\n### Look before you train", 1)[0]
    ade = text.split("\n### ADE20K (SceneParse150)\n", 1)[1].split("\n### ", 1)[0]
    commands = []
    for section in (own, ade):
        for block in re.findall(r"```bash\n(.*?)```", section, re.S):
            commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.startswith("python -m semseg.")]
        commands += re.findall(r"\| `(python -m semseg\.[^`]+)` \|", section)  # a table's command column
    return commands


def mine(root: Path) -> None:
    """The section's first layout: images/<split>/**, masks/<split>/** of raw values 0..2."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("street/0001", "park/0002"):
            write_jpeg(root / "images" / split / f"{name}.jpg", 24, 32, rng)
            write_png(root / "masks" / split / f"{name}.png", rng.integers(0, 3, (24, 32)).astype(np.uint8))


def roboflow(root: Path) -> None:
    make_coco(root)
    for split, exported in (("train", "train"), ("val", "valid")):
        shutil.copytree(root / "images" / split, root / exported)
        shutil.copy(root / "annotations" / f"instances_{split}.json", root / exported / "_annotations.coco.json")


# what a command's data.root names -> the tree that stands in for it
TREES = {
    "/datasets/mine": lambda root, command: (make_labelme if "data=labelme" in command else
                                             roboflow if "_annotations.coco.json" in command else
                                             make_coco if "data=coco" in command else mine)(root),
    "/datasets/cvat_export": lambda root, command: make_cvat_export(root),
    "/datasets/label_studio_export": lambda root, command: make_label_studio_export(root),
    "/datasets/labelme_folder": lambda root, command: make_flat_labelme(root),
    "/datasets/DRIVE": lambda root, command: make_drive(root),
    "/datasets/kvasir-seg/Kvasir-SEG": lambda root, command: make_kvasir(root),
    "/datasets/ADEChallengeData2016": lambda root, command: make_ade20k(root.parent),
}
COMMANDS = readme_commands()


def test_the_section_shows_a_command_for_each_layout():
    shown = " ".join(COMMANDS)
    for layout in ("data=coco", "data=labelme", "data.pair_key", "data.mask_threshold", "data.split_fractions", "data=ade20k"):
        assert layout in shown, layout


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_own_data_command_runs(make_cfg, tmp_path, command):
    words = shlex.split(command)  # as the shell hands them over: quotes removed
    entry, overrides = words[2], words[3:]
    (root_override,) = [word for word in overrides if word.startswith("data.root=")]
    place = root_override.split("=", 1)[1]
    root = tmp_path / "ADEChallengeData2016" if place.endswith("ADEChallengeData2016") else tmp_path / "data"
    root.mkdir(parents=True)
    TREES[place](root, command)
    overrides = [f"data.root={root}" if word == root_override else word for word in overrides]
    if entry == "semseg.data.inspect":
        cfg = make_cfg([*overrides, f"output={tmp_path / 'report'}"], config_name="inspect.yaml")
        reports = inspect_dataset(cfg)
        assert reports and all(report.images > 0 and not report.problems for report in reports)
        assert (tmp_path / "report" / "classes.csv").is_file()
        return
    assert entry == "semseg.train", command
    metrics = train(make_cfg([*overrides, *TINY]))
    assert np.isfinite(metrics["train/loss"]) and "test/mIoU" in metrics
