import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from slm_helpers.checkpoint import BEST_WEIGHTS_FILE, CHECKPOINT_FILE, HISTORY_FILE, load_checkpoint, load_history
from slm_helpers.data import TokenDataset
from slm_helpers.device import choose_device, choose_dtype, make_grad_scaler
from slm_helpers.model import GPT, GPTConfig
from slm_helpers.optim import TrainConfig, learning_rates, make_optimizer, optimizer_step
from slm_helpers.presets import PRESETS, get_preset
from slm_helpers.train import TrainingDiverged, train
from slm_helpers.train import run as run_module

import quick_cli
from conftest import command_env, requires_tokenizer

TINY_MODEL = GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16, dropout=0.1)


def tiny_train_config(**overrides) -> TrainConfig:
    # Pinned: these tests compare numbers, which must not depend on a GPU or on the CPU's bf16.
    settings = dict(batch_size=4, grad_accum_steps=2, max_steps=12, warmup_steps=2, learning_rate=1e-2, min_lr=1e-3,
                    eval_interval=4, eval_batches=2, seed=5, device="cpu", dtype="float32")
    settings.update(overrides)
    return TrainConfig(**settings)


def run_tiny(dataset, out_dir, **kwargs):
    config = kwargs.pop("train_config", tiny_train_config())
    return train(model_config=kwargs.pop("model_config", TINY_MODEL), train_config=config, data_dir=dataset.path,
                 out_dir=out_dir, progress=False, log=lambda *a, **k: None, **kwargs)


# ----------------------------------------------------------------------------- schedule and settings


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(max_steps=1000, warmup_steps=100, learning_rate=1e-3, min_lr=1e-4)
    lrs = learning_rates(config)
    assert len(lrs) == 1000
    assert lrs[0] == pytest.approx(1e-3 / 100)  # from almost zero
    assert lrs[100] == pytest.approx(1e-3)  # the peak, at the end of warmup
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:101]))  # rising during warmup
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))  # never rising after it
    assert max(lrs) == pytest.approx(1e-3) and min(lrs[100:]) >= 1e-4
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)  # reaches the floor at max_steps
    assert lrs[550] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4), rel=0.01)  # cosine: half-way at the middle


def test_wsd_schedule_holds_the_peak_then_falls_in_a_line_to_the_floor():
    config = TrainConfig(max_steps=1000, warmup_steps=100, learning_rate=1e-3, min_lr=1e-4, schedule="wsd",
                         decay_fraction=0.2)
    lrs = learning_rates(config, 1001)
    assert lrs[:101] == pytest.approx(learning_rates(replace(config, schedule="cosine"), 101))  # the same warmup
    assert lrs[100:801] == pytest.approx([1e-3] * 701)  # stable: the peak, up to the last 200 steps
    assert lrs[900] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))  # a straight line: half-way at the middle
    assert all(a > b for a, b in zip(lrs[800:1000], lrs[801:1001]))
    assert lrs[1000] == pytest.approx(1e-4)  # the floor at max_steps
    with pytest.raises(ValueError, match="decay_fraction must be in"):
        TrainConfig(max_steps=100, warmup_steps=50, schedule="wsd", decay_fraction=0.6)
    with pytest.raises(ValueError, match="schedule must be one of 'cosine', 'wsd'"):
        TrainConfig(schedule="linear")


def test_a_floor_above_the_peak_is_refused():
    with pytest.raises(ValueError, match="bug 1"):
        TrainConfig(learning_rate=1e-4, min_lr=5e-4)  # the original run's settings
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=10)


def test_ci_preset_trains_on_the_cpu_in_fp32_whatever_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # a CPU with native bf16...
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # ...beside a GPU
    ci = get_preset("ci").train
    device, _ = choose_device(ci.device)
    assert device == torch.device("cpu") and choose_dtype(device, ci.dtype)[0] == torch.float32
    assert choose_dtype(device, get_preset("cpu").train.dtype)[0] == torch.bfloat16  # the others still choose


