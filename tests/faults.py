"""Faults injected into boto3 clients at the botocore level, to test what our code does when
AWS fails under it or the process dies in the middle of a call.

A `FaultInjector` hooks the events botocore emits around every API call of the clients it is
attached to (real clients, or `tests.virtual_sqs.VirtualSqs`, which emits the same events):

- ``provide-client-params``: the call is counted here and its fault chosen (for ``partial``,
  the parameters are cut down to the requests that go through);
- ``before-call``: a handler that returns ``(http_response, parsed)`` makes botocore skip the
  request and treat that as the answer (raising ``ClientError`` when the status is >= 300);
  ``crash`` and ``timeout`` raise here, before anything is sent;
- ``after-call``: ``crash_after`` and ``timeout_after`` raise here, after the call landed.

Retries: botocore retries throttling and 5xx errors inside the endpoint, below
``before-call``. An injected error short-circuits the call above the endpoint, so botocore
never retries it: the caller gets it once, as after retries ran out (the response metadata
says so: ``MaxAttemptsReached`` and ``RetryAttempts`` from the client's config). Clients need
no retry settings for this.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.model import OperationModel
from botocore.parsers import create_parser


class Crash(BaseException):
    """The process died here. A BaseException, so the code's `except Exception` cannot
    swallow it."""


KINDS = frozenset({"crash", "crash_after", "error", "timeout", "timeout_after", "partial"})

# The batch calls whose answer can leave part of the batch undone.
PARTIAL_OPERATIONS = frozenset(
    {
        "BatchWriteItem",
        "BatchGetItem",
        "SendMessageBatch",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
    }
)

# Codes botocore's standard retry mode retries (retries/standard.py), besides any 5xx status.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_STATUS = {
    "InternalServerError": 500,
    "InternalFailure": 500,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
}
_REASON_MESSAGES = {
    "TransactionConflict": "Transaction is ongoing for the item",
    "ConditionalCheckFailed": "The conditional request failed",
}


class _Raw:
    """The raw body of a made-up HTTP response (what AWSResponse reads its content from)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def _metadata(status: int, headers: Any) -> dict[str, Any]:
    return {
        "RequestId": headers["x-amzn-requestid"],
        "HTTPStatusCode": status,
        "HTTPHeaders": headers,
        "RetryAttempts": 0,
    }


def _headers() -> Any:  # botocore wants its HTTPHeaders; a dict reads the same
    return {"x-amzn-requestid": uuid.uuid4().hex, "content-type": "application/x-amz-json-1.0"}


def ok_response(parsed: dict[str, Any], url: str = "") -> tuple[AWSResponse, dict[str, Any]]:
    """A 200 answer with the given parsed body, as botocore hands it to `after-call`."""
    headers = _headers()
    parsed["ResponseMetadata"] = _metadata(200, headers)
    return AWSResponse(url, 200, headers, _Raw(b"{}")), parsed


def error_response(
    model: OperationModel,
    code: str,
    message: str = "",
    *,
    status: int | None = None,
    fields: Mapping[str, Any] | None = None,
    query_code: str | None = None,
    url: str = "",
) -> tuple[AWSResponse, dict[str, Any]]:
    """The error AWS would answer with, parsed by botocore's own parser for the service's
    protocol (JSON: DynamoDB, SQS), modelled fields (e.g. CancellationReasons) included.

    query_code: for SQS (a former Query service), the legacy code it sends in the
    x-amzn-query-error header (e.g. AWS.SimpleQueueService.NonExistentQueue).
    """
    service = model.service_model
    protocol = service.resolved_protocol
    if protocol != "json":
        raise NotImplementedError(f"made-up errors for the {protocol} protocol")
    status = status or _STATUS.get(code, 400)
    headers = _headers()
    if "awsQueryCompatible" in service.metadata:
        side = "Sender" if status < 500 else "Receiver"
        headers["x-amzn-query-error"] = f"{query_code or code};{side}"
    body = json.dumps(
        {"__type": f"com.amazonaws.{service.endpoint_prefix}#{code}", "message": message}
        | dict(fields or {})
    ).encode()
    response = {"status_code": status, "headers": headers, "body": body}
    parser = create_parser(protocol)
    parsed: dict[str, Any] = parser.parse(response, model.output_shape)  # type: ignore[arg-type]
    # botocore's endpoint adds the error shape's modelled fields in a second pass.
    shape = service.shape_for_error_code(parsed["Error"]["Code"])
    if shape is not None:
        parsed.update(parser.parse(response, shape))
    return AWSResponse(url, status, headers, _Raw(body)), parsed


