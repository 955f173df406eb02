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

From a terminal::

    python -m slm_helpers.generate --checkpoint runs/cpu/best_model_params.pt --prompt "Once upon a time"
"""

from __future__ import annotations

import codecs
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from slm_helpers.checkpoint import MAKE_IT, CheckpointError, load_file
from slm_helpers.model import GPT, GPTConfig, KVCache
from slm_helpers.vocab import CompactTokenizer, CompactVocabulary, VocabularyError


def describe_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str:
    """Every difference between a model's state dict and a saved one, on one line."""
    parts = []
    shapes = [f"{k} {tuple(saved[k].shape)} in the file vs {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in saved and hasattr(saved[k], "shape") and saved[k].shape != v.shape]
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if shapes:
        parts.append("shapes differ: " + "; ".join(shapes))
    if missing:
        parts.append(f"missing from the file: {', '.join(missing)}")
    if unexpected:
        parts.append(f"not in the model: {', '.join(unexpected)}")
    return ". ".join(parts)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", config: GPTConfig | None = None) -> GPT:
    """A GPT in eval mode from ``best_model_params.pt`` or a full ``checkpoint.pt`` (both hold
    the model's configuration), loaded with ``weights_only=True``. A bare state dict, as the
    original script saved, needs ``config``. A model trained on a compact vocabulary gets it
    as ``model.vocabulary`` (see :func:`matching_tokenizer`); others have ``None`` there."""
    path = Path(path)
    saved = load_file(path, "weights file")
    vocabulary = _saved_vocabulary(saved, path)
    if isinstance(saved, dict) and "model" in saved and "model_config" in saved:
        try:
            config = GPTConfig(**saved["model_config"])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path} holds a model configuration this version cannot build ({error})") from None
        state = saved["model"]
    elif config is not None and isinstance(saved, dict):
        state = saved
    elif isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise CheckpointError(
            f"{path} holds bare weights without a model configuration (as the original script saved them): use the "
            f"best_model_params.pt or checkpoint.pt that slm_helpers.train writes, or in Python "
            f"load_model(path, config=GPTConfig(...))"
        )
    else:
        raise CheckpointError(f"{path} holds no model weights that slm_helpers can read; {MAKE_IT}")
    model = GPT(config)
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"{path} does not fit the model {config}: {mismatch}")
    if vocabulary is not None and vocabulary.size != config.vocab_size:
        raise CheckpointError(f"{path} holds a compact vocabulary of {vocabulary.size:,} ids for a model of vocab_size "
                              f"{config.vocab_size:,}: the mapping is not this model's; {MAKE_IT}")
    model.load_state_dict(state)
    model.vocabulary = vocabulary
    return model.to(device).eval()


def _saved_vocabulary(saved, path: Path) -> CompactVocabulary | None:
    if not isinstance(saved, dict) or saved.get("vocabulary") is None:
        return None
    try:
        return CompactVocabulary.from_dict(saved["vocabulary"], f"the vocabulary in {path}")
    except VocabularyError as error:
        raise CheckpointError(str(error)) from None


def matching_tokenizer(model: GPT, tokenizer):
    """``tokenizer`` made to speak ``model``'s ids: GPT-2's tokenizer wrapped in the model's
    compact vocabulary when it has one. A compact tokenizer for another vocabulary, or for a
    model of GPT-2's ids, is an error: the ids would silently mean other tokens."""
    vocabulary = getattr(model, "vocabulary", None)
    if isinstance(tokenizer, CompactTokenizer):
        if tokenizer.vocabulary != vocabulary:
            raise ValueError("the tokenizer's compact vocabulary is not the model's: use get_tokenizer() and let "
                             "generation apply the model's own (load_model reads it from the checkpoint)")
        return tokenizer
    return tokenizer if vocabulary is None else CompactTokenizer(tokenizer, vocabulary)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, max_new_tokens: int = 1) -> None:
    """Clear errors for settings that make no sense. Infinite temperature is refused too: it
    would make every token equally likely, silently undoing top-k."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number >= 1, not {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy, 1 = the model's own odds), "
                         f"not {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1 (or None for no limit), not {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (or None for no limit), not {top_p!r}: it keeps the most likely "
                         "tokens until their probabilities add up to top_p")


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities of the next token from a ``(vocab_size,)`` row of logits after temperature,
    top-k and top-p. Temperature 0 puts all probability on the argmax."""
    check_sampling(temperature, top_k, top_p)
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
        log(f"(the prompt has {len(prompt_ids)} tokens, more than the context of {block_size}: keeping its last {block_size})")
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
        raise ValueError(f"the prompt must hold 1 to {block_size} tokens, not {len(prompt_ids)}: use prepare_prompt")
    bad = [i for i in prompt_ids if not isinstance(i, int) or not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"prompt id {bad[0]!r} is outside the model's vocabulary [0, {vocab_size})")
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


def stream_story(model: GPT, tokenizer, prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
                 top_k: int | None = 200, top_p: float | None = None, seed: int | None = None,
                 stop_at_eot: bool = True, use_kv_cache: bool = True, log=print) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text, piece by piece as tokens come (a token can
    end in the middle of a multi-byte character, so bytes are decoded incrementally). Bad
    settings raise here, before anything is generated. A model trained on a compact vocabulary
    reads and writes through it; prompt tokens outside it are said, and become ``<unk>``."""
    tokenizer = matching_tokenizer(model, tokenizer)
    if isinstance(tokenizer, CompactTokenizer) and (unknown := tokenizer.unknown_tokens(prompt)):
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


def main(argv: list[str] | None = None) -> int:
    from slm_helpers import cli
    from slm_helpers.device import choose_device
    from slm_helpers.tokenizer import get_tokenizer

    parser = cli.ArgumentParser(prog="python -m slm_helpers.generate", description="Write a story with a trained GPT.")
    parser.add_argument("--checkpoint", required=True, help="best_model_params.pt or checkpoint.pt")
    parser.add_argument("--prompt", default="", help="how the story begins (empty: the model starts a story itself)")
    parser.add_argument("--max-new-tokens", type=cli.positive_int, default=200)
    parser.add_argument("--temperature", type=cli.non_negative_float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=cli.positive_int, default=200)
    parser.add_argument("--top-p", type=cli.probability, default=None)
    parser.add_argument("--seed", type=int, default=None, help="the same seed writes the same story")
    parser.add_argument("--no-kv-cache", action="store_true", help="recompute the whole context at every token")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    args = parser.parse_args(argv)
    device, _ = choose_device(args.device)  # a device this machine lacks is an error before any loading
    model = load_model(args.checkpoint, device)
    pieces = stream_story(model, get_tokenizer(), args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                          args.top_p, args.seed, use_kv_cache=not args.no_kv_cache,
                          log=lambda message: print(message, file=sys.stderr))
    print(args.prompt, end="", flush=True)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    from slm_helpers.cli import run

    sys.exit(run(main))
