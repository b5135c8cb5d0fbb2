"""Facts a run records about itself so analysis never rebuilds a model and a recheck knows what to expect:

- `flops_per_step(spec)`: FLOPs of one training step, counted by torch's FlopCounterMode on one real
  step of a freshly built solver (the counter `bench tune` uses), stored in status.json;
- `float_path_facts()`: what decides the floating-point path of a CPU run (threads, ATen's CPU
  capability, the CPU model, oneDNN/MKL ISA settings, deterministic flags), stored in
  environment.json. Two runs of one spec with equal facts give bit-identical curves and answers;
  different facts give results equal only in distribution over seeds (README, "Rechecking a number").
"""

from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any

# Environment variables that change which kernels run (and so the rounding of every sum).
FLOAT_PATH_ENV = (
    "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
)
# The facts that must agree for a bit-for-bit recheck (the rest of environment.json is context).
FLOAT_PATH_KEYS = ("torch", "device", "gpu", "threads", "cpu_capability", "cpu_model", "float_env", "deterministic")


def cpu_model() -> str | None:
    """The CPU's model name (Linux /proc/cpuinfo; elsewhere platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def float_path_facts() -> dict[str, Any]:
    """What decides this process's floating-point path (for environment.json)."""
    import torch

    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # older torch
        capability = None
    return {
        "threads": torch.get_num_threads(),
        "cpu_capability": capability,
        "cpu_model": cpu_model(),
        "float_env": {name: os.environ[name] for name in FLOAT_PATH_ENV if name in os.environ},
        "deterministic": {
            "algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        },
    }


def float_path_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The float-path facts two environment.json records disagree on, as 'key: a != b' lines
    (a key missing from an older record counts as unknown, not as a difference)."""
    lines = []
    for key in FLOAT_PATH_KEYS:
        if key in recorded and key in current and recorded[key] != current[key]:
            lines.append(f"{key}: {recorded[key]!r} != {current[key]!r}")
    return lines


def flops_per_step(spec: Any, resolved: Any = None) -> int | None:
    """FLOPs of one training step of `spec`'s solver (matrix multiplications and attention, forward
    and backward), counted by torch on one real step of a fresh model built on the CPU. The global
    RNG is restored afterwards, so counting never changes what a run computes. None if the counter
    fails (it is a fact for reports, never a reason to lose a finished run). `resolved`: the spec's
    task and options from bench/run/build.py's resolve_run, if at hand (not built again)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.run.build import build
    from bench.run.train import training_batch
    from solvers.base import TensorBatch

    with torch.random.fork_rng(devices=[]):
        try:
            task, solver = build(spec if spec.device == "cpu" else dataclasses.replace(spec, device="cpu"), resolved)
            solver = solver.to("cpu")
            batch = TensorBatch.from_numpy(training_batch(task, spec.train, 0, None), "cpu")
            torch.manual_seed(0)
            counter = FlopCounterMode(display=False)
            with counter:
                solver.train_step(batch)
            return int(counter.get_total_flops())
        except Exception:  # noqa: BLE001 - see the docstring
            return None