@dataclass(frozen=True)
class Fault:
    """What to do to one call.

    kind: crash | crash_after | error | timeout | timeout_after | partial.
    op: only calls of this operation count ("BatchWriteItem" or "dynamodb.BatchWriteItem").
    code, message, status: for error (status defaults from the code: 500 for Internal*).
    reasons: for TransactionCanceledException, the CancellationReasons codes, one per item
        (default: TransactionConflict for the first item, None for the others).
    keep: for partial, how many of the batch's leading requests or entries go through.
    """

    kind: str
    op: str | None = None
    code: str | None = None
    message: str | None = None
    status: int | None = None
    reasons: tuple[str, ...] | None = None
    keep: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: one of {sorted(KINDS)}")
        if self.kind == "error" and not self.code:
            raise ValueError("an error fault needs a code")
        if self.kind == "partial" and (self.op or "").rsplit(".", 1)[-1] not in PARTIAL_OPERATIONS:
            raise ValueError(f"a partial fault needs op= one of {sorted(PARTIAL_OPERATIONS)}")

    def matches(self, operation: str) -> bool:
        return self.op is None or self.op in (operation, operation.split(".", 1)[1])


class Fired(NamedTuple):
    call: int  # the call's number among all calls (1-based)
    operation: str  # "service.Operation"
    kind: str


@dataclass
class _Planned:
    """A fault chosen for one call, carried from event to event in botocore's request
    context."""

    fault: Fault
    call: int
    operation: str
    transact_items: int = 0
    withheld: Any = None  # partial: the requests or entries not sent
    none_kept: bool = False
    url: str = ""


@dataclass
class _Scheduled:
    at: int
    fault: Fault


