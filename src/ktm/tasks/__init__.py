"""Tasks: data + prompt format + metric, registered by name; one training engine for all."""

from .base import ClassificationTask, get_task, register_task, task_names
from .tree import TreeTask

__all__ = ["ClassificationTask", "TreeTask", "get_task", "register_task", "task_names"]
