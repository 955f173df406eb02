"""Where to train and in which precision, and why (notebook 04, section 2).

* :func:`choose_device`: CUDA, then Apple MPS (recent torch only), then the CPU; a requested
  device is checked, so ``--device cuda`` on a machine without CUDA is a clear error.
* :func:`choose_dtype`: the autocast dtype, decided from what the hardware really computes:
  bf16 on GPUs of compute capability 8.0 and up (A100, H100, RTX 30xx+), fp16 with a
  ``GradScaler`` on older GPUs (Colab's T4), bf16 on CPUs with native bf16 instructions,
  fp32 on every other CPU (emulated bf16 measured ~30x slower than fp32 there).
"""

from __future__ import annotations

import contextlib
import re
import sys

import torch

from slm_helpers.errors import SlmError

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda)(:\d+)?")


def torch_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed torch, e.g. ``(2, 13)``."""
    major, minor = re.match(r"(\d+)\.(\d+)", torch.__version__).groups()
    return int(major), int(minor)


def mps_is_usable() -> bool:
    """Apple's MPS backend, only on torch >= 2.4: older versions gave wrong losses and NaNs
    for models like this one (reports in the LLMs-from-scratch tracker)."""
    return torch.backends.mps.is_available() and torch_version() >= (2, 4)


def choose_device(requested: str = "auto") -> tuple[torch.device, str]:
    """The device to train on and why. ``requested`` is ``"auto"``, ``"cpu"``, ``"mps"``,
    ``"cuda"`` or ``"cuda:N"``; a device this machine does not have raises ``ValueError``."""
    if not isinstance(requested, str) or not DEVICE_PATTERN.fullmatch(requested):
        raise SlmError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not {requested!r}")
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"CUDA is available ({torch.cuda.get_device_name()})"
        if mps_is_usable():
            return torch.device("mps"), "Apple MPS is available and torch >= 2.4 (older versions gave wrong losses)"
        return torch.device("cpu"), "no GPU found"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise SlmError(f"device {requested!r} was requested, but {why}: use device 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SlmError(f"device {requested!r} was requested, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s): use cuda:0 to "
                             f"cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SlmError(f"device {requested!r} was requested, but Apple MPS is not available here: use 'cpu' or 'auto'")
    if device.type == "mps" and device.index:
        raise SlmError(f"device {requested!r}: MPS has one device, 'mps'")
    return device, "requested"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Compute capability 8.0 and up (Ampere and newer). ``torch.cuda.is_bf16_supported()``
    also says True on a T4 (7.5), where bf16 is only emulated, without tensor cores."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def choose_dtype(device: torch.device, requested: str = "auto") -> tuple[torch.dtype, str]:
    """The autocast dtype for ``device`` and why (measured, not by habit)."""
    if requested != "auto":
        if requested not in DTYPES:
            raise SlmError(f"dtype must be 'auto', {', '.join(map(repr, DTYPES))}, not {requested!r}")
        if requested == "float16" and device.type != "cuda":
            raise SlmError(f"dtype 'float16' needs a GradScaler against underflow, which this series enables on CUDA "
                             f"only: on {device.type} choose 'bfloat16' or 'float32' (or 'auto')")
        return DTYPES[requested], "requested"
    if device.type == "cuda":
        if cuda_has_native_bf16(device):
            return torch.bfloat16, ("this GPU computes bf16 natively: half the memory traffic, fp32's range, no "
                                    "GradScaler")
        return torch.float16, "this GPU lacks native bf16 (e.g. a T4): fp16 autocast with GradScaler against underflow"
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16, "this CPU has native bf16 instructions"
    if device.type == "cpu":
        return torch.float32, "this CPU lacks native bf16: bf16 autocast measured ~30x slower than fp32 on such a CPU"
    return torch.float32, f"{device.type}: fp32 is the safe choice"


def autocast_context(device: torch.device, dtype: torch.dtype):
    """``torch.autocast`` for low precision; a no-op context for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 on CUDA, where small gradients underflow."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16 and device.type == "cuda"))


def keep_large_buffers_on_the_heap() -> bool:
    """On Linux (glibc), let ``malloc`` reuse large freed blocks instead of returning them to
    the system at once.

    A training step on the CPU allocates buffers of ~100 MB (the logits: batch x block x
    50,257 floats). By default glibc maps each one fresh from the kernel and unmaps it when
    freed, so every step pays for zeroing those pages again; here that doubled the time of a
    ci-preset step (1,470 vs 2,700 tokens/s). Returns whether the setting was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
