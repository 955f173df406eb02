"""Writing stories with a trained model: sampling controls, a KV cache, streaming.

The model gives scores (logits) for the next token; we turn them into a choice, append it
and repeat. ``temperature`` sharpens (< 1) or flattens (> 1) the distribution, 0 means
greedy; ``top_k`` keeps only the k most likely tokens; ``top_p`` keeps the smallest set
whose probabilities add up to p (nucleus sampling).

With a :class:`~slm_helpers.model.KVCache` each new token costs one position instead of the
whole context. Position embeddings are absolute, so cached keys and values are valid only
while the sequence fits in ``block_size``; past that, generation goes on over a sliding
window of the last ``block_size`` tokens, recomputed at every step (notebook 06 explains
why the cache cannot simply be shifted). Greedy output is the same with and without cache.

``load_model`` gives a model and the tokenizer whose ids it reads; every function here that
takes text takes that tokenizer, and refuses one that speaks other ids. From a terminal::

    python -m slm_helpers.generate --checkpoint runs/cpu/best_model_params.pt --prompt "Once upon a time"
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import torch

from slm_helpers.errors import SlmError, TokenizerError, check_int, check_number
from slm_helpers.model import GPT, KVCache
from slm_helpers.tokenizer import Tokenizer

# The series' sampling defaults: the command line, the story box and an export's generation config.
MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P = 200, 0.8, 200, None


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int = 1) -> None:
    """Clear errors for settings that make no sense. Infinite temperature is refused too: it
    would make every token equally likely, silently undoing top-k."""
    check_int("max_new_tokens", max_new_tokens)
    check_number("temperature", temperature, hint=" (0 = greedy, 1 = the model's own odds)")
    if top_k is not None:
        check_int("top_k", top_k, alternative=" (or None for no limit)")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise SlmError(f"top_p must be in (0, 1] (or None for no limit), not {top_p!r}: it keeps the most likely "
                         "tokens until their probabilities add up to top_p")


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities of the next token from a ``(vocab_size,)`` row of logits after temperature,
    top-k and top-p. Temperature 0 puts all probability on the argmax."""
    check_sampling(temperature, top_k, top_p)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or not logits.numel():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise SlmError(f"logits must be one row of scores, shape (vocab_size,), not {shape}: for a batch, take one "
                         "row (logits[0, -1] is the last position of the first sequence)")
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).to(torch.float32)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        kth_largest = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        # Keep a token if the tokens before it do not yet reach top_p (the first is always kept).
        keep_sorted = (sorted_probs.cumsum(0) - sorted_probs) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum()
    return probs


def prepare_prompt(prompt_ids: list[int], block_size: int, eot_token: int, log=print) -> list[int]:
    """An empty prompt starts from <|endoftext|> (the start of a story); a prompt longer than
    the context keeps its last ``block_size`` tokens, and says so."""
    if not prompt_ids:
        return [eot_token]
    if len(prompt_ids) > block_size:
        log(f"(the prompt has {len(prompt_ids)} tokens, more than the context of {block_size}: keeping its last "
            f"{block_size})")
        return prompt_ids[-block_size:]
    return list(prompt_ids)


