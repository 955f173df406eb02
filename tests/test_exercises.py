"""Every exercise's check accepts every correct answer and rejects the plausible wrong ones.

Each case feeds its check the worked solution (from ``notebooks/solutions/``), at least two
other correct forms of the answer, and at least two answers a learner could plausibly give
that are wrong. The exercises that train a model train it once per session (the solutions
cache their runs), on the ``ci`` preset.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from slm_helpers.exercises import _CHECKS, SOLUTIONS, check, passes

from conftest import requires_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"


def solution_module(exercise: str):
    path = SOLUTIONS_DIR / SOLUTIONS[exercise.rsplit(".", 1)[0]]
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MODULES: dict[str, object] = {}


def solution(exercise: str, function: str, **given):
    """The worked solution's answer (its module loaded once, so cached training runs are kept)."""
    key = exercise.rsplit(".", 1)[0]
    if key not in _MODULES:
        _MODULES[key] = solution_module(exercise)
    return getattr(_MODULES[key], function)(**given)


HOT_VAL_LOSSES = (6.49, 5.19, 4.99, 4.80, 4.65)  # the ci run at ten times the rate (solutions/04_training_loop.py)
NO_RESIDUAL_VAL_LOSSES = (6.5, 5.4, 5.3, 5.3, 5.26)  # as a run without residual connections ends


def normal_ci_run():
    """The ci preset's own run (its TrainResult), trained once: a plausible wrong answer to every break-it exercise."""
    return solution("03.2", "train_ci")


def normal_ci_history() -> list[dict]:
    return list(normal_ci_run().history)


def fake_run(history, val_losses=None, lr_times: float = 1, **change):
    """An answer as train_ci(**change) returns it, without training: ``history``'s records, with
    ``val_losses`` for theirs and their learning rates ``lr_times`` larger, and the ci model with ``change``."""
    records = [dict(r, lr=lr_times * r["lr"]) for r in history]
    if val_losses is not None:
        records = [dict(r, val_loss=v) for r, v in zip(records, val_losses)]
    return SimpleNamespace(history=records, model_config=replace(normal_ci_run().model_config, **change))


def synthetic_history(steps: range, val_loss: float) -> list[dict]:
    return [dict(step=s, tokens=s * 1024, lr=1e-3, train_loss=val_loss, val_loss=val_loss, sample="") for s in steps]


def top_p_loop(probs, p):
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
    kept, total = torch.zeros_like(probs), 0.0
    for i in order:
        if total >= p:
            break
        kept[i], total = probs[i], total + float(probs[i])
    return kept / kept.sum()


def first_rise_of_validation(history):  # the training loss forgotten
    return next((r["step"] for p, r in zip(history, history[1:]) if r["val_loss"] > p["val_loss"]), None)


def the_evaluation_before(history):
    return next((p["step"] for p, r in zip(history, history[1:])
                 if r["val_loss"] > p["val_loss"] and r["train_loss"] < p["train_loss"]), None)


def top_p_without_renormalising(probs, p):
    sorted_probs, order = probs.sort(descending=True)
    keep = (sorted_probs.cumsum(0) - sorted_probs) < p
    return torch.zeros_like(probs).scatter(0, order, sorted_probs * keep)


def top_p_without_the_crossing_token(probs, p):  # stops before the token that reaches p
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(0) <= p
    keep[0] = True
    kept = torch.zeros_like(probs).scatter(0, order, sorted_probs * keep)
    return kept / kept.sum()


def sample_by_powers(logits, temperature, top_k, generator):
    probs = torch.softmax(logits, -1) ** (1 / temperature)  # softmax, then sharpen: the same distribution
    if top_k is not None:
        probs[probs < torch.topk(probs, top_k).values[-1]] = 0
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


def step_with_default_zero_grad(model, optimizer, scaler, grad_clip):
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    model.zero_grad()
    return norm


def step_clipping_first(model, optimizer, scaler, grad_clip):  # the original's order
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    return norm


def step_without_unscaling(model, optimizer, scaler, grad_clip):
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad()
    return norm


def step_without_updating_the_scale(model, optimizer, scaler, grad_clip):
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)  # scaler.update() forgotten: the scale never falls after an overflow
    optimizer.zero_grad(set_to_none=True)
    return norm


