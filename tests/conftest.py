"""Test-wide settings.

One torch thread: the tiny models in these tests run no faster on two, CI has two cores, and a fixed
thread count fixes the order of floating-point reductions, so a tiny training run follows the same
trajectory on every machine with the same torch build (at mod 20, a different trajectory can be the
difference between a seed that generalises and one that does not).
"""

import os

# Also for what the tests start: sweeps cap their workers' threads at OMP_NUM_THREADS, and spawned
# workers and subprocesses inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(1)
