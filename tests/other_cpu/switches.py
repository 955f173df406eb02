"""What .ci/run's second pass sets so that torch's fp32 kernels compute as on another kind of CPU:
the last bits of fp32 results change, as they do between AVX2, AVX-512 and Apple silicon machines.
tests/test_other_cpu.py shows that each switch changes a result on the machine it runs on.

The other CPU is the class below this one: on an AVX-512 machine, ATen's and oneDNN's AVX2
kernels (the commonest learner's laptop; faster than the unvectorized ones); on an AVX2 machine
(or any other), ATen without vector instructions and oneDNN at SSE4.1. MKL's matrix products
take its compatible path on both.

    python tests/other_cpu/switches.py     # prints the switches as NAME=value lines, for .ci/run

It also gives the pass a cache of compiled kernels of its own (TORCHINDUCTOR_CACHE_DIR): torch's
inductor cache does not key its kernels on ATEN_CPU_CAPABILITY, and notebook 07's compiled step,
reusing kernels compiled by the other pass, corrupted memory and killed its kernel (measured on an
AVX-512 machine: "free(): invalid pointer", then nbval waiting for the dead kernel).
"""

from __future__ import annotations

import shlex

# ATEN_CPU_CAPABILITY: ATen's own kernels (softmax, exp, sums, the optimizer's element-wise updates);
# MKL_CBWR: MKL's matrix products, on the code path of the named instruction set;
# ONEDNN_MAX_CPU_ISA: oneDNN's kernels (GELU among them), limited to the named instruction set.
BELOW = {
    # MKL_CBWR=AVX2 would change nothing on an AMD CPU (MKL runs its AVX2 path there already): only
    # COMPATIBLE changes its products everywhere.
    "AVX512": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def switches(native_capability: str) -> dict[str, str]:
    """The switches for a machine whose ATen kernels are ``native_capability``
    (``torch.backends.cpu.get_cpu_capability()`` without the switches: AVX512, AVX2, DEFAULT, ...)."""
    return BELOW.get(native_capability, BELOW["AVX2"])


def environment(native_capability: str) -> dict[str, str]:
    """What the pass sets: the switches, and a cache of compiled kernels apart from torch's default
    one (``/tmp/torchinductor_USER``; this one beside it), which then only ever holds this machine's own kernels."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    below = switches(native_capability)
    return {**below, "TORCHINDUCTOR_CACHE_DIR": f"{default_cache_dir()}_as_{below['ATEN_CPU_CAPABILITY']}"}


if __name__ == "__main__":
    import torch

    for name, value in environment(torch.backends.cpu.get_cpu_capability()).items():
        print(f"{name}={shlex.quote(value)}")