def test_gpu_preset_is_the_original_model_and_compute_with_the_bugs_fixed():
    gpu = get_preset("gpu")
    t = gpu.train
    model = gpu.model
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size, model.dropout) == (6, 6, 384, 128, 0.1)
    assert gpu.model.vocab_size == 50257 and gpu.data_source == "tinystories" and gpu.fallback_source is None
    assert (t.betas, t.eps, t.weight_decay, t.grad_clip) == ((0.9, 0.95), 1e-9, 0.1, 0.5)
    original_tokens = 625 * 32 * 32 * 128  # the original's 20,000 micro-batches were 625 optimizer steps
    assert t.max_steps * t.tokens_per_step(gpu.model.block_size) == original_tokens == 81_920_000
    assert t.min_lr == pytest.approx(t.learning_rate / 10) and 0 < t.warmup_steps <= t.max_steps // 10  # bug 1 fixed
    evaluation = 2 * t.eval_batches  # forward passes of one micro-batch, both splits
    training = t.eval_interval * t.grad_accum_steps * 3  # forward + backward of the steps between evaluations
    assert evaluation / training < 0.05  # bug 4: the original's evaluation cost twice its training


def test_gpu_long_preset_is_about_one_epoch_of_tinystories():
    long, gpu = get_preset("gpu-long"), get_preset("gpu")
    assert long.model == gpu.model and long.data_dir == gpu.data_dir  # the same model, the same whole dataset
    tokens = long.train.max_steps * long.train.tokens_per_step(long.model.block_size)
    assert 470e6 <= tokens <= 2 * 470e6  # TinyStories' train split holds about 470M GPT-2 tokens


def test_cpu_preset_streams_tinystories_and_falls_back_to_the_built_in_stories():
    cpu = get_preset("cpu")
    assert cpu.data_source == "tinystories" and cpu.data_options == dict(train_stories=35_000, validation_stories=500)
    assert cpu.fallback_source == "synthetic" and cpu.data_dir.name == "tinystories-cpu-compact8192"
    tokens = cpu.train.max_steps * cpu.train.tokens_per_step(cpu.model.block_size)
    assert tokens <= cpu.data_options["train_stories"] * 200  # ~203 tokens a story: online, no story is seen twice
    assert get_preset("ci").data_source == "synthetic"


def test_train_without_a_preset_needs_every_setting(tmp_path):
    with pytest.raises(ValueError, match="Give a preset"):
        train(model_config=TINY_MODEL, out_dir=tmp_path)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown preset 'laptop'; choose one of: ci, cpu, modern, gpu, gpu-long"):
        get_preset("laptop")


def test_weight_decay_only_on_matrices():
    model = GPT(TINY_MODEL)
    optimizer = make_optimizer(model, TrainConfig())
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert any(p is model.transformer.wte.weight for p in decay["params"])


def test_dtype_is_chosen_per_device(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert choose_dtype(torch.device("cpu"))[0] == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert choose_dtype(torch.device("cpu"))[0] == torch.bfloat16
    # A GPU's bf16 is decided by its compute capability: is_bf16_supported() says True on a T4
    # (7.5), where bf16 is only emulated, so it must not be what decides.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, expected in [((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((7, 5), torch.float16)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, capability=capability, **k: capability)
        dtype, reason = choose_dtype(torch.device("cuda"))
        assert dtype == expected, capability
    assert "GradScaler" in reason
    with pytest.raises(ValueError, match="'float16' needs a GradScaler .* on cpu choose 'bfloat16' or 'float32'"):
        choose_dtype(torch.device("cpu"), "float16")  # fp16 without a scaler: most gradients underflow to zero
    with pytest.raises(ValueError, match="dtype must be"):
        choose_dtype(torch.device("cpu"), "int8")


def test_grad_scaler_only_for_fp16_on_cuda():
    assert not make_grad_scaler(torch.device("cpu"), torch.float32).is_enabled()
    assert not make_grad_scaler(torch.device("cpu"), torch.float16).is_enabled()
    assert not make_grad_scaler(torch.device("cuda"), torch.bfloat16).is_enabled()


def test_device_can_be_overridden():
    assert choose_device("cpu") == (torch.device("cpu"), "requested")
    if not torch.cuda.is_available():
        assert choose_device()[0].type in ("cpu", "mps")


def test_clipping_sees_unscaled_gradients():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4)
    model(x).square().sum().backward()
    true_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    model.zero_grad()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=True)  # fp16-style scaling, on the CPU
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler.scale(model(x).square().sum()).backward()
    grads_before = [p.grad.clone() for p in model.parameters()]
    norm = optimizer_step(model, optimizer, scaler, grad_clip=0.5)
    assert norm.item() == pytest.approx(true_norm, rel=1e-5)  # not 1024x larger
    assert all(p.grad is None for p in model.parameters())
    scaled_norm = torch.nn.utils.get_total_norm(grads_before).item()
    assert scaled_norm == pytest.approx(1024 * true_norm, rel=1e-5)  # the backward really was scaled


