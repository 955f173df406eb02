import subprocess
import sys

import pytest
import torch

from slm_helpers.generate import (
    CheckpointError,
    generate_ids,
    load_model,
    next_token_distribution,
    prepare_prompt,
    stream_story,
    write_story,
)
from slm_helpers.model import GPT, GPTConfig, KVCache

from conftest import requires_tokenizer

CONFIG = GPTConfig(block_size=16, vocab_size=50257, n_layer=2, n_head=2, n_embd=32, dropout=0.0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(CONFIG).eval()
    with torch.no_grad():  # sharpen the random model so greedy choices are far from ties
        m.transformer.wte.weight.mul_(20)
    return m


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("weights") / "best_model_params.pt"
    torch.save({"model_config": CONFIG.__dict__, "model": model.state_dict(), "step": 1, "val_loss": 1.0}, path)
    return path


@pytest.mark.parametrize("flash", [True, False])
def test_cached_logits_equal_full_recompute(model, flash):
    m = GPT(GPTConfig(**{**CONFIG.__dict__, "flash": flash})).eval()
    m.load_state_dict(model.state_dict())
    ids = torch.randint(0, 50257, (1, 16), generator=torch.Generator().manual_seed(1))
    cache = KVCache(CONFIG.n_layer)
    with torch.no_grad():
        first, _ = m(ids[:, :5], cache=cache)
        steps = [first[0, -1]] + [m(ids[:, t : t + 1], cache=cache)[0][0, -1] for t in range(5, 16)]
        for t, logits in enumerate(steps, start=5):
            torch.testing.assert_close(logits, m(ids[:, :t])[0][0, -1], atol=1e-4, rtol=1e-4)
    assert len(cache) == 16
    with pytest.raises(ValueError, match="longer than block_size=16"):
        m(ids[:, :1], cache=cache)


def test_greedy_is_identical_with_and_without_cache_also_past_block_size(model):
    prompt = [464, 3290, 373]
    n = 3 * CONFIG.block_size  # far past the context
    cached = list(generate_ids(model, prompt, n, temperature=0, use_kv_cache=True))
    plain = list(generate_ids(model, prompt, n, temperature=0, use_kv_cache=False))
    assert len(cached) == n and cached == plain


def test_seeded_sampling_is_reproducible(model):
    a = list(generate_ids(model, [464], 20, temperature=1.0, seed=3))
    b = list(generate_ids(model, [464], 20, temperature=1.0, seed=3))
    c = list(generate_ids(model, [464], 20, temperature=1.0, seed=4))
    assert a == b != c


def test_stop_token_ends_generation(model):
    first = next(generate_ids(model, [464], 1, temperature=0))
    assert list(generate_ids(model, [464], 50, temperature=0, stop_token=first)) == [first]


def test_temperature_top_k_and_top_p_shape_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    plain = next_token_distribution(logits)
    torch.testing.assert_close(plain, torch.softmax(logits, 0))
    assert next_token_distribution(logits, temperature=0).tolist() == [1, 0, 0, 0, 0]
    sharp, flat = next_token_distribution(logits, 0.5), next_token_distribution(logits, 2.0)
    assert sharp[0] > plain[0] > flat[0]
    top2 = next_token_distribution(logits, top_k=2)
    assert (top2[2:] == 0).all() and top2.sum().item() == pytest.approx(1.0)
    assert top2[0] / top2[1] == pytest.approx(plain[0] / plain[1])
    # probabilities 0.563, 0.207, 0.126, 0.076, 0.028: top_p=0.5 keeps the first, 0.75 the first two, 0.8 three
    assert (next_token_distribution(logits, top_p=0.5) > 0).tolist() == [True, False, False, False, False]
    assert (next_token_distribution(logits, top_p=0.75) > 0).tolist() == [True, True, False, False, False]
    assert (next_token_distribution(logits, top_p=0.8) > 0).tolist() == [True, True, True, False, False]
    assert (next_token_distribution(logits, top_p=1.0) > 0).all()


@pytest.mark.parametrize("settings, message", [
    (dict(max_new_tokens=0), "max_new_tokens must be a whole number >= 1"),
    (dict(temperature=-0.1), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
    (dict(top_k=0), "top_k must be a whole number >= 1"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_settings_are_clear_errors(model, settings, message):
    args = dict(max_new_tokens=5, temperature=1.0, top_k=None, top_p=None) | settings
    with pytest.raises(ValueError, match=message):
        generate_ids(model, [1], **args)  # raised by the call itself, before any token is asked for


def test_empty_and_too_long_prompts():
    messages = []
    assert prepare_prompt([], 16, 50256, messages.append) == [50256]
    assert prepare_prompt(list(range(20)), 16, 50256, messages.append) == list(range(4, 20))
    assert messages == ["(the prompt has 20 tokens, more than the context of 16: keeping its last 16)"]


@requires_tokenizer
def test_stream_pieces_add_up_to_the_decoded_tokens(model):
    from slm_helpers.tokenizer import get_tokenizer

    enc = get_tokenizer()
    ids = list(generate_ids(model, enc.encode_ordinary("Once upon"), 30, temperature=1.0, seed=0))
    text = "".join(stream_story(model, enc, "Once upon", 30, temperature=1.0, top_k=None, seed=0, stop_at_eot=False))
    assert text == enc.decode(ids)
    # An empty prompt starts from <|endoftext|>: the same tokens as an explicit start-of-story prompt.
    from_empty = write_story(model, enc, "", max_new_tokens=5, temperature=0, stop_at_eot=False)
    expected = enc.decode(list(generate_ids(model, [enc.eot_token], 5, temperature=0)))
    assert from_empty == expected and len(from_empty) > 0


def test_loading_weights_and_checkpoints(model, saved, tmp_path):
    loaded, tokenizer = load_model(saved)
    assert not loaded.training and loaded.config == CONFIG and tokenizer.name == "gpt2"
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(CheckpointError, match="without a model configuration"):
        load_model(bare)
    assert load_model(bare, config=CONFIG)[0].config == CONFIG


def test_missing_and_corrupt_files_say_what_makes_them(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file at .*notebook 04"):
        load_model(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(CheckpointError, match="cannot be read as a weights file.*damaged.*notebook 04"):
        load_model(corrupt)


@requires_tokenizer
def test_command_line_prints_a_story(saved):
    out = subprocess.run([sys.executable, "-m", "slm_helpers.generate", "--checkpoint", str(saved), "--prompt",
                          "Once upon a time", "--max-new-tokens", "8", "--seed", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Once upon a time") and len(out.stdout) > len("Once upon a time\n")
    greedy = [subprocess.run([sys.executable, "-m", "slm_helpers.generate", "--checkpoint", str(saved), "--prompt",
                              "Hi", "--max-new-tokens", "20", "--temperature", "0", *flag],
                             capture_output=True, text=True).stdout
              for flag in ([], ["--no-kv-cache"])]
    assert greedy[0] == greedy[1]
    bad = subprocess.run([sys.executable, "-m", "slm_helpers.generate", "--checkpoint", "missing.pt"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "notebook 04" in bad.stderr and "Traceback" not in bad.stderr
