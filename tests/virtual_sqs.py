"""An in-memory SQS, seen through its boto3 client, on a virtual clock.

`VirtualSqs` stands in for ``boto3.client("sqs")``: the calls our code makes take the same
keyword parameters (checked against botocore's SQS model) and give the same answers and
errors (``client.exceptions.QueueDoesNotExist``...). Time is whatever the clock passed in says,
so a test moves it forward instantly. It models standard-queue SQS:

- a message is invisible until its delay (the entry's DelaySeconds, else the queue's) ends;
- a received message is invisible for the visibility timeout (the request's, else the queue's,
  30 s by default), then comes back with ApproximateReceiveCount one higher;
- with a RedrivePolicy, a message received maxReceiveCount times (5 if unsaid) moves to the
  dead-letter queue at the next receive that would return it;
- each receive gives a new receipt handle; delete accepts any handle the message was given
  (a gone message's delete succeeds too); changing the visibility needs the latest handle of
  a message still in flight;
- receives return at once (WaitTimeSeconds is ignored); messages never expire; no FIFO queues.

Around each call it emits the botocore events a real client emits (provide-client-params,
before-call, after-call on ``meta.events``), so `tests.faults.FaultInjector` works on it too.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.errorfactory import ClientExceptionsFactory
from botocore.hooks import HierarchicalEmitter, first_non_none_response
from botocore.model import ServiceModel
from botocore.serialize import create_serializer

from tests.faults import error_response, ok_response

MAX_DELAY = 900
MAX_VISIBILITY = 43_200
DEFAULT_MAX_RECEIVE_COUNT = 5
SENDER_ID = "AIDAIT2UOQQY3AUEKVGXU"

# The codes SQS still sends in its x-amzn-query-error header, from its Query days.
_LEGACY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
}
_MESSAGE_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@cache
def _sqs_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sqs")


class _Refused(Exception):
    """SQS answers the request with this error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(name: str, value: Any, reason: str) -> _Refused:
    return _Refused(
        "InvalidParameterValue", f"Value {value} for parameter {name} is invalid. Reason: {reason}"
    )


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


@dataclass(eq=False)
class _Message:
    id: str
    body: str
    sent_at: float
    visible_at: float
    receive_count: int = 0
    first_received_at: float | None = None
    handle: str | None = None  # the latest receipt handle


@dataclass(eq=False)
class _Queue:
    name: str
    url: str
    arn: str
    attributes: dict[str, str]
    created_at: float
    messages: dict[int, _Message] = field(default_factory=dict)  # in the order they came
    handles: dict[str, tuple[int, _Message]] = field(default_factory=dict)  # all ever given

    def setting(self, name: str) -> int:
        return int(self.attributes[name])

    def redrive(self) -> tuple[str, int] | None:
        if "RedrivePolicy" not in self.attributes:
            return None
        policy = json.loads(self.attributes["RedrivePolicy"])
        return policy["deadLetterTargetArn"], int(
            policy.get("maxReceiveCount", DEFAULT_MAX_RECEIVE_COUNT)
        )


