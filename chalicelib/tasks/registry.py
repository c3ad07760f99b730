"""The task registry: the only way a job's `task_name` becomes code.

Names are explicit strings chosen by the task's author. Nothing is ever imported by a name that
came from a request, so a job definition cannot make a worker run arbitrary code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.errors import FieldError

TaskFunc = Callable[..., Any]
# What is wrong with calling a task with (args, kwargs), found without running it. Each error's
# loc starts at "task_args" or "task_kwargs": `validate([], {"url": 1})` may return
# [FieldError(("task_kwargs", "url"), "url must be a string")].
Validator = Callable[[list[Any], dict[str, Any]], list[FieldError]]


@dataclass(frozen=True)
class RunContext:
    """What a task knows about the run it is part of.

    `(job_id, scheduled_for)` identifies the run: a task with side effects outside NEXUS can
    use it as an idempotency key, since a run may be attempted more than once.
    """

    job_id: int
    scheduled_for: datetime
    execution_id: str
    attempt: int
    # Set when the run must stop: its timeout passed, someone cancelled it (the API's cancel),
    # or a newer run replaces it (`concurrency_policy` replace). A task that waits should wait
    # on it (`ctx.sleep`), so it stops within a second; until it has stopped, the run's lease
    # is kept, so nothing (a retry, a waiting run) starts beside it.
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or raise TaskCancelled as soon as the run is cancelled."""
        if self.cancelled.wait(seconds):
            raise TaskCancelled("the run was cancelled while it slept")


class TaskCancelled(Exception):
    """The run was asked to stop, and its task stopped."""


@dataclass(frozen=True)
class Task:
    name: str
    func: TaskFunc
    timeout_seconds: float | None
    description: str
    validate: Validator | None = None

    def check_arguments(
        self, args: list[Any], kwargs: dict[str, Any], at: tuple[str | int, ...] = ()
    ) -> list[FieldError]:
        """The task's `validate` on these arguments, each error's loc placed under `at`."""
        if self.validate is None:
            return []
        return [FieldError((*at, *e.loc), e.msg, e.type) for e in self.validate(args, kwargs)]


class UnknownTask(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"task '{name}' is not registered; registered tasks: {', '.join(known)}")
        self.name = name


class DuplicateTask(ValueError):
    pass


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def task(
        self, name: str, *, timeout: float | None = None, validate: Validator | None = None
    ) -> Callable[[TaskFunc], TaskFunc]:
        """Register the decorated function as `name`; it is called as `func(ctx, *args, **kw)`.

        `validate(args, kwargs)`, when given, checks a job's arguments as the job is created
        (and a manual run's overrides): a run that cannot succeed is refused before it exists.
        It must be cheap and must not reach the network.
        """
        if not name or len(name) > 200:
            raise ValueError("a task name must be 1-200 characters")

        def register(func: TaskFunc) -> TaskFunc:
            if name in self._tasks:
                raise DuplicateTask(f"task '{name}' is already registered")
            doc = (func.__doc__ or "").strip().splitlines()
            self._tasks[name] = Task(name, func, timeout, doc[0] if doc else "", validate)
            return func

        return register

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        return sorted(self._tasks)


registry = TaskRegistry()
task = registry.task
