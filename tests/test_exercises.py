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
from dataclasses import dataclass
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


def normal_ci_history() -> list[dict]:
    """The ci preset's own run, trained once: a plausible wrong answer to every break-it exercise."""
    return list(solution("03.2", "train_ci"))


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
             lambda a: [[("a", "a"), ("a", "b"), ("aa", "ab")], [list(pair) for pair in a]],
             lambda a: [[("a", "b"), ("a", "a"), ("aa", "ab")], a[:2], [("a", "a"), ("b", "d"), ("aa", "a")]]),
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
             lambda a: [float(a), np.int64(a)],
             lambda a: [4 * 384 * 384, 3 * 384 * 384 + 3 * 384]),  # no biases; c_attn alone
    Exercise("03.1", "exercise_1", dict(n_layer=12, n_embd=768, block_size=1024, vocab_size=50257),
             lambda a: [float(a), np.int64(a)],
             lambda a: [a - 1024 * 768, a + 50257 * 768]),  # without wpe; the tied head counted twice
    Exercise("03.2", "exercise_2", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [normal_ci_history(), a[:2]]),
    Exercise("03.3", "exercise_3", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [normal_ci_history(), a[:-1]]),
    Exercise("03.4", "exercise_4", dict(preset="ci"),
             lambda a: [list(a), (SimpleNamespace(history=a[0]), tuple(a[1]))],
             lambda a: [(a[1], a[0]), (a[0], a[0]), (normal_ci_history(), a[1][:2])]),
    Exercise("04.1", "exercise_1", dict(step=3_000, preset="gpu"),
             lambda a: [np.float64(a), a * (1 + 1e-9)],
             lambda a: [6e-4,  # the peak
                        6e-5 + (6e-4 - 6e-5) * (1 + math.cos(math.pi * 3_000 / 5_000)) / 2]),  # warmup forgotten
    Exercise("04.2", "exercise_2", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [normal_ci_history(), a[:3]]),
    Exercise("04b.1", "exercise_1", dict(grad_clip=0.5),
             lambda a: [step_with_default_zero_grad, lambda m, o, s, c: a(m, o, s, c)],
             lambda a: [step_clipping_first, step_without_unscaling]),
    Exercise("04b.2", "exercise_2", dict(preset="gpu"),
             lambda a: [lambda b, i, g: (2 / 3) * b / (i * g), lambda b, i, g: np.float64(2 * b) / (3 * i * g)],
             lambda a: [lambda b, i, g: 2 * b / (i * g),  # a forward pass counted as a training one
                        lambda b, i, g: 2 * b / (3 * i)]),  # the micro-batches forgotten
    Exercise("05.1", "exercise_1", {},
             lambda a: [lambda h: next((r["step"] for p, r in zip(h, h[1:])
                                        if r["val_loss"] > p["val_loss"] and r["train_loss"] < p["train_loss"]), None),
                        lambda h: a(list(h))],
             lambda a: [first_rise_of_validation, the_evaluation_before]),
    Exercise("05.2", "exercise_2", dict(preset="ci"),
             lambda a: [tuple(a), SimpleNamespace(history=a)],
             lambda a: [synthetic_history(range(0, 601, 150), 0.5),  # a model with its mask, 600 steps
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
]


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
