"""The engine's Lambda triggers, played locally: EventBridge's rate rule and SQS event sources.

On AWS, EventBridge calls the tick Lambda once a minute and the Lambda service polls the queues
and calls the worker Lambdas with batches. Here two small kinds of thread do the same and call
the very same handlers, with events and a context shaped like the ones Lambda passes, so the
engine cannot tell the difference.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.chaos import Chaos

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

# Moto's default account: ARNs the embedded AWS hands out carry it too.
ACCOUNT = "123456789012"
LAMBDA_BUDGET_SECONDS = 300.0
DEFAULT_TICK_SECONDS = 60.0
# How often an idle queue is asked for messages. SQS delays are whole seconds: a run's
# message shows up as much as a second early, or within 50 ms of its run when the tick held
# its send (engine.queue, Alignment), and the worker waits for its second. A poll this often
# adds at most 0.1 s to a run's start locally.
POLL_SECONDS = 0.1
# What a thread waits after a failed receive before trying again, so a dead endpoint does not
# turn into a busy loop of errors.
RETRY_PAUSE_SECONDS = 1.0


class LambdaContext:
    """The parts of Lambda's context object that handlers read."""

    def __init__(
        self, function_name: str, region: str, budget_seconds: float = LAMBDA_BUDGET_SECONDS
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function_name}"
        # The Python runtime reads it from the environment, so on Lambda it is a string too.
        self.memory_limit_in_mb = "512"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + budget_seconds

    def get_remaining_time_in_millis(self) -> int:
        # Nothing stops a handler locally when this reaches zero; it only lets handlers that
        # watch their budget behave as they would on Lambda.
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def tick_period_from_env() -> float:
    return float(os.environ.get("NEXUS_TICK_SECONDS") or DEFAULT_TICK_SECONDS)


def next_boundary(now: float, period: float) -> float:
    """The first whole multiple of `period` (in epoch seconds) strictly after `now`."""
    return (math.floor(now / period) + 1) * period


