"""Worked solutions to notebook 03's exercises (tests/test_exercises.py checks them)."""

import tempfile
from dataclasses import replace
from functools import cache


def exercise_1(n_layer: int = 12, n_embd: int = 768, block_size: int = 1024, vocab_size: int = 50257) -> int:
    """GPT-2 small by hand: 124,439,808 parameters, the number OpenAI's checkpoint has.

    Per block: two LayerNorms (a gain and a bias of C each), attention (c_attn C x 3C + 3C,
    c_proj C x C + C) and the MLP (c_fc C x 4C + 4C, c_proj 4C x C + C): 12C^2 + 13C. Around
    the blocks: the token embedding V x C, the position embedding block x C and the final
    LayerNorm 2C. The head adds nothing: it is the token embedding, tied."""
    C = n_embd
    per_block = 2 * (2 * C) + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    return n_layer * per_block + vocab_size * C + block_size * C + 2 * C


@cache
def train_ci(preset: str = "ci", **change):
    """The run of the ci preset's model with one setting changed, trained in a scratch folder:
    its TrainResult (the history, as a tuple since it is cached, and the model it trained)."""
    from slm_helpers.data import preset_dataset
    from slm_helpers.presets import get_preset
    from slm_helpers.train import train

    ci = get_preset(preset)
    data = preset_dataset(ci, progress=False, log=lambda line: None)
    model = replace(ci.model.with_tokenizer(data.tokenizer), **change)
    with tempfile.TemporaryDirectory() as out:
        result = train(model_config=model, train_config=ci.train, data_dir=data, out_dir=out, progress=False,
                       log=lambda line: None)
    return replace(result, history=tuple(result.history))


def exercise_2(preset: str = "ci"):
    """Without residual connections the validation loss stops near 5.3 nats (5.34 at step 50,
    5.26 at 200 where these figures were measured), about the unigram table's 5.32 (notebook 05),
    where the normal model reaches 0.70. The residual stream does two jobs:
    it carries each token's own embedding to the head untouched (a block only adds to it), and
    it gives the gradient a straight path back to the embedding. Without it, the token's
    identity must pass through two freshly initialised branches whose outputs start near zero
    (their weights have std 0.02), so almost nothing reaches the head and almost no gradient
    comes back: the model learns little more than which tokens are common."""
    return train_ci(preset, residual=False)


def exercise_3(preset: str = "ci") -> list[dict]:
    """With PyTorch's default initialisation the validation loss starts at about 44 nats,
    7x ln V: the N(0, 1) embedding, shared with the head, makes large logits, confidently
    wrong. Training brings it down, but 200 steps end near 2.6 nats instead of 0.70: the first
    steps go to undoing the bad start, and the large weights train slowly (the gradient of a
    saturated softmax is small)."""
    return list(train_ci(preset, init="pytorch").history)


def exercise_4(preset: str = "ci"):
    """With one head of 64 channels, the scaled model ends near 0.69 nats and the unscaled one
    near 0.80, behind at every evaluation. A score is a sum of 64 products: as the weights grow
    during training its spread grows like √64 = 8 times that of one product, the softmax puts
    nearly all the weight on one position, and its gradient vanishes for the others. Dividing by √(head size) keeps the
    scores' spread the same whatever the head size. With the preset's two heads of 32 the gap is
    smaller, as expected from a spread √32 rather than √64 times one product's: the unscaled run
    ends near 0.73 against the scaled one's 0.70 (``train_ci(preset, scale_attention=False)``)."""
    return train_ci(preset, n_head=1), train_ci(preset, n_head=1, scale_attention=False)
