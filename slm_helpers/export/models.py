"""Our GPT as a Hugging Face ``transformers`` model with the same weights and the same logits.

Two of transformers' classes hold what this series builds:

* ``GPT2LMHeadModel``: the GPT-2 layout (learned positions, LayerNorm, GELU, tied head). The
  names map one to one; GPT-2's Conv1D layers hold their weights transposed, and its default
  activation is GELU's tanh approximation, so the copy asks for the exact ``"gelu"``.
* ``LlamaForCausalLM``: the modern pieces where LLaMA has them (notebook 09): rotary positions
  (the same half-split layout and base), RMSNorm (LLaMA's has a gain: ones here), a SwiGLU MLP,
  a tied or untied head, biases or none. Our fused ``c_attn`` splits into q, k and v.

What neither holds is refused in one line naming the switch: ReLU² (LLaMA's MLP is gated),
QK-norm (LLaMA has none), and the experiments of notebook 03 (no mask, no residual, unscaled
scores).

A tokenizer may know more ids than the model (a compact vocabulary's left-out tokens,
:meth:`slm_helpers.tokenizer.Tokenizer.to_hf`): the exported model then has a row for each,
a copy of the unknown id's, so it reads them as we read the unknown id.
"""

from __future__ import annotations

import torch

from slm_helpers.errors import SlmError, optional_import
from slm_helpers.model import GPT

# Linear layers that GPT-2's checkpoints store as Conv1D, i.e. with the weight transposed.
GPT2_CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def import_transformers():
    """``transformers``, or an error that says how to install it (an optional dependency)."""
    return optional_import("transformers", "exporting", "export")


def experiments_on(config) -> list[str]:
    """Notebook 03's switches that break the model on purpose, as they are set."""
    return [f"{name}=False" for name in ("causal", "residual", "scale_attention") if not getattr(config, name)]


# What each transformers class holds: the switches of GPTConfig it needs, each as (setting, value, its name
# when it does not fit), and how it is said.
LAYOUTS = {
    "gpt2": ("GPT2LMHeadModel", "learned positions, LayerNorm, GELU, a tied head, biases and no QK-norm",
             (("position", "learned", None), ("norm", "layernorm", None), ("mlp", "gelu", None),
              ("tie_head", True, "an untied head"), ("qk_norm", False, "qk_norm=True"), ("bias", True, "bias=False")),
             "GPT-2's switches"),
    "llama": ("LlamaForCausalLM", "rotary positions, RMSNorm, a SwiGLU MLP and no QK-norm",
              (("position", "rotary", None), ("norm", "rmsnorm", None), ("mlp", "swiglu", None),
               ("qk_norm", False, "qk_norm=True")),
              "position=rotary, norm=rmsnorm, mlp=swiglu and qk_norm=False (or GPT-2's switches)"),
}


def layout(config) -> str:
    """Which transformers class holds a model of ``config``: ``"gpt2"`` or ``"llama"`` (the
    GPT-2 layout if its positions and norm are GPT-2's); a :class:`SlmError` naming every switch
    that does not fit it."""
    kind = "gpt2" if config.position == "learned" and config.norm == "layernorm" else "llama"
    require(config, kind)
    return kind


def require(config, kind: str) -> None:
    """A :class:`SlmError` naming every switch of ``config`` that the class of ``kind`` cannot hold."""
    if bad := experiments_on(config):
        raise SlmError(f"this model has {', '.join(bad)} (an experiment of notebook 03): no transformers model "
                       "computes that; export a model trained with the default switches")
    name, has, needs, fix = LAYOUTS[kind]
    misfits = [said or f"{setting}={getattr(config, setting)!r}" for setting, value, said in needs
               if getattr(config, setting) != value]
    if misfits:
        raise SlmError(f"cannot export this model as {name}, which has {has}: {' and '.join(misfits)} "
                       f"{'does' if len(misfits) == 1 else 'do'} not fit (ReLU² and QK-norm have no twin in either "
                       f"of transformers' two layouts used here); train with {fix} to export it")


def widened(weight: torch.Tensor, n_vocab: int, unknown_id: int | None) -> torch.Tensor:
    """``weight`` (one row per id) with rows up to ``n_vocab``, each a copy of the unknown id's."""
    extra = n_vocab - weight.size(0)
    if extra <= 0:
        return weight
    if unknown_id is None:
        raise SlmError(f"the tokenizer knows {n_vocab:,} ids, the model {weight.size(0):,}, and it has no unknown id")
    return torch.cat([weight, weight[unknown_id].expand(extra, -1)])


