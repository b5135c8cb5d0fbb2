"""Compute precision of a run: `--precision fp32|bf16|auto`.

bf16 runs the matmuls and attention in bfloat16 under `torch.autocast` while the weights, their
gradients, the AdamW state and the loss stay fp32 (autocast keeps parameters fp32 and casts per op;
cross-entropy is on its fp32 list). Not on it: a `log_softmax` a solver calls itself (the RL
thinkers' log-probabilities) returns bf16 for bf16 logits. `auto`
is resolved when the spec is built (so the run id names what ran): bf16 on CUDA and on CPUs whose
oneDNN has a bf16 matrix engine (AMX), fp32 elsewhere, where bf16 is emulated and slower.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from typing import Any

import torch


@functools.cache
def cpu_has_bf16_engine() -> bool:
    """Whether oneDNN runs bf16 matmuls on a matrix engine here (AMX on x86). Read from oneDNN's own
    verbose ISA line, so a cap such as ONEDNN_MAX_CPU_ISA=AVX2 (or AVX512_CORE) counts as no engine.
    Measured in a child process: oneDNN prints its ISA once per process and only in verbose mode."""
    if not torch.backends.mkldnn.is_available():
        return False
    code = ("import torch;torch.backends.mkldnn.verbose(1);"
            "a=torch.ones(16,32,dtype=torch.bfloat16);torch.nn.functional.linear(a,torch.ones(16,32,dtype=torch.bfloat16))")
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    isa = next((line for line in out.splitlines() if ",cpu,isa:" in line), "")
    return "amx" in isa.lower()


def resolve_precision(requested: str, device: str) -> str:
    """fp32 or bf16 for a resolved device ("cpu" or "cuda"); auto picks bf16 where it is fast."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16"
    return "bf16" if cpu_has_bf16_engine() else "fp32"


def precision_context(device: torch.device | str, precision: str) -> Any:
    """The autocast context a training step (and its evaluation) runs under."""
    device_type = torch.device(device).type
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
