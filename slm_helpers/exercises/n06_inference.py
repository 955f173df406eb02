"""Checks of notebook 06's exercises (inference)."""

from __future__ import annotations

import torch

from slm_helpers.exercises.registry import exercise


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


@exercise("06.2")
def _sample_next(answer, draws: int = 5_000):
    """Draws ``draws`` tokens with the learner's sampler at several settings and compares the
    frequencies with the true distribution. With 5,000 draws of 8 ids the sampling noise in
    the total variation distance is about 0.02 (rarely above 0.035); a wrong temperature or
    top-k moves it by 0.1 or more, so 0.05 accepts every correct sampler and rejects those."""
    from slm_helpers.generate import next_token_distribution

    logits = torch.randn(8, generator=torch.Generator().manual_seed(0)) * 2
    for temperature, top_k in ((1.0, None), (0.5, None), (1.5, 3), (0.8, 1)):
        generator = torch.Generator().manual_seed(1)
        counts = torch.zeros(8)
        for _ in range(draws):
            counts[int(answer(logits.clone(), temperature, top_k, generator))] += 1
        expected = next_token_distribution(logits, temperature=temperature, top_k=top_k)
        distance = 0.5 * (counts / draws - expected).abs().sum().item()
        if distance > 0.05:
            seen = [round(c, 3) for c in (counts / draws).tolist()]
            return False, (f"at temperature {temperature}, top_k {top_k} the ids came up with frequencies {seen}, "
                           f"not {expected.numpy().round(3).tolist()}: divide the logits by the temperature, keep "
                           "the top_k largest, then softmax and draw")
    return True, ""
