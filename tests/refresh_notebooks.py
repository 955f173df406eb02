"""Re-run notebooks top to bottom and store their outputs: what nbval compares against.

    SLM_GPT2_TIKTOKEN=... python tests/refresh_notebooks.py                   # every notebook
    SLM_GPT2_TIKTOKEN=... python tests/refresh_notebooks.py notebooks/04_*.ipynb

Each notebook runs in a fresh kernel, in order, with the ``ci`` preset, and with its data and
runs in a new temporary folder (``SLM_DATA_DIR``, ``SLM_RUNS_DIR``), so the outputs are those
of a fresh clone: notebook 01 prepares the dataset, 04 trains, 05 and 06 find its run. Cell
ids are added where missing, execution counts run 1..N and no timestamps are stored.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


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
                nbformat.write(nb, path)


if __name__ == "__main__":
    if not os.environ.get("SLM_GPT2_TIKTOKEN"):
        print("note: SLM_GPT2_TIKTOKEN is unset, so the tokenizer will be downloaded", file=sys.stderr)
    chosen = [Path(p).resolve() for p in sys.argv[1:]] or sorted(NOTEBOOKS.glob("0*.ipynb"))
    # Later notebooks need what earlier ones make: run every notebook up to the last one chosen.
    all_notebooks = sorted(NOTEBOOKS.glob("0*.ipynb"))
    refresh(all_notebooks[: max(all_notebooks.index(p) for p in chosen) + 1], chosen)
