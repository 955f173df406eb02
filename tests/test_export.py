"""The export to Hugging Face transformers (slm_helpers.export): the folder loads with
AutoModelForCausalLM / AutoTokenizer / pipeline, gives our logits and our ids, writes our greedy
story, and refuses what it cannot hold in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from slm_helpers import export
from slm_helpers.checkpoint import HISTORY_FILE, atomic_save, model_record
from slm_helpers.cli import export_main, run
from slm_helpers.export import export_model, layout
from slm_helpers.generate import generate_ids
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.stories import generate_stories
from slm_helpers.tokenizer import GPT2Tokenizer, get_tokenizer
from slm_helpers.trained_tokenizer import train_tokenizer
from slm_helpers.vocab import build_vocabulary

from conftest import tokenizer_available

transformers = pytest.importorskip("transformers")

SMALL = GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
LLAMA = dict(position="rotary", norm="rmsnorm", mlp="swiglu")
QUIET = dict(log=lambda *a: None)
# Stories of the kind the models learn from, and text they never saw: rare words, other
# scripts, emoji, a number, so that a compact vocabulary meets tokens it left out.
STORIES = list(generate_stories(60, "validation", seed=11))
STRANGE = ["Once upon a time, a xylophonist named Zbigniew met a quokka. 🦘 It cost 1,234 zł!",
           "Lily said: «naïve café» and 東京 — then she smiled.\n\nThe end."]


@pytest.fixture(scope="module")
def tokenizers_by_kind():
    """A tokenizer of each kind: GPT-2's ids, a compact vocabulary of them, one trained."""
    out = {"trained": train_tokenizer(list(generate_stories(300, "train", seed=3)), 400)}
    if not tokenizer_available():  # no GPT-2 ranks here: the GPT-2 kinds are skipped
        return out
    gpt2 = get_tokenizer()
    counts = np.bincount(gpt2.encode_stories(list(generate_stories(300, "train", seed=3))), minlength=gpt2.n_vocab)
    return {**out, "gpt2": gpt2, "compact": GPT2Tokenizer(build_vocabulary(counts, gpt2.eot_token))}


