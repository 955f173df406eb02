"""Checks of notebook 05's exercises (loss curves)."""

from __future__ import annotations

from slm_helpers.exercises.registry import complete_run, exercise


@exercise("05.1")
def _first_overfitting_step(answer, **_):
    cases = [
        ([(0, 9.0, 9.0), (10, 5.0, 5.1), (20, 4.0, 4.3), (30, 3.5, 4.5), (40, 3.0, 4.9)], 30),
        ([(0, 9.0, 9.0), (10, 5.0, 5.0), (20, 4.0, 4.1)], None),
        ([(0, 9.0, 9.0), (10, 5.0, 4.9), (20, 5.1, 5.0), (30, 4.0, 5.2)], 30),  # at 20 both rose: not yet
    ]
    for records, expected in cases:
        history = [dict(step=s, train_loss=t, val_loss=v) for s, t, v in records]
        if answer(history) != expected:
            return False, (f"for {records} (step, train, val) the answer is {expected}: the first evaluation whose "
                           "validation loss rose while the training loss fell")
    return True, ""


@exercise("05.2")
def _no_causal_mask(answer, preset: str):
    history, hint = complete_run(answer, preset, "train(...).history of get_preset('ci', max_steps=400, eval_interval="
                             "100), with causal=False", max_steps=400, eval_interval=100)
    if history is None:
        return False, hint
    final = history[-1]["val_loss"]
    # Measured: 0.10 nats without the mask (it reads the answer), 0.52 with it after 400 steps.
    return final < 0.2, (f"this run ends at {final:.2f} nats, as a model with its mask does: train with "
                         "model_config=replace(..., causal=False)")
