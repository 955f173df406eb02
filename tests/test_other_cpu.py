"""The switches .ci/run sets for its "another CPU" pass (tests/other_cpu/switches.py) really change
fp32 results on this machine: otherwise that pass would prove nothing about learners' CPUs."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "other_cpu"))
import switches as other_cpu

# Each switch, and fp32 results of the kernels it governs, as bytes that must change.
PROBE = """
import hashlib, torch
torch.manual_seed(0)
torch.set_num_threads(1)
a, b, x = torch.randn(257, 384), torch.randn(384, 1000), torch.randn(64, 384)
results = {
    "matmul": a @ b,
    "layer_norm": torch.nn.functional.layer_norm(x, (384,)),
    "softmax": torch.softmax(x, -1),
    "gelu": torch.nn.functional.gelu(x),
}
print(torch.backends.cpu.get_cpu_capability())
for name, tensor in results.items():
    print(name, hashlib.sha256(tensor.numpy().tobytes()).hexdigest())
"""
CHANGES = {"ATEN_CPU_CAPABILITY": ("softmax",), "MKL_CBWR": ("matmul",), "ONEDNN_MAX_CPU_ISA": ("gelu",)}
SWITCHED = tuple(other_cpu.BELOW["AVX2"])  # the same names in every row


@functools.cache
def native_probe() -> tuple[str, dict[str, str]]:
    """The probe without any switch (even inside CI's switched pass), run once per session."""
    return _probe(_native_env())


@functools.cache
def switches() -> dict[str, str]:
    """This machine's switches: those for its own ATen kernels, read without any switch."""
    return other_cpu.switches(native_probe()[0])


def _probe(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    capability, *rows = out.split("\n")
    return capability, dict(row.split() for row in rows if row)


def _native_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SWITCHED}


def test_the_file_names_each_switch_this_test_checks():
    assert all(set(row) == set(CHANGES) for row in other_cpu.BELOW.values())
    assert other_cpu.switches("AVX512")["ATEN_CPU_CAPABILITY"] == "avx2"
    assert other_cpu.switches("DEFAULT") == other_cpu.switches("AVX2")


@pytest.mark.parametrize("switch", sorted(CHANGES))
def test_each_switch_changes_an_fp32_result_here(switch):
    if switch == "MKL_CBWR" and not torch.backends.mkl.is_available():
        pytest.skip("this torch is built without MKL (Apple silicon, ARM): its BLAS has no such switch")
    if switch == "ONEDNN_MAX_CPU_ISA" and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch is built without oneDNN")
    native_capability, native = native_probe()
    if switch == "ATEN_CPU_CAPABILITY" and native_capability == "DEFAULT":
        pytest.skip("this CPU already runs torch's default (unvectorized) kernels")
    capability, switched = _probe({**_native_env(), switch: switches()[switch]})
    changed = {name for name in native if native[name] != switched[name]}
    assert set(CHANGES[switch]) <= changed, f"{switch}={switches()[switch]} changed only {sorted(changed)}"
    if switch == "ATEN_CPU_CAPABILITY":
        assert capability == switches()[switch].upper() != native_capability


def test_without_a_switch_the_results_repeat():
    """The comparison above means something: the same environment gives the same bytes."""
    assert _probe(_native_env()) == native_probe()


def test_the_pass_keeps_its_compiled_kernels_apart():
    """torch's inductor cache does not key its kernels on ATEN_CPU_CAPABILITY: kernels one pass
    compiled, reused by the other, corrupted memory (notebook 07's compiled step)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    env = {capability: other_cpu.environment(capability) for capability in ("AVX512", "AVX2")}
    for row in env.values():
        assert set(row) - set(SWITCHED) == {"TORCHINDUCTOR_CACHE_DIR"}
        assert Path(row["TORCHINDUCTOR_CACHE_DIR"]) != Path(default_cache_dir())
    assert env["AVX512"]["TORCHINDUCTOR_CACHE_DIR"] != env["AVX2"]["TORCHINDUCTOR_CACHE_DIR"]
