"""The exercises' registry: each notebook's module registers its checks here with
:func:`exercise`, and :func:`~slm_helpers.exercises.check` looks them up."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields

SOLUTIONS = {"01": "01_tokens.py", "02": "02_attention.py", "03": "03_gpt_model.py", "04": "04_training_loop.py",
             "04b": "04b_precision_and_bugs.py", "05": "05_loss_curves.py", "06": "06_inference.py",
             "07": "07_speed.py", "08": "08_stories_on_request.py", "09": "09_modern_recipe.py",
             "09b": "09b_real_runs.py"}
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


def model_changes(answer, preset: str) -> dict | None:
    """The model settings of ``answer``'s run that differ from ``preset``'s model, its vocabulary
    aside (``{}``: the preset's own model), read from the ``model_config`` a
    :class:`~slm_helpers.train.TrainResult` carries; None for an answer without one (a bare
    history does not say which model it trained)."""
    from slm_helpers.presets import get_preset

    config = getattr(answer, "model_config", None)
    if config is None:
        return None
    base = get_preset(preset).model
    return {f.name: getattr(config, f.name) for f in fields(base)
            if f.name not in ("vocab_size", "tokenizer") and getattr(config, f.name) != getattr(base, f.name)}


def schedule_hint(history: list[dict], preset: str) -> str:
    """The hint for a run whose schedule is not ``preset``'s, or "" when it is: every evaluation
    must have the learning rate and the count of tokens seen that the schedule gives at its
    step. A run at another rate, batch or context is another experiment (ten times the rate
    ends as high as no residual connections do)."""
    from slm_helpers.optim import learning_rates
    from slm_helpers.presets import get_preset

    chosen = get_preset(preset)
    rates = learning_rates(chosen.train, chosen.train.max_steps + 1)
    per_step = chosen.train.tokens_per_step(chosen.model.block_size)
    for record in history:
        step = record["step"]
        if not math.isclose(record["lr"], rates[step], rel_tol=1e-6):
            return (f"at step {step} this run's learning rate is {record['lr']:.2e}, not the {preset} preset's "
                    f"{rates[step]:.2e}: change only the model setting asked, not the training settings")
        if record["tokens"] != step * per_step:
            return (f"at step {step} this run had seen {record['tokens']:,} tokens, not {step * per_step:,}: keep the "
                    f"{preset} preset's batch_size, grad_accum_steps and block_size")
    return ""


def the_run_asked(run, preset: str, what: str, asked: dict) -> tuple[list[dict] | None, str]:
    """The history of ``run`` if it is a whole run of ``preset``'s schedule whose model changes
    exactly ``asked`` from the preset's (its TrainResult says which model it trained), else
    None and the hint."""
    history, hint = complete_run(run, preset, what)
    if history is None:
        return None, hint
    changes = model_changes(run, preset)
    if changes is None:
        return None, f"pass what {what} returns (the run's TrainResult, which says which model it trained)"
    if changes != asked:
        return None, (f"{what} changes {asked} from the {preset} preset's model, but this run changes "
                      f"{changes or 'nothing'}")
    hint = schedule_hint(history, preset)
    return (None, hint) if hint else (history, "")
