"""slm_helpers.speed: the counting and the measuring machinery (not how fast anything is:
speed targets live in benchmarks/)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from slm_helpers.data import TokenDataset
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.plan import training_flops
from slm_helpers.presets import get_preset
from slm_helpers.speed import (
    PARTS,
    TrainingStep,
    fitted,
    flops_per_token,
    generation_speeds,
    loss_against_time,
    positions_computed,
    projected_seconds,
    seconds_to_reach,
    step_and_evaluation_seconds,
    steps_that_fit,
    time_alternately,
    time_pieces,
)

from conftest import requires_tokenizer


@pytest.mark.parametrize("name", ["ci", "cpu", "modern", "gpu"])
def test_the_parts_add_up_to_the_run_estimate_s_flops_per_token(name):
    preset = get_preset(name)
    flops = flops_per_token(preset.model)
    assert tuple(flops) == PARTS
    tokens = preset.train.max_steps * preset.train.tokens_per_step(preset.model.block_size)
    # training_flops counts 6 x all parameters (position embedding, norms, biases too) + attention.
    assert sum(flops.values()) == pytest.approx(training_flops(preset.model, preset.train) / tokens, rel=0.02)
    c = preset.model
    assert flops["output head + loss"] == 6 * c.vocab_size * c.n_embd


def test_the_head_dominates_small_models_and_a_compact_vocabulary_removes_most_of_it():
    config = GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)  # the old cpu preset's model
    share = flops_per_token(config)["output head + loss"] / sum(flops_per_token(config).values())
    compact = flops_per_token(replace(config, vocab_size=643))
    assert 0.85 < share < 0.9  # the "about 89%"
    assert compact["output head + loss"] / sum(compact.values()) < 0.3


def test_time_alternately_warms_up_then_alternates_rounds():
    calls = []
    seconds = time_alternately({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, calls=2,
                               warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())


def test_time_pieces_times_every_part():
    pieces = time_pieces(get_preset("ci").model, batch_size=2, rounds=1)
    assert tuple(pieces) == PARTS and all(s > 0 for s in pieces.values())


@requires_tokenizer
def test_a_training_step_is_train_s_step(small_compact_dataset):
    """Same seed, same model, same batches: TrainingStep's losses are those of the helper's
    loop (accumulate_gradients + optimizer_step), and they fall; its validation loss at the
    start is a uniform guess's, ln V."""
    preset = get_preset("ci")
    data = TokenDataset.open(small_compact_dataset.path)
    model = preset.model.with_tokenizer(data.tokenizer)
    step = TrainingStep(model, preset.train, data, seed=3)
    again = TrainingStep(model, preset.train, data, seed=3)
    assert step.validation_loss() == pytest.approx(math.log(data.vocab_size), abs=0.1)
    losses = [step() for _ in range(8)]
    assert losses == [again() for _ in range(8)]
    assert losses[-1] < losses[0] - 0.5


def test_steps_that_fit_a_budget_are_the_most_whose_projected_seconds_fit_it():
    timing = dict(seconds_per_step=0.5, seconds_per_evaluation=3.0)
    steps = steps_that_fit(300.0, timing, evaluations=10)
    assert projected_seconds(steps, timing, 10) <= 300.0 < projected_seconds(steps + 1, timing, 10)
    assert projected_seconds(100, timing, 10) == 100 * 0.5 + 12 * 3.0  # step 0's and the last evaluation too
    assert steps_that_fit(1.0, timing, evaluations=10) == 10  # at least 10, however short the budget


def test_runs_are_timed_in_turn_so_the_machine_s_pace_falls_on_all(monkeypatch):
    from slm_helpers import speed

    calls = []

    class Step:  # stands for TrainingStep: records who was called when
        def __init__(self, model_config, train_config, data, dtype):
            self.name = data

        def __call__(self):
            calls.append(self.name)

        def validation_loss(self):
            calls.append(f"{self.name} eval")

    monkeypatch.setattr(speed, "TrainingStep", Step)
    timings = step_and_evaluation_seconds({"a": (None, None, "a"), "b": (None, None, "b")}, rounds=3, calls=2)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3 + ["a eval", "b eval"]  # warm-up, rounds in turn, evals
    assert set(timings) == {"a", "b"}
    assert all(set(t) == {"seconds_per_step", "seconds_per_evaluation"} and min(t.values()) >= 0
               for t in timings.values())