# ----------------------------------------------------------------------------- the loop


@requires_tokenizer
def test_training_writes_history_best_weights_and_checkpoint(small_dataset, tmp_path):
    result = run_tiny(small_dataset, tmp_path)
    history = load_history(tmp_path)
    assert [r["step"] for r in history] == [0, 4, 8, 12]
    assert [r["tokens"] for r in history] == [s * 4 * 32 * 2 for s in (0, 4, 8, 12)]
    assert set(history[0]) == {"step", "tokens", "lr", "train_loss", "val_loss", "train_bpb", "val_bpb", "sample"}
    per_byte = small_dataset.splits["validation"].bytes / small_dataset.splits["validation"].tokens
    assert all(r["val_bpb"] == pytest.approx(r["val_loss"] / math.log(2) / per_byte) for r in history)
    assert all(r["sample"].startswith("Once upon a time") for r in history)  # what the model wrote, at each evaluation
    assert history[0]["sample"] != history[-1]["sample"]  # training changed it
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.5  # it learns
    assert history[0]["val_loss"] == pytest.approx(math.log(50257), abs=0.3)
    best = torch.load(tmp_path / BEST_WEIGHTS_FILE, weights_only=True)
    assert best["val_loss"] == min(r["val_loss"] for r in history) == result.best_val_loss
    assert best["model_config"]["n_embd"] == 16 and "transformer.wte.weight" in best["model"]
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_FILE)  # weights_only=True inside
    assert checkpoint["step"] == 12 and checkpoint["history"] == history
    assert set(checkpoint) >= {"model", "optimizer", "scheduler", "scaler", "rng", "model_config", "train_config"}


@requires_tokenizer
def test_same_seed_same_losses(small_dataset, tmp_path):
    a = run_tiny(small_dataset, tmp_path / "a").history
    b = run_tiny(small_dataset, tmp_path / "b").history
    assert a == b


@requires_tokenizer
def test_stopped_and_resumed_run_has_exactly_the_uninterrupted_losses(small_dataset, tmp_path):
    full = run_tiny(small_dataset, tmp_path / "full").history
    first = run_tiny(small_dataset, tmp_path / "resumed", stop_at_step=6)
    assert first.interrupted and first.steps == 6
    second = run_tiny(small_dataset, tmp_path / "resumed", resume=True)
    assert second.steps == 12 and not second.interrupted
    assert second.history == full  # bit for bit, on a CPU
    assert load_history(tmp_path / "resumed") == full


# batches drawn by the tiny run: eval at step 0 = calls 1-4, steps 1-4 = 5-12 (two micro-batches
# each), eval at step 4 = 13-16, steps 5-8 = 17-24, eval at step 8 = 25-28, ...
@requires_tokenizer
@pytest.mark.parametrize("interrupt_at_call", [20, 25], ids=["second-micro-batch-of-step-6", "evaluation-at-step-8"])
def test_keyboard_interrupt_saves_a_checkpoint_that_resumes_exactly(small_dataset, tmp_path, monkeypatch,
                                                                    interrupt_at_call):
    full = run_tiny(small_dataset, tmp_path / "full").history
    real_batch, calls = TokenDataset.batch, {"n": 0}

    def interrupting_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == interrupt_at_call:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(TokenDataset, "batch", interrupting_batch)
    result = run_tiny(small_dataset, tmp_path / "interrupted")
    assert result.interrupted and 0 < result.steps < 12
    monkeypatch.setattr(TokenDataset, "batch", real_batch)
    assert run_tiny(small_dataset, tmp_path / "interrupted", resume=True).history == full