def step_past_the_scaler(model, optimizer, scaler, grad_clip):
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()  # not scaler.step(optimizer): an inf gradient is applied, not skipped
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return norm


def targets_by_shifting(prompt, story, block_size, pad):
    ids = (prompt + story + [pad] * (block_size + 1))[: block_size + 1]
    y = torch.tensor(ids[1:])
    y[: len(prompt) - 1] = -1
    y[len(prompt + story) - 1:] = -1
    return y.tolist()


def targets_masking_one_too_many(prompt, story, block_size, pad):  # masks the story's first target too
    y = targets_by_shifting(prompt, story, block_size, pad)
    return [-1 if t < len(prompt) else target for t, target in enumerate(y)]


def targets_keeping_the_padding(prompt, story, block_size, pad):  # trains the model to pad
    ids = (prompt + story + [pad] * (block_size + 1))[: block_size + 1]
    return [-1 if t < len(prompt) - 1 else target for t, target in enumerate(ids[1:])]


def uses_by_regex(story, word):
    word = word.lower()
    stem = word[:-1] if word.endswith(("e", "y")) else word
    pattern = rf"\b{word}(s|es|ed|d|ing)?\b"
    if stem != word:
        pattern = rf"\b({word}(s|es|ed|d|ing)?|{stem}(ing|ed|ies|ied))\b"
    return re.search(pattern, story.lower()) is not None


@dataclass
class Exercise:
    id: str
    function: str  # the solution module's function that gives the answer
    given: dict  # the exercise's inputs, as the notebook passes them
    correct: object  # answer -> other correct forms of it
    wrong: object  # answer -> plausible wrong answers


