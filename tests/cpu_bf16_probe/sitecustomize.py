"""Answer the CPU's bf16 probe as a machine of the other kind would (tests and CI only).

The `ci` preset's saved outputs must not depend on whether the CPU has native bf16
(AVX512-BF16 or AMX): some learners' machines do, some do not. `.ci/run` runs the test
command twice with this folder on ``PYTHONPATH`` and ``SLM_PRETEND_CPU_BF16`` set to ``yes``
and then ``no``; Python imports ``sitecustomize`` at start-up in every process, notebook
kernels and CLI subprocesses included, so all of them see the same answer.
"""

import os

_answer = os.environ.get("SLM_PRETEND_CPU_BF16", "").strip().lower()
if _answer in ("yes", "no"):
    import torch

    def _probe() -> bool:
        return _answer == "yes"

    torch.cpu._is_avx512_bf16_supported = _probe
    torch.cpu._is_amx_tile_supported = _probe
elif _answer:
    raise SystemExit(f"error: SLM_PRETEND_CPU_BF16 must be 'yes' or 'no', not {_answer!r}")