@requires_tokenizer
def test_loss_against_time_trains_for_the_seconds_given(small_compact_dataset):
    preset = get_preset("ci")
    data = TokenDataset.open(small_compact_dataset.path)
    curve = loss_against_time(preset.model.with_tokenizer(data.tokenizer), replace(preset.train, warmup_steps=2), data,
                              seconds=2.0, evaluations=2)
    assert [r["seconds"] >= s for r, s in zip(curve, (0.0, 1.0, 2.0))] == [True] * 3 and len(curve) == 3
    # A step longer than a window (a busy machine) leaves the next window nothing to train: never fewer.
    assert curve[0]["step"] == 0 < curve[1]["step"] <= curve[2]["step"]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]


@requires_tokenizer
def test_loss_against_time_warms_each_group_up_to_its_own_peak(small_compact_dataset, monkeypatch):
    from slm_helpers import speed

    made = []

    class Recorded(speed.TrainingStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(speed, "TrainingStep", Recorded)
    preset = get_preset("ci")
    config = replace(preset.train, warmup_steps=1, optimizer="muon", muon_lr=0.02, embedding_lr=0.05)
    data = TokenDataset.open(small_compact_dataset.path)
    loss_against_time(preset.model.with_tokenizer(data.tokenizer), config, data, seconds=0.3, evaluations=1)
    rates = [group["lr"] for group in made[0].optimizer.param_groups]  # Muon, matrices, vectors, embedding
    assert rates == [0.02, config.learning_rate, config.learning_rate, 0.05]


def test_fitted_fits_a_config_s_schedule_and_evaluations_to_its_steps():
    config = fitted(get_preset("modern").train, 969, 10, device="cpu")
    assert (config.max_steps, config.warmup_steps, config.eval_interval, config.device) == (969, 48, 96, "cpu")
    assert config.schedule == "wsd" and config.decay_steps() == 388  # the rest kept


def test_generation_speeds_need_a_context_that_fits():
    torch.manual_seed(0)
    model = GPT(replace(get_preset("ci").model, dropout=0.0)).eval()
    speeds = generation_speeds(model, 16, rounds=1)
    assert set(speeds) == {"cache", "no cache"} and all(v > 0 for v in speeds.values())
    for context in (4, 65):
        with pytest.raises(ValueError, match=r"context must be in \(4, 64\]"):
            generation_speeds(model, context)


@pytest.mark.parametrize("use_kv_cache", [True, False])
def test_positions_computed_counts_what_generation_runs_through_the_model(use_kv_cache, monkeypatch):
    from slm_helpers.generate import generate_ids

    torch.manual_seed(0)
    model = GPT(replace(get_preset("ci").model, dropout=0.0)).eval()
    counted = []
    hidden_states = model.hidden_states
    monkeypatch.setattr(model, "hidden_states", lambda idx, cache=None: counted.append(idx.size(1)) or
                        hidden_states(idx, cache))
    list(generate_ids(model, [1, 2, 3, 4], 60, temperature=0, use_kv_cache=use_kv_cache))
    assert sum(counted) == positions_computed(64, use_kv_cache)


def test_seconds_to_reach_reads_the_line_between_the_evaluations_around_the_first_crossing():
    curve = [(0, 4.0), (100, 2.0), (200, 1.0), (300, 1.5), (400, 0.5)]
    assert seconds_to_reach(curve, 1.5) == pytest.approx(150.0)  # halfway from 2.0 down to 1.0
    assert seconds_to_reach(curve, 1.0) == 200.0  # exactly at an evaluation
    assert seconds_to_reach(curve, 1.2) == pytest.approx(180.0)  # the first crossing, not the one after the rise
    assert seconds_to_reach(curve, 5.0) == 0.0  # already there at the start
    assert seconds_to_reach(curve, 0.4) is None  # never
