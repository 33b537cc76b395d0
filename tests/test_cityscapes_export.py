"""Predictions exported by semseg.eval score the same with cityscapesscripts as test/mIoU."""

from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from PIL import Image

from semseg.data.cityscapes import EXPORT_IDS
from semseg.eval import evaluate
from semseg.train import train
from tests.disk_formats import make_cityscapes


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
