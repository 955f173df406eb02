import math

import pytest
import torch

from slm_helpers.errors import SlmError
from slm_helpers.model import GPT, Block, CausalSelfAttention, GPTConfig


def small_config(**overrides) -> GPTConfig:
    settings = dict(block_size=16, vocab_size=101, n_layer=2, n_head=4, n_embd=32, dropout=0.0)
    settings.update(overrides)
    return GPTConfig(**settings)


def test_defaults_are_the_original_run():
    c = GPTConfig()
    assert (c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd, c.dropout, c.bias, c.flash) == (
        128, 50257, 6, 6, 384, 0.1, True, True)


def test_parameter_counts_of_the_original_model():
    model = GPT(GPTConfig())
    assert model.num_params(non_embedding=True) == 10_696_704  # the "~10.7M" of the original write-up
    assert model.num_params() == 10_696_704 + 50257 * 384 == 29_995_392


def test_lm_head_is_the_token_embedding_not_a_copy():
    model = GPT(small_config())
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    with torch.no_grad():
        model.transformer.wte.weight[3, 0] = 123.0
    assert model.lm_head.weight[3, 0].item() == 123.0
    names = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" not in names  # one tensor, trained once


def test_parameter_names_follow_gpt2():
    names = set(GPT(small_config()).state_dict())
    for name in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                 "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.bias",
                 "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.bias"]:
        assert name in names


def test_gpt2_initialisation():
    torch.manual_seed(0)
    config = GPTConfig(n_layer=8, n_embd=256, n_head=4, vocab_size=5000, block_size=64)
    model = GPT(config)
    assert model.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.transformer.h[0].mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert model.transformer.h[0].attn.c_attn.bias.abs().max().item() == 0.0


def test_loss_at_initialisation_is_close_to_log_vocab():
    torch.manual_seed(0)
    model = GPT(small_config(vocab_size=5000))
    idx, targets = torch.randint(0, 5000, (2, 8, 16))
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(5000), abs=0.1)  # every token about equally likely


def test_forward_shapes_with_and_without_targets():
    model = GPT(small_config())
    idx = torch.randint(0, 101, (3, 10))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 10, 101) and loss.ndim == 0
    last, none = model(idx)
    assert last.shape == (3, 1, 101) and none is None
    torch.testing.assert_close(last[:, 0], logits[:, -1])


@pytest.mark.parametrize("flash", [True, False])
def test_attention_is_causal(flash):
    torch.manual_seed(0)
    model = GPT(small_config(flash=flash)).eval()
    idx = torch.randint(0, 101, (1, 12))
    changed = idx.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 101  # change the future
    a, _ = model(idx, idx)
    b, _ = model(changed, changed)
    torch.testing.assert_close(a[0, :7], b[0, :7])
    assert not torch.allclose(a[0, 7:], b[0, 7:])


def test_manual_and_fused_attention_agree_forward_and_backward():
    torch.manual_seed(0)
    fused = CausalSelfAttention(small_config(flash=True))
    manual = CausalSelfAttention(small_config(flash=False))
    manual.load_state_dict(fused.state_dict())
    x1 = torch.randn(2, 16, 32, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = fused(x1), manual(x2)
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=1e-5)
    y1.square().sum().backward()
    y2.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.c_attn.weight.grad, manual.c_attn.weight.grad, atol=1e-5, rtol=1e-4)


def test_block_is_pre_layernorm_residual():
    torch.manual_seed(0)
    block = Block(small_config())
    with torch.no_grad():  # zero both branches' output projections: the block becomes the identity
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(block(x), x)


def test_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    model = GPT(small_config(dropout=0.5))
    idx = torch.randint(0, 101, (2, 8))
    model.eval()
    torch.testing.assert_close(model(idx, idx)[0], model(idx, idx)[0])
    model.train()
    assert not torch.allclose(model(idx, idx)[0], model(idx, idx)[0])


def test_clear_errors():
    with pytest.raises(ValueError, match="n_embd=100 must be divisible by n_head=3"):
        GPTConfig(n_embd=100, n_head=3)
    model = GPT(small_config())
    with pytest.raises(ValueError, match="length 17 is longer than block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="Token id 101 is outside the vocabulary \\[0, 101\\)"):
        model(torch.tensor([[1, 101]]))
    with pytest.raises(ValueError, match="Token id -1"):
        model(torch.tensor([[-1, 2]]))


def test_model_can_overfit_one_batch():
    torch.manual_seed(0)
    model = GPT(small_config())
    idx = torch.randint(0, 101, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_attention_weights_are_causal_distributions_that_reproduce_the_layer():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=100, n_layer=2, n_head=2, n_embd=16, dropout=0.0)).eval()
    idx = torch.randint(100, (1, 10))
    for layer in (0, 1):
        weights = model.attention_weights(idx, layer)
        assert weights.shape == (2, 10, 10)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 10))
        assert weights.triu(1).abs().max() == 0  # nothing from the future
    # The weights times the values, through c_proj, are what block 1's attention computes.
    with torch.no_grad():
        x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(10))
        x = model.transformer.h[0](x)
        block = model.transformer.h[1]
        h = block.ln_1(x)
        v = block.attn.c_attn(h).split(16, dim=2)[2].view(1, 10, 2, 8).transpose(1, 2)
        y = (model.attention_weights(idx, 1)[None] @ v).transpose(1, 2).reshape(1, 10, 16)
        torch.testing.assert_close(block.attn.c_proj(y), block.attn(h), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="layer must be in"):
        model.attention_weights(idx, 2)


def test_torch_compile_sees_the_model_as_one_graph():
    """The id range check is data-dependent: under torch.compile it is left to the compiled
    kernels, so the forward pass is one graph, not two around a break (notebook 07 compiles it)."""
    model = GPT(GPTConfig(block_size=32, n_layer=2, n_head=2, n_embd=32, vocab_size=100))
    explained = torch._dynamo.explain(model)(torch.randint(0, 100, (2, 32)))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    with pytest.raises(SlmError, match="outside the vocabulary"):
        model(torch.tensor([[100]]))  # eager, the check still speaks