class FaultInjector:
    """Counts the calls made through the attached clients, and injects faults into some.

    Scheduled faults fire at the Nth call (1-based, across all attached clients; among the
    calls of `op` only when the fault has one); at most one fault per call, the first added
    wins. In probability mode each other matching call gets the random fault with
    probability p, from a seeded random.Random.
    """

    def __init__(self, faults: Iterable[tuple[int, str, Mapping[str, Any]]] = ()) -> None:
        self.calls: list[str] = []
        self.fired: list[Fired] = []
        self._scheduled: list[_Scheduled] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._key = f"fault-injector-{id(self)}"
        self._clients: list[Any] = []
        self._random: tuple[float, Fault, random.Random] | None = None
        for at, kind, fields in faults:
            self.inject(at, kind, **fields)

    @property
    def count(self) -> int:
        return len(self.calls)

    def inject(self, at: int, kind: str, **fields: Any) -> FaultInjector:
        """Inject `kind` into the `at`-th call (counted among calls of `op=` if given)."""
        if at < 1:
            raise ValueError("calls are counted from 1")
        if isinstance(fields.get("reasons"), list):
            fields["reasons"] = tuple(fields["reasons"])
        self._scheduled.append(_Scheduled(at, Fault(kind, **fields)))
        return self

    def randomly(self, p: float, kind: str, *, seed: int = 0, **fields: Any) -> FaultInjector:
        """Probability mode: each call (of `op=` if given) gets this fault with probability p."""
        if isinstance(fields.get("reasons"), list):
            fields["reasons"] = tuple(fields["reasons"])
        self._random = (p, Fault(kind, **fields), random.Random(seed))
        return self

    def attach(self, *clients: Any) -> FaultInjector:
        """Hook the clients' (client.meta.events) botocore events."""
        for client in clients:
            events = client.meta.events
            # botocore keys unique ids per emitter, not per event: one for each hook.
            events.register("provide-client-params", self._provide_params, f"{self._key}-p")
            events.register_first("before-call", self._before_call, f"{self._key}-b")
            events.register_first("after-call", self._after_call, f"{self._key}-a")
            self._clients.append(client)
        return self

    def detach(self) -> None:
        """Remove the hooks from every attached client."""
        for client in self._clients:
            events = client.meta.events
            events.unregister("provide-client-params", self._provide_params, f"{self._key}-p")
            events.unregister("before-call", self._before_call, f"{self._key}-b")
            events.unregister("after-call", self._after_call, f"{self._key}-a")
        self._clients = []

    def __enter__(self) -> FaultInjector:
        return self

    def __exit__(self, *_: object) -> None:
        self.detach()

    # The hooks.

    def _choose(self, operation: str) -> _Planned | None:
        with self._lock:
            self.calls.append(operation)
            self._seen.update([operation, operation.split(".", 1)[1]])
            call = len(self.calls)
            fault = None
            for scheduled in self._scheduled:
                f = scheduled.fault
                if f.matches(operation) and scheduled.at == (self._seen[f.op] if f.op else call):
                    self._scheduled.remove(scheduled)
                    fault = f
                    break
            if fault is None and self._random is not None:
                p, f, rng = self._random
                if f.matches(operation) and rng.random() < p:
                    fault = f
            if fault is None:
                return None
            self.fired.append(Fired(call, operation, fault.kind))
            return _Planned(fault, call, operation)

    def _provide_params(
        self, params: dict[str, Any], model: OperationModel, context: dict[str, Any], **_: Any
    ) -> dict[str, Any] | None:
        operation = f"{model.service_model.service_id.hyphenize()}.{model.name}"
        planned = self._choose(operation)
        if planned is None:
            return None
        context[self._key] = planned
        planned.transact_items = len(params.get("TransactItems") or [])
        if planned.fault.kind != "partial":
            return None
        kept, planned.withheld = _split(model.name, params, planned.fault.keep)
        if kept is None:
            planned.none_kept = True  # nothing is sent: before-call answers
            return None
        return kept

    def _before_call(
        self, model: OperationModel, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        planned: _Planned | None = context.get(self._key)
        if planned is None:
            return None
        fault, planned.url = planned.fault, params.get("url", "")
        if fault.kind == "crash":
            raise Crash(f"injected crash before call {planned.call} ({planned.operation})")
        if fault.kind == "timeout":
            raise ReadTimeoutError(endpoint_url=planned.url)
        if fault.kind == "error":
            return self._error(model, planned, context)
        if fault.kind == "partial" and planned.none_kept:
            return ok_response({}, planned.url)
        return None

    def _after_call(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        planned: _Planned | None = context.pop(self._key, None)
        if planned is None:
            return
        kind = planned.fault.kind
        if kind == "partial":
            _merge_withheld(planned.operation.split(".", 1)[1], parsed, planned.withheld)
        elif kind == "crash_after":
            raise Crash(f"injected crash after call {planned.call} ({planned.operation})")
        elif kind == "timeout_after":
            raise ReadTimeoutError(endpoint_url=planned.url)

    def _error(
        self, model: OperationModel, planned: _Planned, context: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]]:
        fault = planned.fault
        code = fault.code or ""
        fields: dict[str, Any] = {}
        message = fault.message
        if code == "TransactionCanceledException":
            reasons = fault.reasons or ("TransactionConflict",) + ("None",) * max(
                0, planned.transact_items - 1
            )
            fields["CancellationReasons"] = [
                {"Code": r} | ({"Message": _REASON_MESSAGES[r]} if r in _REASON_MESSAGES else {})
                for r in reasons
            ]
            if message is None:
                message = (
                    "Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{', '.join(reasons)}]"
                )
        http, parsed = error_response(
            model,
            code,
            message if message is not None else f"Injected {code}",
            status=fault.status,
            fields=fields,
            url=planned.url,
        )
        if code in _RETRYABLE_CODES or http.status_code in (500, 502, 503, 504):
            # As botocore reports an error it retried until it gave up.
            retries = getattr(context.get("client_config"), "retries", None) or {}
            attempts = retries.get("total_max_attempts", 1)
            parsed["ResponseMetadata"].update(RetryAttempts=attempts - 1, MaxAttemptsReached=True)
        return http, parsed


def _split(operation: str, params: dict[str, Any], keep: int) -> tuple[dict[str, Any] | None, Any]:
    """The parameters with only the first `keep` requests (None when none is kept), and the
    requests withheld, in the shape the answer reports them in."""
    if operation == "BatchWriteItem":
        flat = [(t, r) for t, rs in params["RequestItems"].items() for r in rs]
        kept_items: dict[str, list[Any]] = {}
        withheld: dict[str, Any] = {}
        for i, (table, request) in enumerate(flat):
            (kept_items if i < keep else withheld).setdefault(table, []).append(request)
        return ({**params, "RequestItems": kept_items} if kept_items else None), withheld
    if operation == "BatchGetItem":
        flat = [(t, k) for t, spec in params["RequestItems"].items() for k in spec["Keys"]]
        kept_keys: dict[str, Any] = {}
        withheld = {}
        for i, (table, key) in enumerate(flat):
            spec = params["RequestItems"][table]
            target = kept_keys if i < keep else withheld
            target.setdefault(table, {**spec, "Keys": []})["Keys"].append(key)
        return ({**params, "RequestItems": kept_keys} if kept_keys else None), withheld
    entries = params["Entries"]  # the SQS batches
    failed = [
        {
            "Id": e["Id"],
            "SenderFault": False,
            "Code": "InternalError",
            "Message": "Injected: the service could not handle this entry",
        }
        for e in entries[keep:]
    ]
    return ({**params, "Entries": entries[:keep]} if keep > 0 else None), failed


def _merge_withheld(operation: str, parsed: dict[str, Any], withheld: Any) -> None:
    """Report the withheld requests in the answer, as AWS reports the ones it did not do."""
    if operation == "BatchWriteItem":
        unprocessed = parsed.setdefault("UnprocessedItems", {})
        for table, requests in withheld.items():
            unprocessed.setdefault(table, []).extend(requests)
    elif operation == "BatchGetItem":
        responses = parsed.setdefault("Responses", {})
        unprocessed = parsed.setdefault("UnprocessedKeys", {})
        for table, spec in withheld.items():
            responses.setdefault(table, [])
            unprocessed.setdefault(table, {**spec, "Keys": []})["Keys"].extend(spec["Keys"])
    else:
        parsed.setdefault("Successful", [])
        parsed.setdefault("Failed", []).extend(withheld)
