"""Cross-check against the ecosystem's reference: Hugging Face's GPT2LMHeadModel.

The same random weights in both models must give the same logits. GPT-2 stores its linear
layers as Conv1D with the weight transposed; its default activation is the tanh
approximation of GELU ("gelu_new"), ours is the exact one, so the reference is built with
activation_function="gelu".
"""

import pytest
import torch

from slm_helpers.model import GPT, GPTConfig

transformers = pytest.importorskip("transformers")

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def to_hf(model: GPT, attn_implementation: str):
    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
    )
    hf = transformers.GPT2LMHeadModel._from_config(hf_config, attn_implementation=attn_implementation)
    ours = model.state_dict()
    hf_state = {k: (v.t() if k.endswith(CONV1D) else v) for k, v in ours.items()}
    missing, unexpected = hf.load_state_dict(hf_state, strict=False)
    assert not unexpected, unexpected
    assert all(k == "lm_head.weight" or k.endswith(".attn.bias") or k.endswith(".attn.masked_bias") for k in missing), missing
    hf.tie_weights()
    return hf.eval()


@pytest.mark.parametrize("flash", [True, False], ids=["fused", "manual"])
def test_logits_match_gpt2lmheadmodel(flash):
    torch.manual_seed(0)
    config = GPTConfig(block_size=32, vocab_size=1000, n_layer=3, n_head=4, n_embd=64, dropout=0.0, flash=flash)
    ours = GPT(config).eval()
    hf = to_hf(ours, "sdpa" if flash else "eager")
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    idx = torch.randint(0, 1000, (2, 32))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = ours(idx, idx)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