EXERCISES = [
    Exercise("01.1", "exercise_1", dict(text="aaabdaaabac"),
             lambda a: [[("a", "a"), ("a", "b"), ("aa", "ab")], [list(pair) for pair in a],
                        [("a", "b"), ("a", "a"), ("aa", "ab")]],  # pairs counted without overlap: aa ties ab at 2
             lambda a: [a[:2], [("a", "a"), ("b", "d"), ("aa", "a")],
                        [("a", "a"), ("a", "b"), ("b", "d")]]),  # the pairs ranked once, on the text before merging
    Exercise("01.2", "exercise_2", dict(token_id=70_000),
             lambda a: [(4464, np.int32), (np.uint16(4464), "uint32")],
             lambda a: [(70_000, np.uint32), (4464, np.uint64), (4464, np.uint16)]),
    Exercise("02.1", "exercise_1", dict(window=3),
             lambda a: [lambda T, w: torch.tril(torch.ones(T, T, dtype=torch.bool))
                        & ~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-w),
                        lambda T, w: np.fromfunction(lambda i, j: (j <= i) & (j > i - w), (T, T))],
             lambda a: [lambda T, w: torch.tril(torch.ones(T, T, dtype=torch.bool)),  # ignores the window
                        lambda T, w: np.fromfunction(lambda i, j: (j <= i) & (j >= i - w), (T, T))]),  # one too many
    Exercise("02.2", "exercise_2", dict(n_embd=384),
             lambda a: [(float(a[0]), a[1]), [np.int64(a[0]), "no"]],
             lambda a: [(4 * 384 * 384, False), (3 * 384 * 384 + 3 * 384, False),  # no biases; c_attn alone
                        (a[0], True), a[0], (a[0], None)]),  # more heads, more parameters; the second unanswered
    Exercise("03.1", "exercise_1", dict(n_layer=12, n_embd=768, block_size=1024, vocab_size=50257),
             lambda a: [float(a), np.int64(a), a - 50257 * 768],  # all, or section 3's non-embedding count
             lambda a: [a - 1024 * 768, a + 50257 * 768]),  # without wpe; the tied head counted twice
    Exercise("03.2", "exercise_2", dict(preset="ci"),
             lambda a: [replace(a, history=list(a.history)),
                        SimpleNamespace(history=tuple(a.history), model_config=a.model_config)],
             lambda a: [normal_ci_run(), replace(a, history=a.history[:2]),
                        fake_run(normal_ci_history(), HOT_VAL_LOSSES, lr_times=10),  # ends above 3.0, residuals kept
                        list(a.history)]),  # a bare history does not say which model it trained
    Exercise("03.3", "exercise_3", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [normal_ci_history(), a[:-1]]),
    Exercise("03.4", "exercise_4", dict(preset="ci"),
             lambda a: [list(a), (replace(a[0], history=list(a[0].history)),
                                  SimpleNamespace(history=tuple(a[1].history), model_config=a[1].model_config))],
             lambda a: [(a[1], a[0]), (a[0], a[0]), (normal_ci_run(), replace(a[1], history=a[1].history[:2])),
                        (normal_ci_run(), fake_run(normal_ci_history(), NO_RESIDUAL_VAL_LOSSES, residual=False)),
                        (a[0].history, a[1].history)]),  # bare histories
    Exercise("04.1", "exercise_1", dict(step=3_000, preset="gpu"),
             lambda a: [np.float64(a), a * (1 + 1e-9)],
             lambda a: [6e-4,  # the peak
                        6e-5 + (6e-4 - 6e-5) * (1 + math.cos(math.pi * 3_000 / 5_000)) / 2]),  # warmup forgotten
    Exercise("04.2", "exercise_2", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [normal_ci_history(), a[:3]]),
    Exercise("04b.1", "exercise_1", dict(grad_clip=0.5),
             lambda a: [step_with_default_zero_grad, lambda m, o, s, c: a(m, o, s, c)],
             lambda a: [step_clipping_first, step_without_unscaling, step_without_updating_the_scale,
                        step_past_the_scaler]),
    Exercise("04b.2", "exercise_2", dict(preset="gpu"),
             lambda a: [(lambda b, i, g: (2 / 3) * b / (i * g), 2 / 3, 0.0333),
                        [lambda b, i, g: np.float64(2 * b) / (3 * i * g), 0.67, np.float64(0.033)]],
             lambda a: [(lambda b, i, g: 2 * b / (i * g), a[1], a[2]),  # a forward pass counted as a training one
                        (lambda b, i, g: 2 * b / (3 * i), a[1], a[2]),  # the micro-batches forgotten
                        a[0],  # the function alone: the second question unanswered
                        (a[0], a[2], a[1]),  # the two shares swapped
                        (a[0], 100 * a[1], 100 * a[2])]),  # percentages, not fractions
    Exercise("05.1", "exercise_1", {},
             lambda a: [lambda h: next((r["step"] for p, r in zip(h, h[1:])
                                        if r["val_loss"] > p["val_loss"] and r["train_loss"] < p["train_loss"]), None),
                        lambda h: a(list(h))],
             lambda a: [first_rise_of_validation, the_evaluation_before]),
    Exercise("05.2", "exercise_2", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [synthetic_history(range(0, 401, 100), 0.5),  # a model with its mask, 400 steps
                        normal_ci_history()]),  # the ci run's 200 steps
    Exercise("06.1", "exercise_1", {},
             lambda a: [top_p_loop, lambda probs, p: a(probs.clone(), p)],
             lambda a: [top_p_without_renormalising, top_p_without_the_crossing_token]),
    Exercise("06.2", "exercise_2", {},
             lambda a: [sample_by_powers, lambda logits, t, k, g: a(logits, t, k, g)],
             lambda a: [lambda logits, t, k, g: a(logits * t * t, t, k, g),  # multiplied by the temperature
                        lambda logits, t, k, g: a(logits, t, None if k is None else k + 1, g)]),  # one token too many
    Exercise("07.1", "exercise_1", dict(preset="gpu"),
             lambda a: [np.float32(a), round(a, 3)],
             lambda a: [1 - a, 0.875]),  # the layers' share; the 4 x 128 model's
    Exercise("07.2", "exercise_2", {},
             lambda a: [lambda c, e, k: -(-c // (e - k)) if e > k else None,
                        lambda c, e, k: int(c / (e - k)) + (c % (e - k) > 1e-12) if e > k else None],
             lambda a: [lambda c, e, k: math.floor(c / (e - k)) if e > k else None,
                        lambda c, e, k: round(c / (e - k)) if e > k else None,  # 23.3 rounded to 23
                        lambda c, e, k: c / (e - k) if e > k else None]),  # not a whole number of steps
    Exercise("08.1", "exercise_1", {},
             lambda a: [targets_by_shifting, lambda p, s, b, pad: np.array(a(p, s, b, pad))],
             lambda a: [targets_masking_one_too_many,  # the story's first token lost
                        targets_keeping_the_padding]),
    Exercise("08.2", "exercise_2", {},
             lambda a: [uses_by_regex, lambda story, word: a(story.upper(), word)],
             lambda a: [lambda story, word: word.lower() in story.lower(),  # doghouse uses dog, cattle cat
                        lambda story, word: word.lower() in re.findall(r"[a-z]+", story.lower())]),  # no forms
    Exercise("09.1", "exercise_1", {},
             lambda a: [interleaved_rotary,  # the paper's layout of pairs: RoPE too
                        lambda x, positions: a(x.double(), positions).float()],
             lambda a: [lambda x, positions: x + sinusoid(x.size(0), x.size(1)),  # added, as GPT-2's positions
                        lambda x, positions: a(x, positions * 0 + 1),  # every row turned by the same angle
                        lambda x, positions: a(x, -positions)]),  # turned backwards
    Exercise("09.2", "exercise_2", {},
             lambda a: [newton_schulz_cubic, orthogonal_by_eigh],
             lambda a: [lambda g: g / g.norm(),  # scaled, not orthogonalized
                        lambda g: torch.sign(g),  # signSGD's update
                        muon_orthogonalize]),  # Muon's own five quintic rounds: singular values only near 1
    Exercise("09b.1", "exercise_1", {},
             lambda a: [crossing_by_numpy, lambda curve, target: a(list(reversed(curve[::-1])), target)],
             lambda a: [first_evaluation_at_or_below,  # the later evaluation's time: an upper bound, not the crossing
                        last_crossing,  # a curve that dips, rises and dips again crosses first at the first dip
                        lambda curve, target: a(curve, target) or 0.0]),  # never reached is not at 0 s
    Exercise("09b.2", "exercise_2", dict(noise=0.03),
             lambda a: [lambda rows, noise: set(a(rows, noise)),
                        lambda rows, noise: [r["name"] for i, r in enumerate(rows)
                                             if i and rows[i - 1]["val_bpb"] - noise > r["val_bpb"]]],
             lambda a: [lambda rows, noise: [r["name"] for r in rows[1:]  # each against the first row
                                             if rows[0]["val_bpb"] - r["val_bpb"] > noise],
                        lambda rows, noise: [r["name"] for p, r in zip(rows, rows[1:])  # a loss counted as a gain
                                             if abs(p["val_bpb"] - r["val_bpb"]) > noise],
                        lambda rows, noise: [r["name"] for p, r in zip(rows, rows[1:])  # the noise forgotten
                                             if r["val_bpb"] < p["val_bpb"]]]),
]


