"""Checks for the notebooks' exercises: a learner's answer in, one line out.

Each notebook ends with exercises. Their cells leave the answer as ``None`` and call
``check("04.1", answer, ...)``, which prints ``not answered yet`` until the learner writes
an answer, then ``correct`` or ``not yet`` with a hint. Worked solutions are in
``notebooks/solutions/`` (one file per notebook), and ``tests/test_exercises.py`` feeds every
solution to these same checks.

A check recomputes the right answer from the exercise's inputs with the series' own code,
so it holds for whatever inputs the learner chooses (their own name, another step). Each
notebook's checks live in a module of their own (``n04_training_loop``...).
"""

from __future__ import annotations

from slm_helpers.errors import SlmError
from slm_helpers.exercises import (  # noqa: F401 - each registers its notebook's checks
    n01_tokens,
    n02_attention,
    n03_gpt_model,
    n04_training_loop,
    n04b_precision,
    n05_loss_curves,
    n06_inference,
    n07_speed,
    n08_stories_on_request,
    n09_modern_recipe,
    n09b_real_runs,
)
from slm_helpers.exercises.registry import CHECKS as _CHECKS
from slm_helpers.exercises.registry import SOLUTIONS


def check(exercise: str, answer, **given) -> None:
    """Print whether ``answer`` solves ``exercise`` (``"01.1"`` is notebook 01's first): what an
    exercise cell calls last. It returns nothing, so the cell shows only the verdict;
    :func:`passes` also returns it. ``given`` holds the exercise's inputs (a name, a step...)."""
    passes(exercise, answer, **given)


def passes(exercise: str, answer, **given) -> bool:
    """Print whether ``answer`` solves ``exercise``, as :func:`check` does, and return it."""
    if exercise not in _CHECKS:
        raise SlmError(f"no exercise {exercise!r}; there are {', '.join(sorted(_CHECKS))}")
    if answer is None or (isinstance(answer, tuple) and answer and all(part is None for part in answer)):
        print(f"exercise {exercise}: not answered yet (a worked solution: notebooks/solutions/"
              f"{SOLUTIONS[exercise.split('.')[0]]})")
        return False
    try:
        ok, hint = _CHECKS[exercise](answer, **given)
    except Exception as error:  # an answer of the wrong kind: say so, do not crash the cell
        ok, hint = False, f"the answer could not be checked ({type(error).__name__}: {error})"
    print(f"exercise {exercise}: " + ("correct" if ok else f"not yet: {hint}"))
    return ok
