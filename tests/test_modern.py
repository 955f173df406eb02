"""The modern recipe's pieces (slm_helpers.modern, slm_helpers.muon): each switch builds the model it
names, keeps the cache, the FLOP count, exact resume and old checkpoints working, and does what it
claims: rotary scores depend on distance only, QK-norm bounds queries and keys, Muon's update is
orthogonal, and Muon's AdamW half is AdamW."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch

from slm_helpers.checkpoint import load_checkpoint
from slm_helpers.export import to_hf_gpt2
from slm_helpers.generate import generate_ids
from slm_helpers.model import GPT, GPTConfig, KVCache, flops_per_token
from slm_helpers.modern import Rotary, mlp_hidden
from slm_helpers.muon import MuonWithAdamW, orthogonalize
from slm_helpers.optim import TrainConfig, make_optimizer, make_scheduler
from slm_helpers.train import train

BASE = GPTConfig(block_size=16, vocab_size=97, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
MODERN = replace(BASE, position="rotary", norm="rmsnorm", mlp="relu2", qk_norm=True, tie_head=False)
SWITCHES = {
    "rotary": dict(position="rotary"),
    "rmsnorm": dict(norm="rmsnorm"),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "qk_norm": dict(qk_norm=True),
    "untied": dict(tie_head=False),
    "all": dict(position="rotary", norm="rmsnorm", mlp="swiglu", qk_norm=True, tie_head=False),
}


@pytest.mark.parametrize("name", SWITCHES)
def test_each_switch_builds_a_model_that_starts_at_ln_v(name):
    config = replace(BASE, **SWITCHES[name])
    torch.manual_seed(0)
    model = GPT(config).eval()
    x, y = torch.randint(config.vocab_size, (2, 4, config.block_size))  # targets unrelated to the inputs
    _, loss = model(x, y)
    assert abs(loss.item() - math.log(config.vocab_size)) < 0.1  # small init: every token about equally likely
    assert config.modern_pieces()
    names = dict(model.named_parameters())
    assert ("transformer.wpe.weight" in names) == (config.position == "learned")
    assert (model.lm_head.weight is model.transformer.wte.weight) == config.tie_head
    if config.norm == "rmsnorm":
        assert not any(".ln_" in n for n in names), "RMSNorm here has no parameters"


def test_the_gpt2_layout_names_no_modern_piece():
    assert BASE.modern_pieces() == []
    assert GPTConfig().modern_pieces() == []


@pytest.mark.parametrize("mlp", ["relu2", "swiglu"])
def test_the_mlps_hold_as_many_weights_as_gelus(mlp):
    gelu, other = (GPT(replace(BASE, mlp=m)).transformer.h[0].mlp for m in ("gelu", mlp))
    count = lambda module: sum(p.numel() for n, p in module.named_parameters() if n.endswith("weight"))
    assert abs(count(other) - count(gelu)) / count(gelu) < 0.01
    assert flops_per_token(replace(BASE, mlp=mlp))["MLP"] == pytest.approx(6 * BASE.n_layer * count(other))


def test_swiglu_hidden_width_is_eight_thirds():
    assert mlp_hidden(replace(BASE, mlp="swiglu")) == round(8 * 32 / 3) and mlp_hidden(BASE) == 128


def test_rotary_scores_depend_on_distance_only():
    rotary = Rotary(head_size=8, block_size=32)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    score = lambda m, n: (rotary(q, start=m) * rotary(k, start=n)).sum().item()
    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)  # both 3 apart
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_qk_norm_gives_queries_and_keys_unit_rms():
    torch.manual_seed(0)
    attn = GPT(replace(BASE, qk_norm=True)).transformer.h[0].attn
    q, k = attn.position_and_norm(torch.randn(2, 2, 5, 16) * 30, torch.randn(2, 2, 5, 16) * 30, start=0)
    for t in (q, k):
        assert torch.allclose(t.pow(2).mean(-1).sqrt(), torch.ones(2, 2, 5), atol=1e-3)


@pytest.mark.parametrize("name", ["rotary", "all"])
def test_cached_and_uncached_logits_agree(name):
    config = replace(BASE, **SWITCHES[name])
    torch.manual_seed(0)
    model = GPT(config).eval()
    ids = torch.randint(config.vocab_size, (1, config.block_size))
    with torch.no_grad():
        full = model.lm_head(model.hidden_states(ids))
        cache = KVCache(config.n_layer)
        prompt = model.lm_head(model.hidden_states(ids[:, :4], cache))
        steps = [model.lm_head(model.hidden_states(ids[:, t:t + 1], cache)) for t in range(4, config.block_size)]
    assert torch.allclose(torch.cat([prompt, *steps], dim=1), full, atol=1e-5)
    # Past the first window, generation recomputes the last block_size tokens with or without a cache.
    prompt_ids = ids[0, :3].tolist()
    far = 3 * config.block_size
    assert list(generate_ids(model, prompt_ids, far, temperature=0)) == \
        list(generate_ids(model, prompt_ids, far, temperature=0, use_kv_cache=False))


def test_a_model_with_modern_pieces_is_not_exported_as_gpt2():
    with pytest.raises(ValueError, match="GPT2LMHeadModel.*position='rotary'"):
        to_hf_gpt2(GPT(replace(BASE, position="rotary")))


def test_bad_switches_are_refused_in_one_line():
    for bad, match in ((dict(position="alibi"), "position must be one of 'learned', 'rotary'"),
                       (dict(mlp="geglu"), "mlp must be one of"), (dict(norm="batchnorm"), "norm must be one of"),
                       (dict(qk_norm="yes"), "qk_norm must be True or False"),
                       (dict(position="rotary", n_embd=30, n_head=2), "head size .* must be even")):
        with pytest.raises(ValueError, match=match):
            replace(BASE, **bad)
    with pytest.raises(ValueError, match="optimizer must be one of 'adamw', 'muon'"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match=r"muon_lr=0.02 must be above min_lr=0.03 \(the cosine's floor\)"):
        TrainConfig(optimizer="muon", learning_rate=0.1, min_lr=0.03)
    with pytest.raises(ValueError, match=r"head_lr=0.001 must be above min_lr=0.002 \(the cosine's floor\)"):
        TrainConfig(learning_rate=0.02, min_lr=0.002, head_lr=0.001)
    for bad in (dict(muon_lr=0.0), dict(embedding_lr=0.0)):
        with pytest.raises(ValueError, match=r"must be above 0"):
            TrainConfig(optimizer="muon", schedule="wsd", **bad)


def test_under_wsd_each_group_falls_to_its_own_share_of_its_peak():
    """wsd ends each group at its peak x min_lr / learning_rate: a group's peak below min_lr is
    fine there (the cosine, which ends every group at min_lr itself, refuses it)."""
    config = TrainConfig(learning_rate=0.02, min_lr=0.002, head_lr=0.001, schedule="wsd", max_steps=100,
                         warmup_steps=10, decay_fraction=0.5)
    optimizer = torch.optim.AdamW([{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.02},
                                   {"params": [torch.zeros(1, requires_grad=True)], "lr": config.head_lr}])
    scheduler = make_scheduler(optimizer, config)
    for _ in range(config.max_steps):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.002, 0.0001])


# ----------------------------------------------------------------------------- Muon


def test_orthogonalize_sets_every_singular_value_near_one():
    torch.manual_seed(0)
    g = torch.randn(64, 32) @ torch.diag(torch.logspace(-1, 1, 32))  # singular values over two decades
    before = torch.linalg.svdvals(g)
    after = torch.linalg.svdvals(orthogonalize(g))
    assert before.max() / before.min() > 100
    assert after.min() > 0.5 and after.max() < 1.5  # the quintic iteration's band around 1
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    cosine = torch.nn.functional.cosine_similarity(orthogonalize(g).flatten(), (u @ vh).flatten(), dim=0)
    assert cosine > 0.9  # close to the exact orthogonal factor U V^T


def test_a_muon_step_matches_torchs_muon():
    """One step on one matrix, against torch.optim.Muon (which iterates in bf16: close, not equal)."""
    torch.manual_seed(0)
    ours, theirs = (torch.nn.Parameter(torch.randn(48, 24)) for _ in range(2))
    theirs.data.copy_(ours.data)
    grad = torch.randn(48, 24)
    ours.grad, theirs.grad = grad.clone(), grad.clone()
    start = ours.detach().clone()
    MuonWithAdamW([{"params": [ours], "muon": True}], lr=0.02).step()
    torch.optim.Muon([theirs], lr=0.02, weight_decay=0.0).step()
    step_ours, step_theirs = ours.detach() - start, theirs.detach() - start
    assert torch.nn.functional.cosine_similarity(step_ours.flatten(), step_theirs.flatten(), dim=0) > 0.99
    assert step_ours.norm() == pytest.approx(step_theirs.norm().item(), rel=0.02)


def test_muons_adamw_groups_step_as_torchs_adamw():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Parameter(torch.randn(10)), torch.nn.Parameter(torch.randn(10))
    theirs.data.copy_(ours.data)
    mine = MuonWithAdamW([{"params": [ours], "weight_decay": 0.1}], lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    reference = torch.optim.AdamW([theirs], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for _ in range(5):
        grad = torch.randn(10)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        mine.step()
        reference.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = GPT(MODERN)
    optimizer = make_optimizer(model, TrainConfig(optimizer="muon"))
    muon, matrices, vectors = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert muon["muon"] and all(names[id(p)].startswith("transformer.h.") and p.dim() == 2 for p in muon["params"])
    assert {names[id(p)] for p in matrices["params"]} == {"transformer.wte.weight", "lm_head.weight"}
    assert muon["lr"] == 0.02 and matrices["lr"] == TrainConfig().learning_rate
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_embedding_and_head_rates_give_them_groups_of_their_own():
    model = GPT(MODERN)
    config = TrainConfig(optimizer="muon", embedding_lr=0.3, head_lr=0.008, weight_decay=0.0)
    optimizer = make_optimizer(model, config)
    names = {id(p): n for n, p in model.named_parameters()}
    muon, matrices, vectors, embedding, head = optimizer.param_groups  # the new groups come last
    assert matrices["params"] == [] and muon["muon"] and all(p.dim() < 2 for p in vectors["params"])
    assert [names[id(p)] for p in embedding["params"]] == ["transformer.wte.weight"] and embedding["lr"] == 0.3
    assert [names[id(p)] for p in head["params"]] == ["lm_head.weight"] and head["lr"] == 0.008
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    adamw = make_optimizer(GPT(BASE), TrainConfig(embedding_lr=0.3))  # AdamW alone takes them too
    assert adamw.param_groups[-1]["lr"] == 0.3 and len(adamw.param_groups[-1]["params"]) == 1
    with pytest.raises(ValueError, match="head_lr=0.008 needs the model's own lm_head weight"):
        make_optimizer(GPT(BASE), TrainConfig(head_lr=0.008))  # tied: the head is the embedding


# ----------------------------------------------------------------------------- training with them


def _modern_run(dataset, out_dir, **kwargs):
    from test_train import TINY_MODEL, tiny_train_config

    model = replace(TINY_MODEL, position="rotary", norm="rmsnorm", mlp="swiglu", qk_norm=True, tie_head=False)
    config = tiny_train_config(optimizer="muon", muon_lr=0.02, embedding_lr=0.05, head_lr=0.01, schedule="wsd")
    return train(model_config=model, train_config=config, data_dir=dataset.path, out_dir=out_dir, progress=False,
                 log=lambda *a, **k: None, **kwargs)


def test_the_modern_recipe_trains_and_resumes_exactly(small_compact_dataset, tmp_path):
    full = _modern_run(small_compact_dataset, tmp_path / "straight").history
    assert full[-1]["val_loss"] < full[0]["val_loss"] - 0.3
    _modern_run(small_compact_dataset, tmp_path / "resumed", stop_at_step=6)
    assert _modern_run(small_compact_dataset, tmp_path / "resumed", resume=True).history == full


def test_a_checkpoint_from_before_the_switches_resumes(small_compact_dataset, tmp_path):
    """Checkpoints written before these settings existed lack them: they mean GPT-2's pieces."""
    from test_train import run_tiny

    full = run_tiny(small_compact_dataset, tmp_path / "straight").history
    run_tiny(small_compact_dataset, tmp_path / "old", stop_at_step=6)
    path = tmp_path / "old" / "checkpoint.pt"
    checkpoint = load_checkpoint(path)
    for key in ("position", "norm", "mlp", "qk_norm", "tie_head"):
        del checkpoint["model_config"][key]
    for key in ("optimizer", "muon_lr", "muon_momentum", "embedding_lr", "head_lr", "schedule", "decay_fraction"):
        del checkpoint["train_config"][key]
    torch.save(checkpoint, path)
    assert run_tiny(small_compact_dataset, tmp_path / "old", resume=True).history == full


def test_resuming_with_another_recipe_is_refused(small_compact_dataset, tmp_path):
    from test_train import run_tiny, tiny_train_config

    run_tiny(small_compact_dataset, tmp_path, stop_at_step=4)
    with pytest.raises(ValueError, match="optimizer 'adamw' in the checkpoint, 'muon' now"):
        run_tiny(small_compact_dataset, tmp_path, resume=True, train_config=tiny_train_config(optimizer="muon"))
    from test_train import TINY_MODEL

    with pytest.raises(ValueError, match="position 'learned' in the checkpoint, 'rotary' now"):
        run_tiny(small_compact_dataset, tmp_path, resume=True, model_config=replace(TINY_MODEL, position="rotary"))


def test_the_switches_travel_in_the_checkpoint(small_compact_dataset, tmp_path):
    _modern_run(small_compact_dataset, tmp_path, stop_at_step=2)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {k: saved["model_config"][k] for k in ("position", "norm", "mlp", "qk_norm", "tie_head")} == \
        dict(position="rotary", norm="rmsnorm", mlp="swiglu", qk_norm=True, tie_head=False)
    assert saved["train_config"]["optimizer"] == "muon"
    assert asdict(GPTConfig.from_dict(saved["model_config"]))["position"] == "rotary"
