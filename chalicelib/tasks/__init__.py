"""Tasks a job can run. Importing this package registers the built-ins."""

from chalicelib.tasks import aws_targets as _aws_targets  # noqa: F401  (registers AWS targets)
from chalicelib.tasks import builtin as _builtin  # noqa: F401  (registers the built-ins)
from chalicelib.tasks.registry import RunContext, Task, TaskRegistry, UnknownTask, registry, task

__all__ = ["RunContext", "Task", "TaskRegistry", "UnknownTask", "registry", "task"]
