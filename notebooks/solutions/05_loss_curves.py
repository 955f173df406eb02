"""Worked solutions to notebook 05's exercises (tests/test_exercises.py checks them)."""

import tempfile


def first_overfitting_step(history: list[dict]) -> int | None:
    """The first evaluation at which the validation loss rose while the training loss fell:
    the model got better at its training stories and worse at new ones. None if that never
    happened. (Noise can fake one such step; on a real run, look for it to last.)"""
    for before, after in zip(history, history[1:]):
        if after["val_loss"] > before["val_loss"] and after["train_loss"] < before["train_loss"]:
            return after["step"]
    return None


def exercise_1():
    return first_overfitting_step


def exercise_2(preset: str = "ci") -> list[dict]:
    """Without the causal mask every position also sees the tokens after it, the very ones it
    must predict: the model learns to copy the next token from the position after its own
    (the position embeddings tell it which one that is). After 400 steps its validation loss
    is about 0.1 nats, against 0.52 for the normal model, because the validation batches are
    read without a mask too: it is a score for cheating, not for predicting. Generating shows
    it: there the token after the last one does not exist yet, so what it learned is useless,
    and it writes "Once upon a time, upon a time, upon a time, ...". A low loss is only as honest as the
    mask that computed it."""
    from dataclasses import replace

    from slm_helpers.data import preset_dataset
    from slm_helpers.presets import get_preset
    from slm_helpers.train import train

    longer = get_preset(preset, max_steps=400, eval_interval=100)
    data = preset_dataset(longer, progress=False, log=lambda line: None)
    model = replace(longer.model.with_tokenizer(data.tokenizer), causal=False)
    with tempfile.TemporaryDirectory() as out:
        return train(model_config=model, train_config=longer.train, data_dir=data, out_dir=out, progress=False,
                     log=lambda line: None).history
