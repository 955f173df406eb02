"""The exercises' registry: each notebook's module registers its checks here with
:func:`exercise`, and :func:`~slm_helpers.exercises.check` looks them up."""

from __future__ import annotations

from collections.abc import Callable

SOLUTIONS = {"01": "01_tokens.py", "02": "02_attention.py", "03": "03_gpt_model.py", "04": "04_training_loop.py",
             "04b": "04b_precision_and_bugs.py", "05": "05_loss_curves.py", "06": "06_inference.py",
             "07": "07_speed.py", "08": "08_stories_on_request.py", "09": "09_modern_recipe.py"}
CHECKS: dict[str, Callable[..., tuple[bool, str]]] = {}


def exercise(name: str):
    """Register the decorated function as the check of exercise ``name`` (``"04.1"``): it takes
    the answer and the exercise's inputs and returns (correct?, a hint)."""
    def register(check: Callable[..., tuple[bool, str]]):
        CHECKS[name] = check
        return check
    return register


def complete_run(answer, preset: str, what: str, **changes) -> tuple[list[dict] | None, str]:
    """The history of ``answer`` (a TrainResult, or its history) if it is a whole run of
    ``preset``'s schedule, with ``changes`` to its settings (every evaluation, to the last step),
    else None and the hint to give."""
    from slm_helpers.presets import get_preset

    config = get_preset(preset, **changes).train
    history = getattr(answer, "history", answer)
    steps = [r["step"] for r in history] if isinstance(history, (list, tuple)) else []
    expected = list(range(0, config.max_steps + 1, config.eval_interval))
    if steps != expected or any("val_loss" not in r for r in history):
        return None, (f"pass the history of a whole {preset} run ({what}): evaluations at steps {expected}, not "
                      f"{steps}")
    return history, ""
