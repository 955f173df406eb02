"""The notebooks as files: what nbval does not check itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbval_figures import tolerance_of
from refresh_notebooks import NOTEBOOKS, ROOT, colab_link, setup_cell

PATHS = sorted(NOTEBOOKS.glob("0*.ipynb"))
# Words that only a machine-dependent line prints: such a line must sit in a cell whose output
# nbval ignores, or the saved outputs fail on the other kind of machine.
MACHINE_WORDS = ("no GPU found", "native bf16", "CUDA is available", "Apple MPS", "tokens/s", "s per step")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text_of(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell["outputs"])


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_the_setup_cell_clones_the_repository_of_record(path):
    first_code = next(c for c in cells(path) if c["cell_type"] == "code")
    assert "".join(first_code["source"]) == setup_cell()  # tests/refresh_notebooks.py --links writes it


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_the_readme_links_to_the_notebook_in_colab(path):
    assert f"]({colab_link(path)})" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_saved_outputs_come_from_one_fresh_run_and_name_no_machine(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for index, cell in enumerate(code):
        if "nbval-ignore-output" in cell["metadata"].get("tags", []):
            continue
        found = [word for word in MACHINE_WORDS if word in text_of(cell)]
        assert not found, f"code cell {index + 1} prints {found[0]!r} in an output nbval compares"


# Compared cells when the figures' tolerance arrived (issue 22): none was ignored to get there, and no
# later change may compare fewer. Tolerant cells are compared: their words exactly, their figures within
# the tolerance their tag states (tests/nbval_figures.py). 164: notebook 09's 18 code cells, all compared.
COMPARED_CELLS_AT_LEAST = 164


def test_no_fewer_outputs_are_compared_and_tolerances_stay_small():
    compared = tolerant = 0
    for path in PATHS:
        for cell in cells(path):
            if cell["cell_type"] != "code":
                continue
            tags = cell["metadata"].get("tags", [])
            ignored = "nbval-ignore-output" in tags or "nbval-skip" in tags
            tolerance = tolerance_of(tags)
            assert not (ignored and tolerance is not None), f"{path.name}: a cell both ignored and tolerant: {tags}"
            compared += not ignored
            if tolerance is not None:
                tolerant += 1
                assert tolerance <= 0.10, f"{path.name}: {tags}: a tolerance above 10% would hide a changed result"
    assert compared >= COMPARED_CELLS_AT_LEAST, f"{compared} compared cells, fewer than {COMPARED_CELLS_AT_LEAST}"
    assert 0 < tolerant < compared


def test_the_results_files_are_found_from_any_folder(tmp_path, monkeypatch):
    """Colab runs a notebook from /content, not from notebooks/: the notebooks read the real runs'
    results through the package, never by a path relative to the working folder."""
    from slm_helpers.errors import SlmError
    from slm_helpers.presets import results_file

    for path in PATHS:
        for cell in cells(path):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                assert '"results/' not in source, f"{path.name} reads a results file by a relative path"
    monkeypatch.chdir(tmp_path)
    assert results_file("modern-preset-tuning.json") == NOTEBOOKS / "results" / "modern-preset-tuning.json"
    with pytest.raises(SlmError, match=r"no results file .*nothing\.json: open the notebooks from a clone"):
        results_file("nothing.json")