@requires_tokenizer
def test_an_interrupt_mid_update_reports_the_step_of_the_checkpoint_it_keeps(small_dataset, tmp_path, monkeypatch):
    # After the optimizer step and the step count, before the loop knows the step is done: the weights may be
    # half-updated, so the last checkpoint (step 4) stands, and the run says it is there, not at step 6.
    full = run_tiny(small_dataset, tmp_path / "full").history
    real_update = run_module.Run.update

    def interrupting_update(self):
        real_update(self)
        if self.step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module.Run, "update", interrupting_update)
    result = run_tiny(small_dataset, tmp_path / "interrupted")
    assert result.interrupted and result.steps == 4
    assert load_checkpoint(tmp_path / "interrupted" / CHECKPOINT_FILE)["step"] == 4
    monkeypatch.setattr(run_module.Run, "update", real_update)
    assert run_tiny(small_dataset, tmp_path / "interrupted", resume=True).history == full


@requires_tokenizer
def test_gradient_accumulation_equals_one_big_batch(small_dataset, tmp_path):
    model = GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    run_tiny(small_dataset, tmp_path / "a", model_config=model,
             train_config=tiny_train_config(batch_size=4, grad_accum_steps=2, eval_batches=1))
    run_tiny(small_dataset, tmp_path / "b", model_config=model,
             train_config=tiny_train_config(batch_size=8, grad_accum_steps=1, eval_batches=1))
    # Same 8 windows per step (drawn in the same order), same mean loss: only rounding differs.
    weights = [torch.load(tmp_path / run / CHECKPOINT_FILE, weights_only=True)["model"] for run in ("a", "b")]
    for name in ("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.bias"):
        torch.testing.assert_close(weights[0][name], weights[1][name], atol=1e-5, rtol=1e-4)
    initial = GPT(model).state_dict()["transformer.h.0.attn.c_attn.weight"]
    assert not torch.allclose(weights[0]["transformer.h.0.attn.c_attn.weight"], initial, atol=1e-3)  # it did train


@requires_tokenizer
def test_nan_loss_stops_with_a_clear_message(small_dataset, tmp_path, monkeypatch):
    real_forward, calls = GPT.forward, {"n": 0}

    def forward(self, idx, targets=None):
        logits, loss = real_forward(self, idx, targets)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 6:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)
    with pytest.raises(TrainingDiverged, match=r"became nan at step 4 .*lower learning_rate"):
        run_tiny(small_dataset, tmp_path)


# ----------------------------------------------------------------------------- command line