def weights_file(tmp_path, config: GPTConfig, tokenizer, seed: int = 0, step: int = 0):
    """A weights file as a run writes it, of a model with random weights (biases too, so every
    weight's mapping is checked) that reads ``tokenizer``'s ids."""
    torch.manual_seed(seed)
    model = GPT(config.with_tokenizer(tokenizer)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.normal_(0, 0.1 if name.endswith("bias") else 1.0)
    path = tmp_path / "run" / "best_model_params.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(model_record(model, tokenizer, {"source": "synthetic", "splits": {}}, step, None), path)
    return path, model


CASES = [("gpt2", "gpt2", {}), ("compact", "gpt2", {}), ("trained", "gpt2", {}),
         ("trained", "llama", {**LLAMA, "tie_head": False}), ("compact", "llama", {**LLAMA, "bias": False}),
         ("compact", "llama", {**LLAMA, "tie_head": False}),
         ("trained", "llama", {**LLAMA, "tie_head": True, "bias": False})]


@pytest.mark.parametrize(("kind", "expected", "switches"), CASES,
                         ids=[f"{k}-{e}{'-' + '-'.join(map(str, s.values())) if s else ''}" for k, e, s in CASES])
def test_the_exported_model_gives_our_logits_and_ids(tmp_path, tokenizers_by_kind, kind, expected, switches):
    if kind not in tokenizers_by_kind:
        pytest.skip("the GPT-2 tokenizer is unavailable here")
    tokenizer = tokenizers_by_kind[kind]
    path, ours = weights_file(tmp_path, replace(SMALL, **switches), tokenizer)
    assert layout(ours.config) == expected
    out = export_model(path, tmp_path / "hf", **QUIET)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(hf).__name__ == {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}[expected]
    V = ours.config.vocab_size
    for text in STORIES[:20] + STRANGE:
        ids = tokenizer.encode(text)
        theirs = hf_tokenizer(text)["input_ids"]
        if tokenizer.unknown_id is None:
            assert theirs == ids
        else:  # a left-out token has an id of its own after the model's, read as the unknown id
            assert len(theirs) == len(ids)
            assert all(t == i if i != tokenizer.unknown_id else t >= V for t, i in zip(theirs, ids))
    unknown = [i for text in STRANGE for i in tokenizer.encode(text) if i == tokenizer.unknown_id]
    assert bool(unknown) == (kind == "compact")  # the strange texts do meet left-out tokens
    idx = torch.tensor([hf_tokenizer(" ".join(STORIES[:3]) + STRANGE[0])["input_ids"][:SMALL.block_size]])
    with torch.no_grad():
        theirs = hf(idx).logits
        expected_logits, _ = ours(idx.clamp(max=V - 1) if tokenizer.unknown_id is None else
                                  torch.where(idx >= V, tokenizer.unknown_id, idx), idx.clamp(max=V - 1))
    assert (theirs[..., :V] - expected_logits).abs().max() < 1e-5
    assert not torch.allclose(expected_logits[0, 0], expected_logits[0, 1], atol=1e-3)  # not constants
    if theirs.size(-1) > V:  # the left-out ids: read and scored as the unknown id, never written
        for rows in (hf.get_input_embeddings().weight, hf.get_output_embeddings().weight):  # copies, bit for bit
            assert torch.equal(rows[V:], rows[[tokenizer.unknown_id]].expand_as(rows[V:]))
        # the same row times the same hidden state: equal but for the kernels' last bits
        torch.testing.assert_close(theirs[..., V:], theirs[..., [tokenizer.unknown_id]].expand_as(theirs[..., V:]),
                                   atol=1e-6, rtol=0)
        assert hf.generation_config.suppress_tokens == list(range(V, theirs.size(-1)))


@pytest.mark.parametrize("kind", ["compact", "trained"])
def test_greedy_story_through_pipeline_is_ours(tmp_path, tokenizers_by_kind, kind):
    if kind not in tokenizers_by_kind:
        pytest.skip("the GPT-2 tokenizer is unavailable here")
    tokenizer = tokenizers_by_kind[kind]
    switches = {} if kind == "compact" else {**LLAMA, "tie_head": False}
    path, ours = weights_file(tmp_path, replace(SMALL, **switches), tokenizer, seed=1)
    out = export_model(path, tmp_path / "hf", **QUIET)
    prompt = "Once upon a time, there was a little"
    prompt_ids = tokenizer.encode_ordinary(prompt)
    n = SMALL.block_size - len(prompt_ids)
    expected = list(generate_ids(ours, prompt_ids, n, temperature=0, stop_token=tokenizer.eot_token))
    writer = transformers.pipeline("text-generation", model=str(out), device="cpu")
    result = writer(prompt, do_sample=False, max_new_tokens=n, return_tensors=True)[0]["generated_token_ids"]
    assert list(result)[:len(prompt_ids)] == list(prompt_ids)
    assert list(result)[len(prompt_ids):] == expected
    assert len(expected) >= 10  # a real story, not a stop at once
    text = writer(prompt, max_new_tokens=20)[0]["generated_text"]  # the generation config's sampling
    assert text.startswith(prompt) and len(text) > len(prompt)
    # as the model card says to call it: the generation config's own length, which fits the context
    written = writer(prompt, return_tensors=True)[0]["generated_token_ids"]
    assert len(prompt_ids) + 10 <= len(written) <= SMALL.block_size


def test_the_folder_holds_a_generation_config_and_a_model_card(tmp_path, tokenizers_by_kind):
    tokenizer = tokenizers_by_kind["trained"]
    path, _ = weights_file(tmp_path, replace(SMALL, **LLAMA), tokenizer, step=1234)
    (path.parent / HISTORY_FILE).write_text(json.dumps([{"step": 0, "val_loss": 5.0, "val_bpb": 2.5},
                                                        {"step": 1234, "val_loss": 2.0, "val_bpb": 0.876}]))
    out = export_model(path, tmp_path / "hf", **QUIET)
    config = json.loads((out / "generation_config.json").read_text())
    assert (config["temperature"], config["top_k"], config["eos_token_id"]) == (0.8, 200, tokenizer.eot_token)
    assert config["max_length"] == SMALL.block_size and "max_new_tokens" not in config  # a story within the context
    card = (out / "README.md").read_text()
    assert "LlamaForCausalLM" in card and "1,234" in card and "0.876 bits per byte" in card
    assert tokenizer.name in card and "pipeline_tag: text-generation" in card


def test_what_transformers_cannot_hold_is_refused_naming_the_switch(tmp_path, tokenizers_by_kind, monkeypatch):
    tokenizer = tokenizers_by_kind["trained"]

    def no_writing(*args, **kwargs):
        raise AssertionError("the export began writing before it refused")

    monkeypatch.setattr(export.tempfile, "TemporaryDirectory", no_writing)
    for switches, named in ((dict(position="rotary", norm="rmsnorm", mlp="relu2"), "mlp='relu2'"),
                            (dict(**LLAMA, qk_norm=True), "qk_norm=True"),
                            (dict(mlp="swiglu"), "mlp='swiglu'"),
                            (dict(tie_head=False), "an untied head"),
                            (dict(causal=False), "causal=False")):
        path, _ = weights_file(tmp_path, replace(SMALL, **switches), tokenizer)
        with pytest.raises(ValueError, match=named):
            export_model(path, tmp_path / "hf", **QUIET)


def test_bad_input_is_one_line_and_nothing_is_lost(tmp_path, tokenizers_by_kind, capsys):
    tokenizer = tokenizers_by_kind["trained"]
    path, _ = weights_file(tmp_path, SMALL, tokenizer)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):  # argparse's own exit, its line below
        run(export_main, [])
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "the following arguments are required" in err, err
    for argv, says in ((["--checkpoint", str(tmp_path / "missing.pt"), "--out-dir", str(out)], "missing.pt"),
                       (["--checkpoint", str(damaged), "--out-dir", str(out)], "damaged.pt"),
                       (["--checkpoint", str(path), "--out-dir", str(out)], "--overwrite"),
                       (["--checkpoint", str(path), "--out-dir", str(out / "mine.txt")], "is a file")):
        assert run(export_main, argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and says in err, err
    assert (out / "mine.txt").read_text() == "keep me"
    assert run(export_main, ["--checkpoint", str(path), "--out-dir", str(out), "--overwrite"]) == 0
    assert not (out / "mine.txt").exists() and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no work folder left


def test_without_transformers_the_export_says_how_to_install_it(tmp_path, tokenizers_by_kind, monkeypatch):
    import sys

    path, _ = weights_file(tmp_path, SMALL, tokenizers_by_kind["trained"])
    monkeypatch.setitem(sys.modules, "transformers", None)  # as where it is not installed: importing it fails
    with pytest.raises(ValueError, match=r"exporting needs the transformers package: pip install -e \.\[export\]"):
        export_model(path, tmp_path / "hf", **QUIET)
