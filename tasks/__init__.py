"""Serial-complexity tasks: seeded generators, independent verifiers, reference traces. No torch."""

from tasks.base import PAD, TRACE_PAD, Batch, Task, TaskError, split_of, stream_rng
from tasks.registry import make_task, parse_assignments, register_task, task_class, task_names

__all__ = [
    "PAD", "TRACE_PAD", "Batch", "Task", "TaskError", "split_of", "stream_rng",
    "make_task", "parse_assignments", "register_task", "task_class", "task_names",
]