def generate_ids(model: GPT, prompt_ids: list[int], max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop_token: int | None = None, use_kv_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one at a time (the prompt must fit in the context; see
    :func:`prepare_prompt`). Stops after ``max_new_tokens`` or right after ``stop_token``.
    Bad settings raise here, before the first token, not when the first token is asked for."""
    check_sampling(temperature, top_k, top_p, max_new_tokens)
    block_size, vocab_size = model.config.block_size, model.config.vocab_size
    if not 0 < len(prompt_ids) <= block_size:
        raise SlmError(f"the prompt must hold 1 to {block_size} tokens, not {len(prompt_ids)}: use prepare_prompt")
    made_by = getattr(prompt_ids, "tokenizer", None)  # ids from a Tokenizer remember which one made them
    if made_by is not None and made_by != model.config.tokenizer:
        raise TokenizerError(f"the prompt's ids were made by the tokenizer {made_by!r}, but the model reads "
                             f"{model.config.tokenizer!r} ids: encode the prompt with the tokenizer load_model returns")
    bad = [i for i in prompt_ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size]
    if bad:
        raise SlmError(f"prompt id {bad[0]!r} is outside the model's vocabulary [0, {vocab_size})")
    return _generate_ids(model, list(prompt_ids), max_new_tokens, temperature, top_k, top_p, seed, stop_token,
                         use_kv_cache)


@torch.inference_mode()
def _generate_ids(model: GPT, ids: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
                  top_p: float | None, seed: int | None, stop_token: int | None, use_kv_cache: bool) -> Iterator[int]:
    block_size = model.config.block_size
    device = next(model.parameters()).device
    # Sample on the CPU: multinomial on Apple's MPS has been reported to pick zero-probability tokens.
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()  # a fresh random seed
    # The head's weight is the token embedding, (vocab_size, n_embd). One vector times it is
    # memory-bound and, on CPUs, ran ~3x faster against a transposed contiguous copy (made once).
    head = model.lm_head.weight.t().contiguous()
    cache = KVCache(model.config.n_layer) if use_kv_cache else None
    for _ in range(max_new_tokens):
        if cache is not None and len(ids) <= block_size:
            new = ids if len(cache) == 0 else ids[-1:]  # the whole prompt once, then one token at a time
            hidden = model.hidden_states(torch.tensor([new], device=device), cache)
        else:  # no cache, or past the context: the last block_size tokens, recomputed
            hidden = model.hidden_states(torch.tensor([ids[-block_size:]], device=device))
        probs = next_token_distribution(hidden[0, -1] @ head, temperature, top_k, top_p).cpu()
        token = int(probs.argmax()) if temperature == 0 else int(torch.multinomial(probs, 1, generator=generator))
        ids.append(token)
        yield token
        if token == stop_token:
            return


def check_tokenizer(model: GPT, tokenizer) -> Tokenizer:
    """``tokenizer``, if it speaks the ids ``model`` reads (the one :func:`load_model` returns
    with it); any other is refused: the same id would mean another token."""
    if not isinstance(tokenizer, Tokenizer):
        raise TokenizerError(f"tokenizer must be the Tokenizer that load_model returns with the model (model, "
                             f"tokenizer = load_model(path)), not {type(tokenizer).__name__}")
    tokenizer.check_speaks(model.config.tokenizer, "the model")
    return tokenizer


def stream_story(model: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = MAX_NEW_TOKENS,
                 temperature: float = TEMPERATURE, top_k: int | None = TOP_K, top_p: float | None = TOP_P,
                 seed: int | None = None,
                 stop_at_eot: bool = True, use_kv_cache: bool = True, log=print) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text, piece by piece as tokens come (a token can
    end in the middle of a multi-byte character, so bytes are decoded incrementally). Bad
    settings raise here, before anything is generated. ``tokenizer`` is the model's own (from
    :func:`load_model`); with a compact vocabulary, prompt tokens outside it are said, and
    become ``<unk>``."""
    check_tokenizer(model, tokenizer)
    if not isinstance(prompt, str):
        raise SlmError(f"prompt must be text (a str), not {type(prompt).__name__}")
    if unknown := tokenizer.unknown_tokens(prompt):
        log(f"({len(unknown)} prompt token(s) are not in the model's compact vocabulary and become <unk>: "
            f"{', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''})")
    prompt_ids = prepare_prompt(tokenizer.encode_ordinary(prompt), model.config.block_size, tokenizer.eot_token, log)
    stop = tokenizer.eot_token if stop_at_eot else None
    tokens = generate_ids(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, stop, use_kv_cache)
    return _decode_stream(tokens, tokenizer, stop)


def _decode_stream(tokens: Iterator[int], tokenizer, stop: int | None) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in tokens:
        if token == stop:
            break
        text = decoder.decode(tokenizer.decode_single_token_bytes(token))
        if text:
            yield text
    yield decoder.decode(b"", final=True)


def write_story(model: GPT, tokenizer, prompt: str, **settings) -> str:
    """The prompt followed by its generated continuation, as one string."""
    return prompt + "".join(stream_story(model, tokenizer, prompt, **settings))
