"""Predictions exported by semseg.eval score the same with cityscapesscripts as test/mIoU."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from PIL import Image

from semseg.data.cityscapes import EXPORT_IDS
from semseg.eval import evaluate
from semseg.train import train
from tests.helpers.disk_formats import make_cityscapes
from tests.helpers.settings import REPO


def official_miou(predictions: Path, root: Path, monkeypatch, tmp_path) -> float:
    """mIoU over classes from cityscapesscripts' evalPixelLevelSemanticLabeling."""
    for key, value in dict(predictionPath=str(predictions), predictionWalk=None, evalInstLevelScore=False,
                           quiet=True, JSONOutput=False, exportFile=str(tmp_path / "cs.json")).items():
        monkeypatch.setattr(cs_eval.args, key, value)
    ground_truth = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    found = [cs_eval.getPrediction(cs_eval.args, gt) for gt in ground_truth]
    return cs_eval.evaluateImgLists(found, ground_truth, cs_eval.args)["averageScoreClasses"]


def test_exported_label_ids_give_the_same_miou_as_the_official_script(make_cfg, tmp_path, monkeypatch):
    root = make_cityscapes(tmp_path / "cityscapes")
    data = ["data=cityscapes", f"data.root={root}", "data.batch_size=2", "data.crop_size=[32,48]"]
    cfg = make_cfg([*data, "++trainer.max_steps=4", "trainer.max_epochs=2", "logger=csv"])
    train(cfg)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    predictions = tmp_path / "predictions"
    scores = evaluate(make_cfg([*data, f"ckpt_path={best}", f"predictions_dir={predictions}", "logger=csv"],
                               config_name="eval.yaml", output="eval"))

    files = sorted(p.name for p in predictions.glob("*.png"))
    assert files == ["frankfurt_000000_000019.png", "frankfurt_000001_000020.png"]
    with Image.open(predictions / files[0]) as png:
        assert png.size == (64, 32) and set(np.unique(np.array(png))) <= set(EXPORT_IDS.tolist())
    official = official_miou(predictions, root, monkeypatch, tmp_path)
    assert 0.0 < official < 1.0
    assert scores["test/mIoU"] == pytest.approx(official, abs=1e-6)


def test_the_readme_command_for_the_official_evaluation_runs(make_cfg, tmp_path):
    """cityscapesscripts' csEvalPixelLevelSemanticLabeling calls np.in1d, which NumPy 2.4 removed,
    and evaluates instances by default; the README gives a command that works."""
    root = make_cityscapes(tmp_path / "cityscapes")
    data = ["data=cityscapes", f"data.root={root}", "data.batch_size=2", "data.crop_size=[32,48]"]
    cfg = make_cfg([*data, "++trainer.max_steps=2", "trainer.max_epochs=1", "logger=csv", "callbacks=model_checkpoint"])
    train(cfg)
    predictions = tmp_path / "preds"
    evaluate(make_cfg([*data, f"ckpt_path={cfg.paths.output_dir}/checkpoints/best.ckpt", f"predictions_dir={predictions}",
                       "logger=csv"], config_name="eval.yaml", output="eval"))
    readme = (REPO / "README.md").read_text()
    command = readme.split("CITYSCAPES_DATASET=/datasets/cityscapes CITYSCAPES_RESULTS=preds ", 1)[1].split("\n", 1)[0]
    command = command.replace(".venv/bin/python", sys.executable)  # the README runs from the repository
    result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CITYSCAPES_DATASET": str(root), "CITYSCAPES_RESULTS": str(predictions)})
    assert result.returncode == 0, result.stderr[-2000:]
    average = [line for line in result.stdout.splitlines() if line.startswith("Score Average")][0]  # classes, then categories
    assert 0.0 <= float(average.split(":")[1].split()[0]) <= 1.0  # the class IoU (iIoU is nan: no instances)