def scheduled_event(instant: float, rule_arn: str, region: str) -> dict[str, Any]:
    """What EventBridge sends a rule's target; `time` is when the rule fired, to the second."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class TickLoop:
    """Call the tick handler once at start, then at every whole multiple of the period.

    EventBridge's `rate(1 minute)` fires at the start of each minute rather than a minute after
    whatever moment the rule was created, so the loop follows the wall clock the same way. A
    tick that runs longer than the period makes the loop skip to the next boundary, not fire a
    burst to catch up: the engine finds everything that came due since on its next tick anyway.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        period: float | None = None,
        function_name: str = "nexus-local-tick",
        rule_name: str = "nexus-tick",
        region: str | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        self.period = tick_period_from_env() if period is None else period
        if self.period <= 0:
            raise ValueError(f"the tick period must be positive, not {self.period}")
        self._handler = handler
        # `make chaos` only (local/chaos.py): ticks that may be killed, and a second loop that
        # calls the same handler a moment after this one, as if the rule had fired twice.
        self._twin: TickLoop | None = None
        if chaos is not None:
            self._handler = chaos.tick_handler(handler, function_name)
            if chaos.config.second_tick:
                self._twin = TickLoop(
                    chaos.tick_handler(handler, f"{function_name}-2", second=True),
                    period=self.period,
                    function_name=f"{function_name}-2",
                    rule_name=rule_name,
                    region=region,
                )
        self._function_name = function_name
        self._region = region or _region()
        self._rule_arn = f"arn:aws:events:{self._region}:{ACCOUNT}:rule/{rule_name}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexus-tick", daemon=True)

    def start(self) -> TickLoop:
        self._thread.start()
        if self._twin is not None:
            self._twin.start()
        return self

    def request_stop(self) -> None:
        """Tell the loop to end, without waiting for it: see stop()."""
        self._stop.set()
        if self._twin is not None:
            self._twin.request_stop()

    def stop(self, timeout: float = 30.0) -> None:
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the tick handler is still running after %.0f s; leaving it", timeout)
        if self._twin is not None:
            self._twin.stop(timeout)

    def _run(self) -> None:
        self._fire(time.time())
        due = next_boundary(time.time(), self.period)
        while not self._stop.is_set():
            delay = due - time.time()
            if delay > 0:
                # Waking up is checked against the wall clock again: Event.wait runs on the
                # monotonic clock, which may drift from time.time() or see the clock set.
                if self._stop.wait(delay):
                    return
                continue
            self._fire(due)
            due = next_boundary(max(time.time(), due), self.period)

    def _fire(self, instant: float) -> None:
        event = scheduled_event(instant, self._rule_arn, self._region)
        try:
            self._handler(event, LambdaContext(self._function_name, self._region))
        except Exception:
            # EventBridge would simply fire again next minute; so does this loop.
            log.exception("the tick handler failed on the tick of %s", event["time"])


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS's message attributes as Lambda spells them: camelCase keys, binary as base64."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": [
                base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])
            ],
            "dataType": value["DataType"],
        }
    return out


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event the Lambda service passes an SQS-triggered function, from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": _message_attributes(m.get("MessageAttributes", {})),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsPoller:
    """Receive a queue's messages and hand each batch to an SQS-triggered handler.

    Like Lambda's event source, it runs up to `concurrency` invocations at once, each with a
    batch of up to `batch_size` messages. One thread receives and starts an invocation per
    batch it gets. It does not long-poll: moto's long poll wakes when a message is sent, not
    when a delayed one becomes visible, so a run sent with a delay would wait up to the whole
    poll. It asks again at once while the queue has messages to give, and every
    `poll_seconds` while it has none.

    The delete contract is Lambda's: a handler that returns has handled the whole batch, so
    every message of it is deleted; a handler that raises has deleted what it finished itself,
    and the rest is left alone to come back after the visibility timeout, and after the queue's
    maxReceiveCount to go to the dead-letter queue by the queue's own redrive policy.
    """

    def __init__(
        self,
        handler: Handler,
        queue_url: str,
        *,
        sqs: Any = None,
        concurrency: int = 2,
        batch_size: int = 10,
        poll_seconds: float = POLL_SECONDS,
        function_name: str = "nexus-local-worker",
        chaos: Chaos | None = None,
    ) -> None:
        if sqs is None:
            from chalicelib.aws import client

            sqs = client("sqs")
        if not 1 <= batch_size <= 10:
            # SQS receives, and deletes in one call, at most 10 messages.
            raise ValueError(f"batch_size must be between 1 and 10, not {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._sqs = sqs
        self._handler = handler
        self._url = queue_url
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._function_name = function_name
        # `make chaos` only (local/chaos.py): each batch to two invocations, which may be killed.
        self._chaos = chaos
        self._region: str = sqs.meta.region_name
        self._arn = ""
        self._stop = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._invocations: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._receiver = threading.Thread(
            target=self._run, name=f"{function_name}-receiver", daemon=True
        )

    def start(self) -> SqsPoller:
        self._arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._receiver.start()
        return self

    def request_stop(self) -> None:
        """Stop receiving, without waiting: several pollers then wind down at once."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving, and wait for the invocations under way to end."""
        self.request_stop()
        deadline = time.monotonic() + timeout
        self._receiver.join(timeout)
        with self._lock:
            running = list(self._invocations)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is still in its handler; leaving it", thread.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=self._poll_seconds):
                continue  # every invocation is busy
            try:
                out = self._sqs.receive_message(
                    QueueUrl=self._url,
                    MaxNumberOfMessages=self._batch_size,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:
                self._slots.release()
                if self._stop.is_set():
                    return
                log.exception("receiving from %s failed", self._url)
                self._stop.wait(RETRY_PAUSE_SECONDS)
                continue
            messages = out.get("Messages") or []
            if not messages:
                self._slots.release()
                self._stop.wait(self._poll_seconds)
                continue
            thread = threading.Thread(
                target=self._invoke, args=(messages,), name=self._function_name, daemon=True
            )
            with self._lock:
                self._invocations.add(thread)
            thread.start()

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        try:
            if self._chaos is None:
                self._deliver(messages)
            else:
                self._chaos.invoke(self._function_name, messages, lambda: self._deliver(messages))
        finally:
            with self._lock:
                self._invocations.discard(threading.current_thread())
            self._slots.release()

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self._arn, self._region)
        try:
            self._handler(event, LambdaContext(self._function_name, self._region))
        except Exception:
            log.exception(
                "%s failed on a batch of %d; leaving its messages to SQS",
                self._function_name,
                len(messages),
            )
            return
        self._delete(messages)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            out = self._sqs.delete_message_batch(QueueUrl=self._url, Entries=entries)
        except Exception:
            log.exception("deleting a handled batch from %s failed; it will come back", self._url)
            return
        for failure in out.get("Failed") or []:
            log.error("deleting a handled message failed; it will come back: %s", failure)
