"""Control messages: timers on the work queue that make the engine act at a given second.

The table holds the truth; a control message only says "look now". Each handler re-reads what
it acts on and makes one conditional write, so a duplicate, late or lost message changes
nothing: what it was for stays due in the `by_due` index, and the tick sends the message again
(`Dispatcher.tick` meets the entry).

Kinds:

- `resume`: a job paused with `until` resumes at that second (`JobControl.resume_due`).
- `backfill`: the next step of a backfill (engine.backfill).

A message's body is `{"control": kind, ...}`; run messages never have `control`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.engine.queue import MAX_DELAY_SECONDS, WorkQueue

Handler = Callable[[dict[str, Any], datetime], None]
# A timer message may come this early (SQS delays are whole seconds): it waits out the rest.
MAX_EARLY_SECONDS = 2.0


def control_body(kind: str, **fields: Any) -> str:
    return json.dumps({"control": kind, **fields}, default=str)


def is_control(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("control"), str)


def on_its_second(at: datetime, now: datetime, sleep: Callable[[float], None]) -> datetime | None:
    """The instant a timer message meant for `at` acts at, received at `now`: `at` itself
    after waiting out the rest of a message that came a little early (SQS delays are whole
    seconds), `now` for one that is due or late; None for one that came more than
    MAX_EARLY_SECONDS early (dropped: what it is for stays due, and the tick sends it again)."""
    early = (at - now).total_seconds()
    if early > MAX_EARLY_SECONDS:
        return None
    if early > 0:
        sleep(early)
        return at
    return now


def send_control(queue: WorkQueue, body: str, at: datetime, now: datetime) -> None:
    """Send a control message to arrive at `at` (at most 15 minutes ahead: later ones are
    sent by the tick when they come due)."""
    delay = max(0, min(MAX_DELAY_SECONDS, math.floor((at - now).total_seconds())))
    queue.send_bodies([(body, delay)])


class Controls:
    """The handlers of control messages, by kind."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def handle(self, data: dict[str, Any], now: datetime) -> bool:
        """Run the handler of the message's kind; False for a kind nobody handles."""
        handler = self._handlers.get(str(data.get("control")))
        if handler is None:
            return False
        handler(data, now)
        return True