def _cli(args, env_extra=None, **kwargs):
    """The training command started in a fresh interpreter, running on while the test watches it."""
    return subprocess.Popen([sys.executable, "-m", "slm_helpers.train", "--no-progress", *args],
                            env=command_env(env_extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _cli_to_the_end(args, cwd, env_extra=None) -> subprocess.CompletedProcess:
    """The training command run to its end, forked from a process that imported torch once (quick_cli)."""
    return quick_cli.run(["slm_helpers.train", "--no-progress", *args], command_env(env_extra), cwd=cwd)


@requires_tokenizer
def test_cli_killed_with_sigkill_then_resumed_ends_with_the_uninterrupted_losses(tmp_path):
    env = {"SLM_DATA_DIR": str(tmp_path / "data")}
    args = ["--preset", "ci", "--max-iters", "20", "--eval-interval", "10"]
    full = _cli_to_the_end(args + ["--out-dir", str(tmp_path / "full")], tmp_path, env)
    assert full.returncode == 0, full.stderr
    killed = _cli(args + ["--out-dir", str(tmp_path / "killed")], env)
    history_file = tmp_path / "killed" / HISTORY_FILE
    deadline = time.time() + 300
    while not (history_file.exists() and json.loads(history_file.read_text())[-1]["step"] >= 10):
        assert killed.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert json.loads(history_file.read_text())[-1]["step"] < 20  # it really was cut short
    resumed = _cli_to_the_end(args + ["--out-dir", str(tmp_path / "killed"), "--resume"], tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert load_history(tmp_path / "killed") == load_history(tmp_path / "full")


def test_cli_bad_preset_is_one_clear_line(tmp_path):
    proc = _cli(["--preset", "laptop", "--out-dir", str(tmp_path)])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2  # a bad argument, as argparse's own
    assert "argument --preset: 'laptop' is not a preset: choose one of ci, cpu, modern, gpu, gpu-long" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@requires_tokenizer
def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    env = {**os.environ, "SLM_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "slm_helpers.train", "--preset", "ci",
         "--max-iters", "4", "--out-dir", str(tmp_path / "ddp"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[:3000]}\n...\n{proc.stderr[-1500:]}"
    assert "micro-batches x 2 processes)" in proc.stdout and proc.stdout.count("done:") == 1  # only rank 0 reports
    history = load_history(tmp_path / "ddp")
    ci = PRESETS["ci"]
    assert history[-1]["step"] == 4 and history[-1]["tokens"] == 4 * 2 * ci.train.tokens_per_step(ci.model.block_size)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [BEST_WEIGHTS_FILE, CHECKPOINT_FILE, HISTORY_FILE]
    checkpoint = load_checkpoint(tmp_path / "ddp" / CHECKPOINT_FILE)
    assert len(checkpoint["rng"]) == 2  # one batch stream per process...
    assert not torch.equal(checkpoint["rng"][0]["batch"], checkpoint["rng"][1]["batch"])  # ...and they differ


# ----------------------------------------------------------------------------- GPU paths, stood in for on the CPU


@requires_tokenizer
def test_resume_reads_the_checkpoint_on_the_cpu_whatever_the_device(small_dataset, tmp_path, monkeypatch):
    # Generator.set_state and torch.cuda.set_rng_state take CPU tensors only: a checkpoint
    # mapped to the GPU would make resuming fail there.
    run_tiny(small_dataset, tmp_path, stop_at_step=4)
    real_load, seen = torch.load, []

    def load(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    run_tiny(small_dataset, tmp_path, resume=True)
    assert seen and set(seen) == {"cpu"}
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert all(t.device.type == "cpu" for state in checkpoint["rng"] for t in (state["batch"], state["torch_cpu"]))


@requires_tokenizer
def test_a_checkpoint_of_a_disabled_scaler_resumes_under_an_enabled_one(small_dataset, tmp_path, monkeypatch):
    # A CPU or bf16 run saves a disabled GradScaler's empty state; resumed on a T4 (fp16, scaler
    # enabled), GradScaler.load_state_dict would raise on it. The enabled scaler here is a CPU one.
    run_tiny(small_dataset, tmp_path, stop_at_step=4)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["scaler"] == {}
    monkeypatch.setattr(run_module, "make_grad_scaler",
                        lambda device, dtype: torch.amp.GradScaler("cpu", init_scale=256.0, enabled=True))
    result = run_tiny(small_dataset, tmp_path, resume=True)
    assert result.steps == 12 and not result.interrupted
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["scaler"]["scale"] > 0  # the enabled scaler's state, saved


DDP_STOP_SCRIPT = """
import sys
from slm_helpers.presets import get_preset
from slm_helpers.train import train
preset = get_preset("ci", max_steps=8, warmup_steps=0)  # what `--max-iters 8` asks for
train(preset, data_dir=sys.argv[1], out_dir=sys.argv[2], stop_at_step=4, progress=False)
"""


@requires_tokenizer
def test_a_two_process_run_resumed_as_one_process(small_compact_dataset, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    script = tmp_path / "ddp_stop.py"
    script.write_text(DDP_STOP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script), small_compact_dataset.path,
                            str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "run" / CHECKPOINT_FILE)
    assert checkpoint["step"] == 4 and len(checkpoint["rng"]) == 2
    per_process = PRESETS["ci"].train.tokens_per_step(PRESETS["ci"].model.block_size)
    assert checkpoint["tokens_seen"] == 4 * 2 * per_process
    resumed = _cli_to_the_end(["--preset", "ci", "--max-iters", "8", "--resume", "--data-dir",
                               str(small_compact_dataset.path), "--out-dir", str(tmp_path / "run")], tmp_path)
    out = resumed.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert ("the checkpoint was written by 2 processes, this run has 1: it continues the batch streams of ranks 0-0; "
            "the others end here") in out
    history = load_history(tmp_path / "run")
    assert history[-1]["step"] == 8
    # Tokens keep counting what was really seen: 4 steps of 2 processes, then 4 steps of 1.
    assert history[-1]["tokens"] == 4 * 2 * per_process + 4 * per_process
    assert [r["tokens"] for r in history] == sorted(r["tokens"] for r in history)


def test_one_concept_per_module_presets_do_not_import_the_loop():
    code = "import sys, slm_helpers.presets; print('slm_helpers.train' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# ----------------------------------------------------------------------------- the redesign's promises

_OPENED: list[str] = []
_COUNTING: list[bool] = []


def _count_meta_reads(event, args):
    if _COUNTING and event == "open" and str(args[0]).endswith("meta.json"):
        mode = args[1] if isinstance(args[1], str) else ""
        if not mode or "r" in mode:  # reads only: writing meta.json.tmp is not reading it
            _OPENED.append(str(args[0]))


sys.addaudithook(_count_meta_reads)  # every open() of the process, including numpy's and pathlib's


@requires_tokenizer
@pytest.mark.parametrize("given", ["folder", "preset"])
def test_a_run_reads_meta_json_once(small_compact_dataset, tmp_path, monkeypatch, given):
    if given == "preset":  # the preset's own dataset, already prepared: found, checked and opened once
        monkeypatch.setenv("SLM_DATA_DIR", str(tmp_path / "data"))
        preset = get_preset("ci", max_steps=6, warmup_steps=0, eval_interval=3)
        shutil.copytree(small_compact_dataset.path, preset.data_dir)
        kwargs = dict(preset=preset)
    else:
        kwargs = dict(model_config=TINY_MODEL, train_config=tiny_train_config(max_steps=6, eval_interval=3),
                      data_dir=small_compact_dataset.path)
    _OPENED.clear()
    _COUNTING.append(True)
    try:
        result = train(**kwargs, out_dir=tmp_path / "run", progress=False, log=lambda *a: None)
    finally:
        _COUNTING.clear()
    assert result.steps == 6 and len(result.history) == 3  # 6 steps, 2 x 2 micro-batches..., 3 evaluations
    assert len(_OPENED) == 1, _OPENED


@requires_tokenizer
def test_a_checkpoint_without_a_newer_config_field_resumes_with_its_default(small_dataset, tmp_path):
    full = run_tiny(small_dataset, tmp_path / "full").history
    run_tiny(small_dataset, tmp_path / "old", stop_at_step=4)
    path = tmp_path / "old" / CHECKPOINT_FILE
    saved = torch.load(path, weights_only=True)
    del saved["model_config"]["flash"], saved["model_config"]["tokenizer"]  # as written before these settings existed
    torch.save(saved, path)
    assert run_tiny(small_dataset, tmp_path / "old", resume=True).history == full


@requires_tokenizer
def test_a_changed_implementation_setting_does_not_block_a_resume(small_dataset, tmp_path):
    """Only what must match is compared: the manual attention path computes the same model."""
    logs = []
    run_tiny(small_dataset, tmp_path, stop_at_step=4)
    manual = GPTConfig(**{**TINY_MODEL.__dict__, "flash": False})
    result = train(model_config=manual, train_config=tiny_train_config(), data_dir=small_dataset.path, out_dir=tmp_path,
                   resume=True, progress=False, log=logs.append)
    assert result.steps == 12
    said = "resuming with other settings than the checkpoint's: flash True in the checkpoint, resumed with False"
    assert said in logs


LEAVE_SCRIPT = """
import torch
from slm_helpers import processes
with processes.group_left_on_exit():
    print(processes.start("cpu"), torch.distributed.is_initialized())
print(torch.distributed.is_initialized())
torch.distributed.init_process_group("gloo")  # joined by someone else: left to them
with processes.group_left_on_exit():
    processes.start("cpu")
print(torch.distributed.is_initialized())
torch.distributed.destroy_process_group()
"""


def test_whoever_joins_the_process_group_leaves_it(tmp_path):
    """A gloo group still open at exit can abort the process (SIGABRT, 'terminate called without an
    active exception'): train() leaves the group it joined, and only that one."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    run = subprocess.run([sys.executable, "-c", LEAVE_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:3] == ["(0, 0, 1) True", "False", "True"]