class VirtualSqs:
    """The SQS client: send_message(_batch), receive_message, delete_message(_batch),
    change_message_visibility(_batch), get_queue_attributes, get_queue_url, create_queue.

    clock: returns now, as an aware datetime (a naive one is taken as UTC) or epoch seconds.
    duplicate_every_delivery: every message is stored twice, so it is delivered twice, each
    copy with its own receipt handles, receive count and visibility (SQS's at-least-once).
    """

    def __init__(
        self,
        clock: Callable[[], datetime | float],
        *,
        region_name: str = "us-east-1",
        account_id: str = "123456789012",
        duplicate_every_delivery: bool = False,
    ) -> None:
        model = _sqs_model()
        self.meta = SimpleNamespace(
            region_name=region_name,
            events=HierarchicalEmitter(),
            service_model=model,
            config=Config(),
            endpoint_url=f"https://sqs.{region_name}.amazonaws.com",
        )
        self.exceptions = ClientExceptionsFactory().create_client_exceptions(model)
        self.duplicate_every_delivery = duplicate_every_delivery
        self._clock = clock
        self._account = account_id
        self._serializer = create_serializer("json", include_validation=True)
        self._queues: dict[str, _Queue] = {}  # by URL
        self._seq = 0
        self._lock = threading.RLock()

    def now(self) -> float:
        """The clock's time, in epoch seconds."""
        value = self._clock()
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        return float(value)

    # The API, as botocore calls it.

    def create_queue(self, **params: Any) -> dict[str, Any]:
        return self._call("CreateQueue", params)

    def get_queue_url(self, **params: Any) -> dict[str, Any]:
        return self._call("GetQueueUrl", params)

    def get_queue_attributes(self, **params: Any) -> dict[str, Any]:
        return self._call("GetQueueAttributes", params)

    def send_message(self, **params: Any) -> dict[str, Any]:
        return self._call("SendMessage", params)

    def send_message_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("SendMessageBatch", params)

    def receive_message(self, **params: Any) -> dict[str, Any]:
        return self._call("ReceiveMessage", params)

    def delete_message(self, **params: Any) -> dict[str, Any]:
        return self._call("DeleteMessage", params)

    def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("DeleteMessageBatch", params)

    def change_message_visibility(self, **params: Any) -> dict[str, Any]:
        return self._call("ChangeMessageVisibility", params)

    def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("ChangeMessageVisibilityBatch", params)

    # Helpers for tests: they look at or empty a queue without making a call.

    def visible(self, queue_url: str) -> list[str]:
        """The bodies a receive could return now, in order, without receiving them."""
        with self._lock:
            now = self.now()
            queue = self._queue(queue_url)
            return [m.body for m in queue.messages.values() if m.visible_at <= now]

    def drain(self, queue_url: str) -> list[str]:
        """Receive and delete every message visible now (redrive included); their bodies."""
        bodies: list[str] = []
        with self._lock:
            while True:
                out = self._receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
                if not out.get("Messages"):
                    return bodies
                for message in out["Messages"]:
                    bodies.append(message["Body"])
                    self._delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    # How a call goes: the events a botocore client emits, around the service's work.

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        model = self.meta.service_model.operation_model(operation)
        context: dict[str, Any] = {
            "client_region": self.meta.region_name,
            "client_config": self.meta.config,
        }
        event = f"sqs.{operation}"
        responses = self.meta.events.emit(
            f"provide-client-params.{event}", params=params, model=model, context=context
        )
        params = first_non_none_response(responses, default=params)
        # Raises ParamValidationError on parameters the real client refuses.
        request = self._serializer.serialize_to_request(params, model)
        request.update(url=self.meta.endpoint_url, context=context)
        _, response = self.meta.events.emit_until_response(
            f"before-call.{event}",
            model=model,
            params=request,
            request_signer=None,
            context=context,
        )
        if response is None:
            work = getattr(self, "_" + re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
            try:
                with self._lock:
                    response = ok_response(work(**params), request["url"])
            except _Refused as refused:
                response = error_response(
                    model,
                    refused.code,
                    refused.message,
                    query_code=_LEGACY_CODES.get(refused.code),
                    url=request["url"],
                )
        http, parsed = response
        self.meta.events.emit(
            f"after-call.{event}", http_response=http, parsed=parsed, model=model, context=context
        )
        if http.status_code >= 300:
            # As botocore's after-call.sqs handler does: the modelled name picks the class.
            error = parsed.get("Error", {})
            code = error.get("QueryErrorCode") or error.get("Code")
            raise self.exceptions.from_code(code)(parsed, operation)  # type: ignore[operator]
        return parsed  # type: ignore[no-any-return]

    # The service.

    def _queue(self, url: str) -> _Queue:
        queue = self._queues.get(url)
        if queue is None:
            raise _Refused("QueueDoesNotExist", "The specified queue does not exist.")
        return queue

    def _create_queue(
        self, QueueName: str, Attributes: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        if not _NAME.match(QueueName):
            raise _invalid(
                "QueueName",
                QueueName,
                "Can only include alphanumeric characters, "
                "hyphens, or underscores. 1 to 80 in length",
            )
        url = f"{self.meta.endpoint_url}/{self._account}/{QueueName}"
        given = dict(Attributes or {})
        if url in self._queues:
            existing = self._queues[url].attributes
            if any(existing.get(k) != v for k, v in given.items()):
                raise _Refused(
                    "QueueNameExists",
                    "A queue already exists with the same name and a "
                    "different value for attribute(s)",
                )
            return {"QueueUrl": url}
        for name, top in (("VisibilityTimeout", MAX_VISIBILITY), ("DelaySeconds", MAX_DELAY)):
            if name in given and not 0 <= int(given[name]) <= top:
                raise _Refused("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        attributes = {
            "VisibilityTimeout": "30",
            "DelaySeconds": "0",
            "MessageRetentionPeriod": "345600",
            "MaximumMessageSize": "262144",
            "ReceiveMessageWaitTimeSeconds": "0",
        } | given
        arn = f"arn:aws:sqs:{self.meta.region_name}:{self._account}:{QueueName}"
        self._queues[url] = _Queue(QueueName, url, arn, attributes, self.now())
        return {"QueueUrl": url}

    def _get_queue_url(self, QueueName: str, **_: Any) -> dict[str, Any]:
        url = f"{self.meta.endpoint_url}/{self._account}/{QueueName}"
        return {"QueueUrl": self._queue(url).url}

    def _get_queue_attributes(
        self, QueueUrl: str, AttributeNames: list[str] | None = None
    ) -> dict[str, Any]:
        queue, now = self._queue(QueueUrl), self.now()
        waiting = list(queue.messages.values())
        everything = queue.attributes | {
            "QueueArn": queue.arn,
            "CreatedTimestamp": str(int(queue.created_at)),
            "LastModifiedTimestamp": str(int(queue.created_at)),
            "ApproximateNumberOfMessages": str(sum(m.visible_at <= now for m in waiting)),
            "ApproximateNumberOfMessagesNotVisible": str(
                sum(m.visible_at > now and m.receive_count > 0 for m in waiting)
            ),
            "ApproximateNumberOfMessagesDelayed": str(
                sum(m.visible_at > now and m.receive_count == 0 for m in waiting)
            ),
        }
        names = set(AttributeNames or [])
        unknown = names - set(everything) - {"All"}
        if unknown:
            raise _Refused("InvalidAttributeName", f"Unknown Attribute {sorted(unknown)[0]}.")
        chosen = {k: v for k, v in everything.items() if "All" in names or k in names}
        return {"Attributes": chosen} if chosen else {}

    def _enqueue(self, queue: _Queue, body: str, delay: int | None) -> dict[str, Any]:
        if delay is not None and not 0 <= delay <= MAX_DELAY:
            raise _invalid("DelaySeconds", delay, f"DelaySeconds must be >= 0 and <= {MAX_DELAY}.")
        now = self.now()
        visible_at = now + (queue.setting("DelaySeconds") if delay is None else delay)
        message_id = str(uuid.uuid4())
        for _ in range(2 if self.duplicate_every_delivery else 1):
            self._seq += 1
            queue.messages[self._seq] = _Message(message_id, body, now, visible_at)
        return {"MessageId": message_id, "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}

    def _send_message(
        self, QueueUrl: str, MessageBody: str, DelaySeconds: int | None = None, **_: Any
    ) -> dict[str, Any]:
        return self._enqueue(self._queue(QueueUrl), MessageBody, DelaySeconds)

    def _send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        return self._each(
            Entries,
            lambda e: self._enqueue(queue, e["MessageBody"], e.get("DelaySeconds")),
        )

    def _receive_message(
        self,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        VisibilityTimeout: int | None = None,
        AttributeNames: list[str] | None = None,
        MessageSystemAttributeNames: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        queue, now = self._queue(QueueUrl), self.now()
        if not 1 <= MaxNumberOfMessages <= 10:
            raise _invalid(
                "MaxNumberOfMessages", MaxNumberOfMessages, "Must be between 1 and 10, if provided."
            )
        if VisibilityTimeout is None:
            VisibilityTimeout = queue.setting("VisibilityTimeout")
        elif not 0 <= VisibilityTimeout <= MAX_VISIBILITY:
            raise _invalid("VisibilityTimeout", VisibilityTimeout, "Must be >= 0 and <= 43200")
        wanted = set(AttributeNames or []) | set(MessageSystemAttributeNames or [])
        redrive = queue.redrive()
        dlq = next((q for q in self._queues.values() if redrive and q.arn == redrive[0]), None)
        out: list[dict[str, Any]] = []
        for seq, message in list(queue.messages.items()):
            if len(out) == MaxNumberOfMessages:
                break
            if message.visible_at > now:
                continue
            if redrive and dlq and message.receive_count >= redrive[1]:
                del queue.messages[seq]
                message.visible_at, message.handle = now, None
                dlq.messages[seq] = message
                continue
            message.receive_count += 1
            message.first_received_at = message.first_received_at or now
            message.visible_at = now + VisibilityTimeout
            message.handle = f"{uuid.uuid4().hex}-{seq}-{message.receive_count}"
            queue.handles[message.handle] = (seq, message)
            out.append(self._delivered(message, wanted))
        return {"Messages": out} if out else {}

    def _delivered(self, message: _Message, wanted: set[str]) -> dict[str, Any]:
        attributes = {
            "SenderId": SENDER_ID,
            "SentTimestamp": _ms(message.sent_at),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": _ms(message.first_received_at or 0),
        }
        delivered = {
            "MessageId": message.id,
            "ReceiptHandle": message.handle,
            "MD5OfBody": hashlib.md5(message.body.encode()).hexdigest(),
            "Body": message.body,
        }
        chosen = {k: v for k, v in attributes.items() if "All" in wanted or k in wanted}
        return delivered | ({"Attributes": chosen} if chosen else {})

    def _handle(self, queue: _Queue, handle: str) -> tuple[int, _Message]:
        if handle not in queue.handles:
            raise _Refused(
                "ReceiptHandleIsInvalid",
                f'The input receipt handle "{handle}" is not a valid receipt handle.',
            )
        return queue.handles[handle]

    def _remove(self, queue: _Queue, handle: str) -> dict[str, Any]:
        seq, _ = self._handle(queue, handle)
        queue.messages.pop(seq, None)  # gone already (deleted, or moved): still a success
        return {}

    def _delete_message(self, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        return self._remove(self._queue(QueueUrl), ReceiptHandle)

    def _delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        return self._each(Entries, lambda e: self._remove(queue, e["ReceiptHandle"]))

    def _hold(self, queue: _Queue, handle: str, timeout: int) -> dict[str, Any]:
        if not 0 <= timeout <= MAX_VISIBILITY:
            raise _invalid("VisibilityTimeout", timeout, "Must be >= 0 and <= 43200")
        seq, message = self._handle(queue, handle)
        if queue.messages.get(seq) is not message or message.handle != handle:
            raise _invalid("ReceiptHandle", handle, "The receipt handle has expired.")
        now = self.now()
        if message.visible_at <= now:
            raise _Refused(
                "MessageNotInflight",
                "Message does not exist or is not available for visibility timeout change.",
            )
        message.visible_at = now + timeout
        return {}

    def _change_message_visibility(
        self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
    ) -> dict[str, Any]:
        return self._hold(self._queue(QueueUrl), ReceiptHandle, VisibilityTimeout)

    def _change_message_visibility_batch(
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl)
        return self._each(
            Entries, lambda e: self._hold(queue, e["ReceiptHandle"], e["VisibilityTimeout"])
        )

    def _each(
        self, entries: list[dict[str, Any]], do: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """A batch: the request's checks, then each entry on its own into Successful or
        Failed."""
        if not entries:
            raise _Refused("EmptyBatchRequest", "There should be at least one entry in a batch.")
        if len(entries) > 10:
            raise _Refused(
                "TooManyEntriesInBatchRequest",
                f"Maximum number of entries per request are 10. You have sent {len(entries)}.",
            )
        ids = [e["Id"] for e in entries]
        if len(set(ids)) != len(ids):
            raise _Refused("BatchEntryIdsNotDistinct", "Two or more batch entries share an Id.")
        for entry_id in ids:
            if not _NAME.match(entry_id):
                raise _Refused(
                    "InvalidBatchEntryId",
                    "A batch entry id can only contain alphanumeric characters, hyphens and "
                    "underscores. It can be at most 80 letters long.",
                )
        successful, failed = [], []
        for entry in entries:
            try:
                successful.append({"Id": entry["Id"], **do(entry)})
            except _Refused as refused:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": refused.code,
                        "Message": refused.message,
                    }
                )
        return {"Successful": successful, "Failed": failed}