def crossing_by_numpy(curve, target):
    seconds, figures = np.array(curve, dtype=float).T
    below = np.flatnonzero(figures <= target)
    if below.size == 0:
        return None
    i = below[0]
    return float(seconds[0]) if i == 0 else float(np.interp(target, figures[i - 1:i + 1][::-1],
                                                            seconds[i - 1:i + 1][::-1]))


def first_evaluation_at_or_below(curve, target):
    return next((t for t, figure in curve if figure <= target), None)


def last_crossing(curve, target):
    from slm_helpers.speed import seconds_to_reach

    for start in range(len(curve) - 1, -1, -1):
        if curve[start][1] > target:
            return seconds_to_reach(curve[start:], target)
    return seconds_to_reach(curve, target)


def interleaved_rotary(x, positions, base=10_000.0):
    d = x.size(-1)
    angles = positions[:, None].float() * base ** (-torch.arange(0, d, 2).float() / d)
    out = torch.empty_like(x)
    even, odd = x[:, 0::2], x[:, 1::2]
    out[:, 0::2], out[:, 1::2] = even * angles.cos() - odd * angles.sin(), even * angles.sin() + odd * angles.cos()
    return out


def sinusoid(T, d):
    position = torch.arange(T)[:, None].float()
    return torch.sin(position / 10_000 ** (torch.arange(d)[None] / d))


