"""Cross-check against the ecosystem's reference: Hugging Face's GPT2LMHeadModel.

The same random weights in both models (copied by ``to_hf_gpt2``) must give the same logits,
with our attention forced to each path.
"""

import pytest
import torch

from slm_helpers.export import to_hf_gpt2
from slm_helpers.model import GPT, GPTConfig

pytest.importorskip("transformers")


@pytest.mark.parametrize("flash", [True, False], ids=["fused", "manual"])
def test_logits_match_gpt2lmheadmodel(flash):
    torch.manual_seed(0)
    config = GPTConfig(block_size=32, vocab_size=1000, n_layer=3, n_head=4, n_embd=64, dropout=0.0, flash=flash)
    ours = GPT(config).eval()
    hf = to_hf_gpt2(ours, "sdpa" if flash else "eager")
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    assert hf.config.activation_function == "gelu"
    idx = torch.randint(0, 1000, (2, 32))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = ours(idx, idx)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    assert not torch.allclose(logits[0, 0], logits[0, 1], atol=1e-3)  # a real comparison, not of constants
