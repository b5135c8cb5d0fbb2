"""Test-wide settings.

One torch thread: the tiny models in these tests run no faster on two, CI has two cores, and a fixed
thread count fixes the order of floating-point reductions, so a tiny training run follows the same
trajectory on every machine with the same torch build (at mod 20, a different trajectory can be the
difference between a seed that generalises and one that does not).
"""

import torch

torch.set_num_threads(1)