def newton_schulz_cubic(g, steps=60):  # the classic cubic iteration, converging to U V^T exactly
    x = g.double() / g.norm()
    for _ in range(steps):
        x = 1.5 * x - 0.5 * x @ x.T @ x
    return x.float()


def orthogonal_by_eigh(g):  # (G G^T)^(-1/2) G
    values, vectors = torch.linalg.eigh(g.double() @ g.double().T)
    keep = values > 1e-12 * values.max()
    inverse_root = (vectors[:, keep] / values[keep].sqrt()) @ vectors[:, keep].T
    return (inverse_root @ g.double()).float()


def muon_orthogonalize(g):
    from slm_helpers.muon import orthogonalize

    return orthogonalize(g)


def test_every_exercise_has_a_case():
    assert sorted(e.id for e in EXERCISES) == sorted(_CHECKS)


@requires_tokenizer
@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.id for e in EXERCISES])
def test_a_check_accepts_every_correct_answer_and_rejects_the_wrong_ones(exercise, capsys, tmp_path_factory,
                                                                        monkeypatch):
    monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path_factory.getbasetemp() / "exercise-data"))  # out of the repository
    answer = solution(exercise.id, exercise.function, **exercise.given)
    for correct in [answer, *exercise.correct(answer)]:
        assert passes(exercise.id, correct, **exercise.given) is True, capsys.readouterr().out
        assert capsys.readouterr().out == f"exercise {exercise.id}: correct\n"
    wrong = exercise.wrong(answer)
    assert len(exercise.correct(answer)) >= 2 and len(wrong) >= 2
    for answer in wrong:
        assert passes(exercise.id, answer, **exercise.given) is False
        assert capsys.readouterr().out.startswith(f"exercise {exercise.id}: not yet: ")


def test_an_unanswered_exercise_points_at_its_solution(capsys):
    assert passes("03.2", None, preset="ci") is False
    assert capsys.readouterr().out == ("exercise 03.2: not answered yet (a worked solution: "
                                       "notebooks/solutions/03_gpt_model.py)\n")
    with pytest.raises(ValueError, match="no exercise '10.1'"):
        check("10.1", 1)


@pytest.mark.parametrize("number", sorted(SOLUTIONS))
def test_the_notebook_asks_its_exercises_with_the_solutions_inputs(number):
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    cells = json.loads(path.read_text())["cells"]
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in "".join(c["source"]).splitlines()
                if line.startswith("### Exercise ")]
    assert 2 <= len(headings) <= 4
    asked = {}
    for cell in cells:
        for match in re.finditer(r'check\("(\d\db?\.\d)", [^,]+(?:, (.*))?\);?$', "".join(cell["source"]), re.M):
            asked[match.group(1)] = match.group(2) or ""
    expected = [e for e in EXERCISES if e.id.rsplit(".", 1)[0] == number]
    assert sorted(asked) == [e.id for e in expected] and len(headings) == len(expected)
    for exercise in expected:
        for name in exercise.given:
            assert f"{name}=" in asked[exercise.id], f"{exercise.id} is asked without {name}"
    assert "## Summary" in "".join(cells[-1]["source"])  # each notebook ends with its summary


def test_merges_by_hand_may_count_overlapping_pairs_or_not(capsys):
    """In 'aaaaabcbcbc' aa occurs 4 times counted with overlaps (as slm_helpers.bpe counts) and 2
    without (as a merge joins it), bc 3 times either way: the first merge is aa one way, bc the
    other, and both are accepted; cb (2 either way) is not."""
    text = "aaaaabcbcbc"
    assert passes("01.1", [("a", "a")], text=text, merges=1) is True
    assert passes("01.1", [("b", "c")], text=text, merges=1) is True
    assert capsys.readouterr().out == "exercise 01.1: correct\n" * 2
    assert passes("01.1", [("c", "b")], text=text, merges=1) is False
    assert capsys.readouterr().out.startswith("exercise 01.1: not yet: merge 1: ('c', 'b') occurs 2 time(s)")