def to_hf_gpt2(model: GPT, attn_implementation: str = "sdpa", *, n_vocab: int | None = None,
               unknown_id: int | None = None):
    """The same network as a ``transformers.GPT2LMHeadModel`` (in eval mode, dropout off),
    with ``n_vocab`` ids (default: the model's; more are rows copied from ``unknown_id``)."""
    transformers = import_transformers()
    c = model.config
    require(c, "gpt2")
    n_vocab = n_vocab or c.vocab_size
    hf_config = transformers.GPT2Config(
        vocab_size=n_vocab, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
    )
    hf = transformers.GPT2LMHeadModel._from_config(hf_config, attn_implementation=attn_implementation)
    state = {k: (v.t() if k.endswith(GPT2_CONV1D_WEIGHTS) else v) for k, v in model.state_dict().items()
             if k != "lm_head.weight"}
    state["transformer.wte.weight"] = widened(state["transformer.wte.weight"], n_vocab, unknown_id)
    _load(hf, state, ignore=("lm_head.weight", ".attn.bias", ".attn.masked_bias"))
    hf.tie_weights()
    return hf.eval()


def to_hf_llama(model: GPT, attn_implementation: str = "sdpa", *, n_vocab: int | None = None,
                unknown_id: int | None = None):
    """The same network as a ``transformers.LlamaForCausalLM`` (in eval mode): rotary,
    RMSNorm with unit gains, SwiGLU, tied or untied head, biases if the model has them."""
    transformers = import_transformers()
    c = model.config
    require(c, "llama")
    n_vocab = n_vocab or c.vocab_size
    mlp = model.transformer.h[0].mlp
    hf_config = transformers.LlamaConfig(
        vocab_size=n_vocab, hidden_size=c.n_embd, intermediate_size=mlp.c_fc.out_features, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, num_key_value_heads=c.n_head, max_position_embeddings=c.block_size,
        rms_norm_eps=torch.finfo(torch.float32).eps,  # what F.rms_norm uses by default in fp32
        rope_parameters={"rope_type": "default", "rope_theta": model.transformer.h[0].attn.rotary.base},
        attention_bias=c.bias, mlp_bias=c.bias, tie_word_embeddings=c.tie_head, hidden_act="silu",
        attention_dropout=0.0,
    )
    hf = transformers.LlamaForCausalLM._from_config(hf_config, attn_implementation=attn_implementation)
    ours = model.state_dict()
    state = {"model.embed_tokens.weight": widened(ours["transformer.wte.weight"], n_vocab, unknown_id),
             "model.norm.weight": torch.ones(c.n_embd)}
    if not c.tie_head:
        state["lm_head.weight"] = widened(ours["lm_head.weight"], n_vocab, unknown_id)
    for i in range(c.n_layer):
        we, hf_ = f"transformer.h.{i}.", f"model.layers.{i}."
        for part in ("weight", "bias") if c.bias else ("weight",):
            q, k, v = ours[f"{we}attn.c_attn.{part}"].split(c.n_embd, dim=0)
            state |= {f"{hf_}self_attn.q_proj.{part}": q, f"{hf_}self_attn.k_proj.{part}": k,
                      f"{hf_}self_attn.v_proj.{part}": v,
                      f"{hf_}self_attn.o_proj.{part}": ours[f"{we}attn.c_proj.{part}"],
                      f"{hf_}mlp.gate_proj.{part}": ours[f"{we}mlp.c_gate.{part}"],
                      f"{hf_}mlp.up_proj.{part}": ours[f"{we}mlp.c_fc.{part}"],
                      f"{hf_}mlp.down_proj.{part}": ours[f"{we}mlp.c_proj.{part}"]}
        state |= {f"{hf_}input_layernorm.weight": torch.ones(c.n_embd),
                  f"{hf_}post_attention_layernorm.weight": torch.ones(c.n_embd)}
    _load(hf, state, ignore=("lm_head.weight",) if c.tie_head else ())
    if c.tie_head:
        hf.tie_weights()
    return hf.eval()


def to_hf_model(model: GPT, attn_implementation: str = "sdpa", *, n_vocab: int | None = None,
                unknown_id: int | None = None):
    """The transformers model that holds ``model`` (:func:`layout` chooses it)."""
    convert = to_hf_gpt2 if layout(model.config) == "gpt2" else to_hf_llama
    return convert(model, attn_implementation, n_vocab=n_vocab, unknown_id=unknown_id)


def _load(hf, state: dict, ignore: tuple[str, ...]) -> None:
    """Copy ``state`` into ``hf``; any weight left over on either side is a bug, said at once."""
    missing, unexpected = hf.load_state_dict(state, strict=False)
    leftover = [k for k in missing if not k.endswith(ignore)]
    if unexpected or leftover:
        raise RuntimeError(f"weights do not map onto {type(hf).__name__}: unexpected {unexpected}, missing {leftover}")
