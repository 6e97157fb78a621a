"""Tasks: data + prompt format + metric, registered by name; one training engine for all."""

from . import amazon, commitpack, custom  # noqa: F401  (register the tasks)
from .base import ClassificationTask, GenerationTask, Task, get_task, register_task, task_names
from .tree import TreeTask

__all__ = [
    "ClassificationTask",
    "GenerationTask",
    "Task",
    "TreeTask",
    "get_task",
    "register_task",
    "task_names",
]
