"""Re-run notebooks top to bottom and store their outputs: what nbval compares against.

    SLM_GPT2_TIKTOKEN=... python tests/refresh_notebooks.py                   # every notebook
    SLM_GPT2_TIKTOKEN=... python tests/refresh_notebooks.py notebooks/04_*.ipynb
    python tests/refresh_notebooks.py --links    # only: setup cells and Colab links from REPOSITORY

Each notebook runs in a fresh kernel, in order, with the ``ci`` preset, and with its data and
runs in a new temporary folder (``SLM_DATA_DIR``, ``SLM_RUNS_DIR``), so the outputs are those
of a fresh clone: notebook 01 prepares the dataset, 04 trains, 05 and 06 find its run. Cell
ids are added where missing, execution counts run 1..N and no timestamps are stored. A cell
tagged ``skip-execution`` and ``nbval-skip`` (one that opens the story box) is run by neither.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from slm_helpers import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COLAB_CLONE = "/content/slm-from-scratch"


def setup_cell(repository: str = REPOSITORY) -> str:
    """The first code cell of every notebook: in Colab it clones and installs the series."""
    return f"""\
# Setup. Locally: `pip install -r requirements.txt -e .` in the repository, once (README.md).
# In Colab: this clones the series and installs it (about a minute); a fork: see README.md.
import importlib.util
import os
import subprocess
import sys

REPO, CLONE = "{repository}", "{COLAB_CLONE}"
if importlib.util.find_spec("slm_helpers") is None:
    if "google.colab" not in sys.modules:
        raise SystemExit(
            "slm_helpers is not installed: run `pip install -r requirements.txt -e .` "
            "in the repository, then restart the kernel."
        )
    if not os.path.isdir(CLONE):
        subprocess.run(["git", "clone", "-q", "--depth", "1", REPO, CLONE], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", CLONE], check=True)
    sys.path.insert(0, CLONE)

import slm_helpers

print("slm_helpers", slm_helpers.__version__)"""


def colab_link(notebook: Path, repository: str = REPOSITORY) -> str:
    owner_and_name = repository.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_and_name}/blob/main/notebooks/{notebook.name}"


def write_links(repository: str = REPOSITORY) -> None:
    """Put ``repository`` into every notebook's setup cell and README.md's Colab links."""
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
        if first_code.source != setup_cell(repository):
            first_code.source = setup_cell(repository)
            nbformat.write(nb, path)
    readme = ROOT / "README.md"
    text = re.sub(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/notebooks/",
                  colab_link(Path("x")).removesuffix("x"), readme.read_text())
    readme.write_text(text)


def refresh(paths: list[Path], store: list[Path]) -> None:
    """Run ``paths`` in order; write back the outputs of those in ``store``."""
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.update(SLM_PRESET="ci", SLM_DATA_DIR=f"{scratch}/data", SLM_RUNS_DIR=f"{scratch}/runs")
        for path in paths:
            nb = nbformat.from_dict(nbformat.validator.normalize(nbformat.read(path, as_version=4))[1])
            for cell in nb.cells:
                cell.metadata.pop("execution", None)
            print(f"running {path.name} ...", flush=True)
            NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            if path in store:
                nbformat.write(numbered(without_temporary_paths(without_widgets(nb), scratch)), path)


def numbered(nb):
    """Execution counts 1..N over the code cells, those not run included: a cell tagged
    ``skip-execution`` (with ``nbval-skip``: the story box, a web page nothing compares) is not
    run here, and has no outputs."""
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        for output in cell.outputs:
            if "execution_count" in output:
                output["execution_count"] = count
    return nb


def without_temporary_paths(nb, scratch: str):
    """The outputs with this refresh's scratch folders written as a learner's clone has them
    (``data/...``, ``runs/ci``), and other temporary folders as ``<a temporary folder>``."""

    def clean(text: str) -> str:
        return re.sub(r"/tmp/tmp\w+", "<a temporary folder>", text.replace(f"{scratch}/", ""))

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            if "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = clean(output["data"]["text/plain"])
    return nb


def without_widgets(nb):
    """The notebook without its progress bars' widgets: saved, a bar is frozen where it started
    (its text says 0%); a learner who runs the cell sees it live."""
    widget = "application/vnd.jupyter.widget-view+json"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if widget not in o.get("data", {})]
    nb.metadata.pop("widgets", None)
    return nb


if __name__ == "__main__":
    if sys.argv[1:] == ["--links"]:
        write_links()
        sys.exit(0)
    write_links()
    if not os.environ.get("SLM_GPT2_TIKTOKEN"):
        print("note: SLM_GPT2_TIKTOKEN is unset, so the tokenizer will be downloaded", file=sys.stderr)
    chosen = [Path(p).resolve() for p in sys.argv[1:]] or sorted(NOTEBOOKS.glob("0*.ipynb"))
    # Later notebooks need what earlier ones make: run every notebook up to the last one chosen.
    all_notebooks = sorted(NOTEBOOKS.glob("0*.ipynb"))
    refresh(all_notebooks[: max(all_notebooks.index(p) for p in chosen) + 1], chosen)
