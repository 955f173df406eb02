"""Checks of notebook 06's exercises (inference)."""

from __future__ import annotations

import math

import torch

from slm_helpers.exercises.registry import exercise

# 06.2 draws DRAWS tokens with the learner's sampler at each (temperature, top_k) of SETTINGS and refuses it when
# their frequencies are further than TOLERANCE (total variation distance) from the true distribution.
DRAWS = 5_000
SETTINGS = ((1.0, None), (0.5, None), (1.5, 3), (0.8, 1))
TOLERANCE = 0.05


@exercise("06.1")
def _top_p(answer, **_):
    from slm_helpers.generate import next_token_distribution

    generator = torch.Generator().manual_seed(0)
    for p in (0.1, 0.5, 0.9, 1.0):
        logits = torch.randn(50, generator=generator) * 3
        probs = torch.softmax(logits, dim=-1)
        got, expected = answer(probs, p), next_token_distribution(logits, top_p=p)
        if not torch.allclose(torch.as_tensor(got, dtype=torch.float32), expected, atol=1e-6):
            return False, (f"at p={p}: keep the most likely tokens until their probabilities reach p (the first one "
                           "always), zero the others, and divide by the sum of what is kept")
    return True, ""


def sampler_logits() -> torch.Tensor:
    """The 8 logits 06.2's check draws from."""
    return torch.randn(8, generator=torch.Generator().manual_seed(0)) * 2


def total_variation(frequencies: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Half the L1 distance over the last dimension: the largest f(A) - p(A) over sets A of ids."""
    return 0.5 * (frequencies - probabilities).abs().sum(-1)


def false_rejection_bounds(draws: int = DRAWS, tolerance: float = TOLERANCE) -> list[float]:
    """For each of SETTINGS, a bound on the chance that a correct sampler fails 06.2's check:
    that ``draws`` independent draws from the true distribution come out ``tolerance`` or more
    from it in total variation. That distance is the largest f(A) - p(A) over the 2^k sets A of
    the k ids that can be drawn, and Hoeffding's inequality bounds each set's:
    P(f(A) - p(A) >= t) <= exp(-2 n t^2). So the chance is at most 2^k exp(-2 n t^2) (0 when
    k = 1: the only id is always drawn). For 5,000 draws and 0.05: e^-25 a set, 520 e^-25 =
    7.2e-9 over the four settings (8, 8, 3 and 1 ids)."""
    from slm_helpers.generate import next_token_distribution

    logits, bounds = sampler_logits(), []
    for temperature, top_k in SETTINGS:
        k = int((next_token_distribution(logits, temperature=temperature, top_k=top_k) > 0).sum())
        bounds.append(0.0 if k == 1 else min(1.0, 2**k * math.exp(-2 * draws * tolerance**2)))
    return bounds


@exercise("06.2")
def _sample_next(answer, draws: int = DRAWS):
    """Draws ``draws`` tokens with the learner's sampler at each of SETTINGS and compares their
    frequencies with next_token_distribution's probabilities; a total variation distance above
    TOLERANCE refuses it. A correct sampler's distance averages about 0.015 here, and the chance
    that it exceeds 0.05 at any setting is below 1e-8 (false_rejection_bounds; tests/
    test_exercises.py checks it against simulated draws). A temperature multiplied instead of
    divided, or one id too many kept by top-k, moves the distance far beyond 0.05."""
    from slm_helpers.generate import next_token_distribution

    logits = sampler_logits()
    for temperature, top_k in SETTINGS:
        generator = torch.Generator().manual_seed(1)
        counts = torch.zeros(logits.numel())
        for _ in range(draws):
            counts[int(answer(logits.clone(), temperature, top_k, generator))] += 1
        expected = next_token_distribution(logits, temperature=temperature, top_k=top_k)
        distance = total_variation(counts / draws, expected).item()
        if distance > TOLERANCE:
            seen = [round(c, 3) for c in (counts / draws).tolist()]
            return False, (f"at temperature {temperature}, top_k {top_k} the ids came up with frequencies {seen}, "
                           f"not {expected.numpy().round(3).tolist()} (a correct sampler strays this far with a chance "
                           f"below {sum(false_rejection_bounds(draws)):.0e}): divide the logits by the temperature, "
                           "keep the top_k largest, then softmax and draw")
    return True, ""
