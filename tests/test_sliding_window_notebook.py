"""notebooks/sliding_window_vs_fcn.ipynb runs headless, top to bottom, at a tiny size."""

import json

from tests.helpers.notebooks import run_notebook
from tests.helpers.settings import TINY_DATA_OVERRIDES


def test_notebook_executes_headless_at_a_tiny_size(tmp_path, data_dir):
    train_overrides = [*TINY_DATA_OVERRIDES, "data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1",
                       "model/scheduler=constant"]
    parameters = "\n".join([
        "SIZES = [40, 48]", "REPEATS = 1", "NAIVE_MAX_PIXELS = 1024",
        f"TRAIN_OVERRIDES = {train_overrides!r}", f"DATA_DIR = {str(data_dir)!r}", f"LOG_DIR = {str(tmp_path / 'logs')!r}",
    ])
    outputs = run_notebook("sliding_window_vs_fcn.ipynb", parameters, cwd=tmp_path)
    text = "".join(output.get("text", "") for output in outputs)
    assert "naive ÷ dense time" in text and "| 48² |" in text
    assert "48² naive: measured on 1536 pixels" in text
    for name in ["patch_classifier", "fcn8s", "unet"]:
        assert f"{name}: test mIoU" in text
    pictures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(pictures) == 2, json.dumps([output.get("output_type") for output in outputs])
