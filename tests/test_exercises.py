"""Every exercise: its worked solution passes its check, a wrong answer does not, and the
notebook asks it with the same inputs."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from slm_helpers.exercises import _CHECKS, SOLUTIONS, check

from conftest import requires_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"

# exercise, solution function, its inputs (the same as the notebook's), a wrong answer
CASES = [
    ("01.1", "exercise_1", dict(name="Ada Lovelace"), [1, 2, 3]),
    ("01.2", "exercise_2", dict(token_id=70_000), (70_000, np.uint32)),
    ("02.1", "exercise_1", dict(window=3), lambda T, window: np.tril(np.ones((T, T), dtype=bool))),
    ("02.2", "exercise_2", dict(n_embd=384), 4 * 384 * 384),
    ("03.1", "exercise_1", dict(n_layer=12, n_embd=768, block_size=1024, vocab_size=50257), 85_054_464),
    ("03.2", "exercise_2", dict(vocab_size=50257), 50257.0),
    ("04.1", "exercise_1", dict(step=3_000, preset="gpu"), 6e-4),
    ("04.2", "exercise_2", dict(preset="ci"), [dict(lr=3e-3), dict(lr=3e-4)]),
    ("05.1", "exercise_1", {}, lambda history: None),
    ("05.2", "exercise_2", dict(loss=2.0), 2.0),
    ("06.1", "exercise_1", {}, lambda probs, p: probs),
    ("06.2", "exercise_2", dict(logits=(2.0, 1.0, 0.0), temperature=0.5), 0.67),
    ("07.1", "exercise_1", dict(preset="gpu"), 0.88),
    ("07.2", "exercise_2", {}, lambda compile_seconds, eager, compiled: compile_seconds / (eager - compiled)),
]


def solution_module(exercise: str):
    path = SOLUTIONS_DIR / SOLUTIONS[exercise.split(".")[0]]
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_exercise_has_a_case():
    assert sorted(c[0] for c in CASES) == sorted(_CHECKS)


@requires_tokenizer
@pytest.mark.parametrize("exercise, function, given, wrong", CASES, ids=[c[0] for c in CASES])
def test_the_worked_solution_is_correct_and_a_wrong_answer_is_not(exercise, function, given, wrong, capsys, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path / "data"))  # 04.2 trains: keep its data out of the repository
    answer = getattr(solution_module(exercise), function)(**given)
    assert check(exercise, answer, **given) is True
    assert capsys.readouterr().out == f"exercise {exercise}: correct\n"
    assert check(exercise, wrong, **given) is False
    assert capsys.readouterr().out.startswith(f"exercise {exercise}: not yet: ")


def test_an_unanswered_exercise_points_at_its_solution(capsys):
    assert check("03.2", None, vocab_size=50257) is False
    assert capsys.readouterr().out == ("exercise 03.2: not answered yet (a worked solution: "
                                       "notebooks/solutions/03_gpt_model.py)\n")
    with pytest.raises(ValueError, match="no exercise '09.1'"):
        check("09.1", 1)


@pytest.mark.parametrize("number", sorted(SOLUTIONS))
def test_the_notebook_asks_its_exercises_with_the_solutions_inputs(number):
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    cells = json.loads(path.read_text())["cells"]
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in "".join(c["source"]).splitlines()
                if line.startswith("### Exercise ")]
    assert 2 <= len(headings) <= 4
    asked = {}
    for cell in cells:
        for match in re.finditer(r'check\("(\d\d\.\d)", [^,]+(?:, (.*))?\)$', "".join(cell["source"]), re.M):
            asked[match.group(1)] = match.group(2) or ""
    expected = [c for c in CASES if c[0].startswith(number)]
    assert sorted(asked) == [c[0] for c in expected] and len(headings) == len(expected)
    for exercise, _, given, _ in expected:
        for name in given:
            assert f"{name}=" in asked[exercise], f"{exercise} is asked without {name}"
    assert "## Summary" in "".join(cells[-1]["source"])  # each notebook ends with its summary
