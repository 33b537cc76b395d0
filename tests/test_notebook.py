"""notebooks/explore_data.ipynb runs headless on fixtures and draws samples and class frequencies."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO
from tests.disk_formats import make_cityscapes, make_voc

NOTEBOOK = REPO / "notebooks" / "explore_data.ipynb"


def run_notebook(parameters: str, cwd) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


@pytest.mark.parametrize("dataset", ["voc", "cityscapes"])
def test_notebook_shows_samples_and_class_frequencies(tmp_path, dataset):
    make = {"voc": make_voc, "cityscapes": make_cityscapes}[dataset]
    root = make(tmp_path / dataset)
    notebook = run_notebook(
        f'DATA = "{dataset}"\nOVERRIDES = ["data.root={root}"]\nSPLIT = "val"\nNUM_SAMPLES = 2\nMAX_IMAGES = 10',
        cwd=tmp_path,
    )
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 2, "one figure of samples, one of class frequencies"
    text = "".join(out.get("text", "") for out in outputs)
    first_class = {"voc": "background", "cityscapes": "road"}[dataset]
    assert f"{dataset}/val:" in text and f"{first_class} 0." in text
