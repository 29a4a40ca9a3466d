"""Task registry. Every module in this package that defines a `@register`ed `Task`
subclass is imported on first use, so a new task is one new file."""

from __future__ import annotations

from dvar.registry import Registry
from dvar.tasks.base import Task, parse_range

_TASKS: Registry[type[Task]] = Registry("task", __name__, skip=("base",))
task_names = _TASKS.names


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its `name`."""
    return _TASKS.add(cls.name, cls)


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name lists the known ones."""
    return _TASKS.get(name)()


__all__ = ["Task", "register", "get_task", "task_names", "parse_range"]
