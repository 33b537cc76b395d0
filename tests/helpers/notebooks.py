"""Execute a notebook of notebooks/ headless, with its `parameters` cell replaced."""

import nbformat
from nbclient import NotebookClient

from tests.helpers.settings import REPO


def run_notebook(name: str, parameters: str, cwd, timeout: int = 600) -> list:
    """Run notebooks/<name> top to bottom in `cwd`; return the outputs of all code cells."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return [output for c in notebook.cells if c.cell_type == "code" for output in c.outputs]
