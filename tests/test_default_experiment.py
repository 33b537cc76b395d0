"""The default experiment, end to end, as `make train` runs it (slow: about 3 minutes)."""

import csv
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_default_experiment_reaches_its_target_miou(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "semseg.train"],
        cwd=tmp_path, env={**os.environ, "WANDB_SILENT": "true"},
        capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    with open(run_dir / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    val_miou = [float(row["val/mIoU"]) for row in rows if row.get("val/mIoU")]
    test_miou = [float(row["test/mIoU"]) for row in rows if row.get("test/mIoU")]
    print(f"best val mIoU {max(val_miou):.3f}, test mIoU {test_miou[-1]:.3f}")
    assert max(val_miou) >= 0.90
    assert test_miou[-1] >= 0.85
