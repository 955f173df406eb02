"""The tolerant comparison of a notebook's figures (tests/nbval_figures.py): close figures pass, a
figure moved further than its tolerance fails, a changed word fails, and an untagged cell stays
exact; shown on the rules and through nbval itself on a small notebook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbval_figures import figures_agree, tolerance_of

ROOT = Path(__file__).resolve().parent.parent


def test_the_tag_states_the_tolerance():
    assert tolerance_of(["nbval-figures-within-2%"]) == 0.02
    assert tolerance_of(["nbval-figures-within-0.5%", "other"]) == 0.005
    assert tolerance_of(["nbval-ignore-output"]) is None
    assert tolerance_of([]) is None


@pytest.mark.parametrize("stored, new", [
    ("validation losses [5.12, 4.99]", "validation losses [5.11, 4.99]"),  # seen on an AVX-512 CPU
    ("val 7.981 after 200 steps", "val 7.995 after 200 steps"),
    ("keys change by up to 0.37 (their size is ~0.74)", "keys change by up to 0.37 (their size is ~0.75)"),
    ("words used 41% (every word: 12%)", "words used 42% (every word: 11%)"),
    ("gap +5.530", "gap +5.532"),
    ("norm 7.6e-06", "norm 7.7e-06"),
])
def test_figures_within_their_tolerance_agree(stored, new):
    assert figures_agree(stored, new, 0.01)


@pytest.mark.parametrize("stored, new", [
    ("validation losses [5.12, 4.99]", "validation losses [5.30, 4.99]"),  # moved 3.5%
    ("words used 41%", "words used 45%"),
    ("val 0.70", "val 0.80"),
    ("val 0.70", "loss 0.70"),  # a word changed
    ("a happy boy named Dot", "a happy girl named Dot"),
    ("[5.12, 4.99]", "[5.12, 4.99, 4.90]"),  # another count of figures
    ("step 40: 1.50", "step 40:  1.50"),  # the spacing
    ("GPT-2 model", "GPT-3 model"),  # a number inside a word is a word
    ("fp32", "fp16"),
])
def test_figures_moved_further_or_words_changed_disagree(stored, new):
    assert not figures_agree(stored, new, 0.01)


def _notebook(path: Path, cells: list[tuple[list[str], str, str]]) -> None:
    """A notebook whose code cells print ``printed`` but store ``stored`` as their output."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                           "language": "python"}}, "cells": []}
    for i, (tags, printed, stored) in enumerate(cells):
        nb["cells"].append({"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags}, "execution_count": i + 1,
                            "source": f"print({printed!r})",
                            "outputs": [{"output_type": "stream", "name": "stdout", "text": stored + "\n"}]})
    path.write_text(json.dumps(nb))


def _nbval(notebook: Path) -> str:
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "-p", "tests.nbval_figures",
                          "-p", "no:cacheprovider", "-q", str(notebook),
                          "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    return run.stdout


def test_nbval_passes_close_figures_and_fails_the_rest(tmp_path):
    tag = ["nbval-figures-within-1%"]
    _notebook(tmp_path / "figures.ipynb", [
        (tag, "val loss 5.11 at step 200", "val loss 5.12 at step 200"),  # close: passes
        (tag, "val loss 5.30 at step 200", "val loss 5.12 at step 200"),  # moved 3.5%: fails
        (tag, "train loss 5.12 at step 200", "val loss 5.12 at step 200"),  # a word: fails
        ([], "val loss 5.11 at step 200", "val loss 5.12 at step 200"),  # untagged: exact, fails
        ([], "val loss 5.12 at step 200", "val loss 5.12 at step 200"),  # untagged, equal: passes
    ])
    out = _nbval(tmp_path / "figures.ipynb")
    assert "3 failed, 2 passed" in out, out
    failed = {int(line.split("::Cell ")[1].split()[0]) for line in out.splitlines() if line.startswith("FAILED")}
    assert failed == {1, 2, 3}, out