@pytest.mark.parametrize("step, hint", [(step_without_updating_the_scale, "the scale should fall"),
                                        (step_past_the_scaler, "the step must be skipped")],
                         ids=["no scaler.update()", "optimizer.step()"])
def test_a_step_must_skip_an_overflow_and_lower_the_scale(step, hint, capsys):
    """Both mistakes leave the right weights while the gradients are finite (the old check took
    both): only a step after an inf gradient shows them."""
    assert passes("04b.1", step, grad_clip=0.5) is False
    out = capsys.readouterr().out
    assert out.startswith("exercise 04b.1: not yet: ") and hint in out, out


def test_a_correct_sampler_fails_06_2_with_a_chance_below_one_in_a_hundred_million():
    """06.2's false-rejection rate, as its check states it: the bound (Hoeffding over the sets of
    ids) is 520 e^-25 < 1e-8; 500 simulated checks' worth of correct draws per setting (a fixed
    seed) all pass; and at half the tolerance, where correct draws do sometimes stray, they
    stray no more often than the same bound allows there."""
    from slm_helpers.exercises import n06_inference as n06
    from slm_helpers.generate import next_token_distribution

    assert sum(n06.false_rejection_bounds()) == pytest.approx(520 * math.exp(-25))
    assert sum(n06.false_rejection_bounds()) < 1e-8
    repeats, generator, logits = 500, torch.Generator().manual_seed(0), n06.sampler_logits()
    loose = n06.false_rejection_bounds(tolerance=n06.TOLERANCE / 2)
    for (temperature, top_k), loose_bound in zip(n06.SETTINGS, loose):
        expected = next_token_distribution(logits, temperature=temperature, top_k=top_k)
        draws = torch.multinomial(expected.repeat(repeats, 1), n06.DRAWS, replacement=True, generator=generator)
        counts = torch.zeros(repeats, expected.numel()).scatter_add_(1, draws, torch.ones(draws.shape))
        distances = n06.total_variation(counts / n06.DRAWS, expected)
        assert distances.max() < n06.TOLERANCE
        assert (distances >= n06.TOLERANCE / 2).float().mean() <= loose_bound


@requires_tokenizer
def test_a_break_it_run_must_be_of_the_model_and_schedule_asked(capsys, tmp_path_factory, monkeypatch):
    """03.2 and 03.4 read which model a run trained from its TrainResult and its schedule from
    its history's learning rates and tokens. Fakes of the ci run's history (nothing more is
    trained): runs as far off as the ones asked for, of another model or rate, are refused."""
    monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path_factory.getbasetemp() / "exercise-data"))
    normal = normal_ci_history()
    behind = [r["val_loss"] + 0.1 for r in normal]
    cases = [
        ("03.2", fake_run(normal, NO_RESIDUAL_VAL_LOSSES, residual=False), None),
        ("03.2", fake_run(normal, HOT_VAL_LOSSES, lr_times=10), "but this run changes nothing"),  # old check: 4.65 > 3
        ("03.2", fake_run(normal, NO_RESIDUAL_VAL_LOSSES, lr_times=10, residual=False), "learning rate is"),
        ("03.2", fake_run(normal, NO_RESIDUAL_VAL_LOSSES, residual=False).history, "TrainResult"),
        ("03.4", (fake_run(normal, n_head=1), fake_run(normal, behind, n_head=1, scale_attention=False)), None),
        ("03.4", (fake_run(normal), fake_run(normal, NO_RESIDUAL_VAL_LOSSES, residual=False)),  # old check: 4.4 apart
         "train_ci(n_head=1) changes {'n_head': 1}"),
        ("03.4", (fake_run(normal, n_head=1), fake_run(normal, behind, n_head=1, residual=False)),
         "but this run changes {'n_head': 1, 'residual': False}"),
    ]
    for exercise, answer, hint in cases:
        verdict = passes(exercise, answer, preset="ci")
        out = capsys.readouterr().out
        if hint is None:
            assert verdict is True and out == f"exercise {exercise}: correct\n", out
        else:
            assert verdict is False and out.startswith(f"exercise {exercise}: not yet: ") and hint in out, out
