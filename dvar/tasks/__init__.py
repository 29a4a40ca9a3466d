"""Task registry. Every module in this package that defines a `@register`ed `Task`
subclass is imported on first use, so a new task is one new file."""

from __future__ import annotations

import importlib
import pkgutil

from dvar.tasks.base import Task, parse_range

_REGISTRY: dict[str, type[Task]] = {}
_LOADED = False


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "generate"):
            importlib.import_module(f"{__name__}.{info.name}")
    _LOADED = True


def task_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name lists the known ones."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


__all__ = ["Task", "register", "get_task", "task_names", "parse_range"]
