"""notebooks/explore_data.ipynb runs headless on fixtures and draws samples and class frequencies."""

import pytest

from tests.helpers.disk_formats import make_cityscapes, make_voc
from tests.helpers.notebooks import run_notebook


@pytest.mark.parametrize("dataset", ["voc", "cityscapes"])
def test_notebook_shows_samples_and_class_frequencies(tmp_path, dataset):
    make = {"voc": make_voc, "cityscapes": make_cityscapes}[dataset]
    root = make(tmp_path / dataset)
    outputs = run_notebook(
        "explore_data.ipynb",
        f'DATA = "{dataset}"\nOVERRIDES = ["data.root={root}"]\nSPLIT = "val"\nNUM_SAMPLES = 2\nMAX_IMAGES = 10',
        cwd=tmp_path, timeout=180,
    )
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 2, "one figure of samples, one of class frequencies"
    text = "".join(out.get("text", "") for out in outputs)
    first_class = {"voc": "background", "cityscapes": "road"}[dataset]
    assert f"{dataset}/val:" in text and f"{first_class} 0." in text
