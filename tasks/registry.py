"""The task registry: tasks register by name where they are defined; the CLI lists and builds them."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, TypeVar

from tasks.base import Task, TaskError

_TASKS: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: `@register_task("sort")` makes the task available as `--task sort`."""

    def wrap(cls: T) -> T:
        if name in _TASKS:
            raise RuntimeError(f"task {name!r} registered twice")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return wrap


def task_names() -> list[str]:
    _load_builtin_tasks()
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    _load_builtin_tasks()
    if name not in _TASKS:
        raise TaskError(f"unknown task {name!r}; valid: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def coerce_value(value: str, kind: Any, label: str) -> Any:
    """Parse a CLI string into a declared type (int, float, bool, str, Literal, Optional of those),
    or raise a one-line TaskError naming `label` (e.g. "add: max") and the bad value."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [k for k in typing.get_args(kind) if k is not type(None)]
        if value.strip().lower() in ("none", "null", ""):
            return None
        kind = inner[0]
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise TaskError(f"{label}={value!r} is not one of {', '.join(map(str, choices))}")
        return value
    try:
        if kind is bool:
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise TaskError(f"{label}={value!r} is not a valid {kind.__name__}") from None
    return value


def make_task(name: str, max_value: int | None = None, overrides: dict[str, Any] | None = None) -> Task:
    """Build a task from its name, the `--max` scale and `--set key=value` overrides.

    Override values may be strings (from the CLI) or already-typed values (from Python or a stored
    run spec). Unknown keys and bad values raise TaskError naming the valid choices.
    """
    cls = task_class(name)
    hints = typing.get_type_hints(cls.Params)
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    values: dict[str, Any] = {}
    for key, raw in (overrides or {}).items():
        if key not in fields:
            raise TaskError(f"{name}: unknown parameter {key!r}; valid: {', '.join(sorted(fields))}")
        values[key] = coerce_value(raw, hints[key], f"{name}: {key}") if isinstance(raw, str) else raw
    if max_value is not None:
        if cls.scale_param in (overrides or {}) and values[cls.scale_param] != max_value:
            raise TaskError(f"{name}: both --max and --set {cls.scale_param}= given; use one")
        values[cls.scale_param] = max_value
    return cls(cls.Params(**values))


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """['k=v', ...] from repeated `--set k=v` options, as a dict; one-line error if malformed."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TaskError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


_INFRASTRUCTURE = {"base", "registry"}


def _load_builtin_tasks() -> None:
    """Import every module of the tasks package, so each runs its @register_task decorator.

    Adding a task therefore means adding one file; nothing else lists the tasks.
    """
    import importlib
    import pkgutil

    import tasks

    for module in pkgutil.iter_modules(tasks.__path__):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"tasks.{module.name}")
