"""The embedded AWS (moto's server) in a process of its own, tied to the process that started it.

Run in the same process as the API, the tick and the workers, moto's request handling and
ours share one interpreter lock: measured with py-spy under the start-precision benchmark,
that process spent most of its samples in moto's request dispatch while runs queued up. In
a child process moto gets a core of its own.

Three of moto's costs grow with what it holds and are cut here, each measured under that
benchmark and each leaving moto's answers as they were (tests/unit/test_embedded_aws.py):
see cache_backend_names, cheap_retention_check and one_clock_read_per_scan.

moto does not apply a DynamoDB request atomically, as DynamoDB does; here each is answered
whole under one lock (serialise_dynamodb), and a transaction undoes only its own items
(transactions_copy_only_their_items). moto keeps what it no longer needs, so that its memory
grew with every request answered; forget_model_instances, forget_old_receipt_handles and
drop_empty_partitions bound it to what it holds. docs/local-stack.md has the figures.

The child prints `listening HOST:PORT` on its stdout once it answers, and ends when its stdin
closes: when the parent closes it, or when the parent dies for any reason, so no orphaned
server is left behind. It ignores SIGINT, SIGTERM and SIGHUP (a terminal, a process-group kill
or a process manager sends them to both processes), so the parent can still stop its engine
first while shutting down. Told to (save_on_exit), it keeps the table's file itself: it
journals every write before answering it (Journal), so even a SIGKILL to the whole group
loses no answered write, and it saves the table as it ends, once the stream's last changes
are counted (wait_for_quiet).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

READY = "listening "


def cache_backend_names() -> None:
    """moto's server lists its own package folder (a listdir and ~200 stats) on every request,
    inside a lock that every request takes: under the precision benchmark, half the server's
    samples waited on that lock. The folder does not change while it runs; list it once."""
    from moto import backends

    names = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(names)


def cheap_retention_check() -> None:
    """For each message it returns, moto's ReceiveMessage checks the queue's retention period
    by computing every attribute of the queue, counts of its messages included: work in
    proportion to the queue's depth, per message. With a minute of runs waiting in the queue
    as delayed messages (600 here), a receive of 10 took 630 ms. The period is read from the
    queue itself instead; moto's own check stays for a queue that lacks the field."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    original = SQSBackend.is_message_valid_based_on_retention_period

    def is_valid(self: Any, queue_name: str, message: Any) -> bool:
        period = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if period is None:
            return bool(original(self, queue_name, message))
        return bool(int(period) + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_valid  # type: ignore[method-assign]


def one_clock_read_per_scan() -> None:
    """moto finds a queue's visible messages by asking each message whether it is visible and
    not delayed, and each answer reads the clock through datetime: with 600 delayed messages
    an empty receive took 20 ms, and the local event source asks ten times a second. The
    same test, with the clock read once per scan."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Message, Queue

    probe = Message("probe", "")
    if not (hasattr(probe, "visible_at") and hasattr(probe, "delayed_until")):
        return  # a moto that keeps these differently: leave it as it is

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if m.visible_at < now and not now < m.delayed_until]

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]


def transactions_copy_only_their_items() -> None:
    """moto's TransactWriteItems deep-copies every table it names before it starts, to put
    the copy back if the transaction fails: 85 us per item in the table, on every
    transaction, so 0.4 s for each job created, changed or deleted with 5,000 runs kept, all
    of it under the lock that serialise_dynamodb adds. Under that lock nothing else writes
    during a transaction, so what it must undo is its own items alone: those are copied, and
    put back if it fails; the table is not. A table's change stream (the real-time events)
    loses the records the failed transaction had added, as it would have with moto's copy:
    a cancelled transaction is never seen as a change."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "copies_items_only", False):
        return
    if getattr(models, "copy", None) is not copy:
        raise RuntimeError("moto's DynamoDB backend no longer copies tables with copy.deepcopy")

    class CopyKeepingTables:
        """The copy module as moto's backend module sees it: a table's copy is itself."""

        copy = staticmethod(copy.copy)

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            if isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    def put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = []
        for entry in transact_items:
            try:
                op = next(iter(entry.values()))
                table = self.tables[op["TableName"]]
                hash_key, range_key = self.get_keys_value(table, op.get("Item") or op["Key"])
                item = table.get_item(hash_key, range_key)
            except Exception:
                continue  # moto finds it invalid too, and writes nothing for it
            before.append((table, hash_key, range_key, copy.deepcopy(item)))
        streams = {
            id(table): (table.stream_shard, len(table.stream_shard.items))
            for table, *_ in before
            if table.stream_shard is not None
        }
        # The stream's lock for the whole transaction: a reader of the stream sees all of its
        # records or none (bounded_streams).
        with STREAM_LOCK:
            try:
                original(self, transact_items)
            except BaseException:
                # Backwards, so that an item named twice ends as it was before the first.
                for table, hash_key, range_key, item in reversed(before):
                    put_back(table, hash_key, range_key, item)
                for shard, length in streams.values():
                    del shard.items[length:]
                raise

    transact_write_items.copies_items_only = True  # type: ignore[attr-defined]
    models.copy = CopyKeepingTables  # type: ignore[attr-defined,assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# How long DynamoDB keeps a TransactWriteItems' ClientRequestToken (its API reference).
TOKEN_SECONDS = 600.0


def transaction_tokens() -> None:
    """DynamoDB answers a TransactWriteItems made again with the same ClientRequestToken
    within 10 minutes as it answered the first, and writes nothing more (the same items; other
    items under a used token are refused with IdempotentParameterMismatchException). moto
    ignores the token and writes it again: the stream handler's count of a batch given to it
    twice (store.counters) would count twice. Tokens are kept here as DynamoDB keeps them."""
    import time
    from collections import OrderedDict

    from moto.core.responses import ActionResult
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.__dict__["transact_write_items"]
    if getattr(original, "keeps_tokens", False):
        return
    seen: OrderedDict[str, tuple[str, float]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(original)
    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        items = json.dumps(self.body["TransactItems"], sort_keys=True)
        now = time.monotonic()
        with lock:
            while seen and now - next(iter(seen.values()))[1] > TOKEN_SECONDS:
                seen.popitem(last=False)
            before = seen.get(token)
        if before is not None:
            if before[0] != items:
                raise DynamodbException(
                    ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                    "The request uses the same client token as a previous, but non-identical "
                    "request.",
                )
            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        out = original(self)
        with lock:
            seen[token] = (items, now)
        return out

    transact_write_items.keeps_tokens = True  # type: ignore[attr-defined]
    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]


def query_reads_its_partition() -> None:
    """moto answers a Query on the table itself (not an index) by walking every item of the
    table for those of the partition asked for: a job's history, a key, the WebSocket
    connections, each cost in proportion to everything stored, under the DynamoDB lock that
    every other request waits on. It reads the partition alone here (the items moto keeps by
    partition key), and answers as before (tests/unit/test_embedded_aws.py)."""
    import inspect

    from moto.dynamodb.models.table import Table

    original = Table.query
    if getattr(original, "reads_its_partition", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        if bound.arguments.get("index_name") is not None or hash_key is None:
            return original(self, *args, **kwargs)
        partition = self.items.get(hash_key)
        if self.range_key_attr is None:
            items = [partition] if partition is not None else []
        else:
            items = list(partition.values()) if partition else []
        self.all_items = lambda: iter(items)  # the call is serialised: nothing else sees it
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    query.reads_its_partition = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


# Change-stream records the embedded AWS keeps (DynamoDB keeps 24 hours of them): the local
# feed (local/realtime.py) reads them within a fraction of a second of each write.
STREAM_RECORDS_KEPT = 10_000
STREAM_LOCK = threading.RLock()


def bounded_streams() -> None:
    """moto keeps every change-stream record for ever, and every shard iterator it hands
    out (a new one per GetRecords, ten a second from the local feed): memory that grew with
    every write and every poll. The oldest records are dropped past STREAM_RECORDS_KEPT
    (their sequence numbers stay as they were), an iterator is forgotten once used, and a
    lock of the stream's own keeps GetRecords from slicing the records while a write trims
    them (not the DynamoDB lock: the feed would wait behind every write). An iterator behind
    the oldest record kept reads from the oldest one."""
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    original_add = StreamShard.add
    if getattr(original_add, "bounded", False):
        return

    @functools.wraps(original_add)
    def add(self: Any, old: Any, new: Any) -> None:
        with STREAM_LOCK:
            original_add(self, old, new)
            excess = len(self.items) - STREAM_RECORDS_KEPT
            if excess >= STREAM_RECORDS_KEPT // 10:  # in chunks: a trim moves the whole list
                del self.items[:excess]
                self.starting_sequence_number += excess

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        LAST_REQUEST[0] = time.monotonic()
        with STREAM_LOCK:
            iterator = self.shard_iterators.pop(iterator_arn)
            oldest = iterator.stream_shard.starting_sequence_number
            iterator.sequence_number = max(iterator.sequence_number, oldest)
            out: dict[str, Any] = iterator.get(limit)
            return out

    add.bounded = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]
    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


def forget_model_instances() -> None:
    """moto keeps every object of its models it ever made, in a list per class, for its web
    dashboard: every SQS message sent, the copy of it made for each receive, every DynamoDB
    item written, and the copy of every item each Scan, Query and update made, deleted or
    not. Nothing frees them, so the embedded AWS grew with every request it had answered: to
    12 GB in 15 minutes of fuzzing, when each transaction also copied its whole table. The
    objects are made as moto makes them, only not kept (nothing here reads the dashboard);
    those kept so far are let go."""
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign]
    reset_model_data()


# Receipt handles of deleted messages remembered per queue: see forget_old_receipt_handles.
DELETED_HANDLES_KEPT = 10_000


class RecentHandles:
    """The set of a queue's deleted receipt handles, holding only the latest `limit`."""

    def __init__(self, limit: int = DELETED_HANDLES_KEPT) -> None:
        self._handles: dict[str | None, None] = {}
        self._limit = limit

    def __contains__(self, handle: object) -> bool:
        return handle in self._handles

    def __len__(self) -> int:
        return len(self._handles)

    def update(self, handles: Iterable[str | None]) -> None:
        for handle in handles:
            self._handles.pop(handle, None)
            self._handles[handle] = None
        for stale in list(islice(self._handles, max(0, len(self._handles) - self._limit))):
            del self._handles[stale]


def forget_old_receipt_handles() -> None:
    """moto remembers every receipt handle of every message deleted from a queue, so that
    deleting one again succeeds as on SQS: 200 bytes per message, forever. A second delete
    comes seconds after the first (a batch's handler deleted what it finished, then the
    event source deletes the whole batch), so the latest DELETED_HANDLES_KEPT are enough."""
    from moto.sqs.models import Queue

    init = Queue.__init__
    if getattr(init, "bounded", False):
        return

    @functools.wraps(init)
    def bounded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if not isinstance(self.deleted_messages, set):
            raise RuntimeError("moto's SQS queue no longer keeps deleted handles in a set")
        self.deleted_messages = RecentHandles()

    bounded.bounded = True  # type: ignore[attr-defined]
    Queue.__init__ = bounded  # type: ignore[method-assign]


def drop_empty_partitions() -> None:
    """In a table with a sort key, moto keeps a dict of items per partition key, in a
    defaultdict: a GetItem of a key that does not exist adds an empty one, and deleting a
    partition's last item leaves its dict there. A 404 for a job that never was cost 350
    bytes, forever, and every Scan and Query walked past the empty dicts. Reads leave the
    partitions alone; a delete drops its partition's dict once empty."""
    from moto.dynamodb.models.table import Table

    get_item, delete_item = Table.get_item, Table.delete_item
    if getattr(get_item, "leaves_partitions", False):
        return

    @functools.wraps(get_item)
    def get(self: Any, hash_key: Any, range_key: Any = None, *args: Any, **kwargs: Any) -> Any:
        if self.has_range_key and range_key and hash_key not in self.items:
            return None
        return get_item(self, hash_key, range_key, *args, **kwargs)

    @functools.wraps(delete_item)
    def delete(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = delete_item(self, hash_key, range_key)
        if self.has_range_key and self.items.get(hash_key) == {}:
            del self.items[hash_key]
        return item

    get.leaves_partitions = True  # type: ignore[attr-defined]
    Table.get_item = get  # type: ignore[method-assign]
    Table.delete_item = delete  # type: ignore[method-assign]


# Every DynamoDB request the child answers holds this from start to finish: see
# serialise_dynamodb. SQS requests never take it.
DYNAMODB_LOCK = threading.RLock()
# When the last DynamoDB or stream request came (time.monotonic()): see wait_for_quiet.
LAST_REQUEST = [time.monotonic()]
# wait_for_quiet: this long without a request is quiet; never longer than QUIET_LIMIT in all.
QUIET_SECONDS = 0.5
QUIET_LIMIT = 5.0


def serialise_dynamodb() -> None:
    """Answer one DynamoDB request at a time, as if each were applied atomically.

    moto applies a request in steps with nothing between them and the next request's: read
    the item, test the condition, write it. Two conditional puts on one key could both pass,
    two `ADD`s creating one item could lose one, and a transaction (which deep-copies each
    table it names first, and on a failed condition puts the copy back) iterated the table
    while others wrote to it ("dictionary changed size during iteration", a 500) and, when it
    failed, wiped every write made meanwhile. DynamoDB applies each request atomically, so
    each is answered whole under one lock: the handler's call_action covers moto's work on
    the backend and the serialising of its answer, reads included, since a Query or Scan
    iterating a table that a write changes under it fails the same way. Parsing the request
    and writing the answer stay outside, so the lock is held for moto's work alone.

    Raises RuntimeError on a moto that routes DynamoDB elsewhere: running without the lock
    would look fine until the first race.
    """
    from moto.dynamodb import urls
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.__dict__.get("call_action")
    if not callable(call_action):
        raise RuntimeError("moto's DynamoHandler has no call_action of its own to serialise")
    if getattr(call_action, "serialised", False):
        return
    routed = {getattr(view, "__self__", None) for view in urls.url_paths.values()}
    if routed != {DynamoHandler}:
        raise RuntimeError(f"moto routes DynamoDB requests to {routed}, not DynamoHandler")

    @functools.wraps(call_action)
    def serialised(self: Any) -> Any:
        LAST_REQUEST[0] = time.monotonic()
        with DYNAMODB_LOCK:
            answer = call_action(self)
            if JOURNALS and answer[0] == 200:
                journal_write(self)
            return answer

    serialised.serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = serialised  # type: ignore[method-assign]


# -- what `make deploy` calls that moto lacks (README, "Deploying to AWS": the embedded AWS's gaps)


def import_swagger_2() -> None:
    """API Gateway's ImportRestApi and PutRestApi take Swagger 2.0, which `chalice deploy`
    sends; moto's take OpenAPI 3 only, and need `info.description`, which API Gateway does not.
    Here a Swagger 2.0 document is read as moto reads an OpenAPI 3 one: its `paths` (the
    resources and methods, the part of the document both versions write alike), with an empty
    description where it has none. Nothing else about the call changes."""
    from moto.apigateway.models import APIGatewayBackend

    def as_openapi_3(document: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in document.items() if k != "swagger"}
        if "swagger" in document:
            doc["openapi"] = "3.0.1"
        doc["info"] = {"description": "", **document.get("info", {})}
        return doc

    original_import = APIGatewayBackend.import_rest_api
    original_put = APIGatewayBackend.put_rest_api
    if getattr(original_import, "swagger_2", False):
        return

    @functools.wraps(original_import)
    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        return original_import(self, as_openapi_3(api_doc), fail_on_warnings)

    @functools.wraps(original_put)
    def put_rest_api(
        self: Any, function_id: str, api_doc: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        return original_put(self, function_id, as_openapi_3(api_doc), *args, **kwargs)

    import_rest_api.swagger_2 = True  # type: ignore[attr-defined]
    APIGatewayBackend.import_rest_api = import_rest_api  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = put_rest_api  # type: ignore[method-assign]


def cloudformation_table_settings() -> None:
    """moto's CloudFormation makes an AWS::DynamoDB::Table without its TimeToLiveSpecification
    and PointInTimeRecoverySpecification, and reads its SSESpecification by the API's key
    (`Enabled`) rather than CloudFormation's (`SSEEnabled`), so the table shows no encryption.
    Here the table is made with its encryption, then the two settings are applied as
    UpdateTimeToLive and UpdateContinuousBackups would."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    original = Table.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    if getattr(original, "applies_settings", False):
        return

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        if "SSEEnabled" in properties.get("SSESpecification", {}):
            sse = dict(properties["SSESpecification"])
            sse["Enabled"] = sse.pop("SSEEnabled") in (True, "true", "True")
            properties = {**properties, "SSESpecification": sse}
            cloudformation_json = {**cloudformation_json, "Properties": properties}
        table = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = dynamodb_backends[account_id][region_name]
        if ttl := properties.get("TimeToLiveSpecification"):
            backend.update_time_to_live(table.name, ttl)
        if pitr := properties.get("PointInTimeRecoverySpecification"):
            backend.update_continuous_backups(table.name, pitr)
        return table

    create.applies_settings = True  # type: ignore[attr-defined]
    Table.create_from_cloudformation_json = classmethod(create)  # type: ignore[assignment]


def cloudformation_alarms() -> None:
    """moto's CloudFormation has no AWS::CloudWatch::Alarm: it warns and makes nothing. Here a
    stack's alarm is made and deleted as PutMetricAlarm and DeleteAlarms would, with the
    properties nexus.yaml gives (a single metric, a statistic or an extended one)."""
    from moto.cloudformation import parsing
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel

    if "AWS::CloudWatch::Alarm" in parsing.get_model_map():
        return

    def number(value: Any) -> int | None:
        return None if value is None else int(value)

    class StackAlarm(CloudFormationModel):
        # moto's model metaclass names a model's service from the second part of its module.
        __module__ = "local.aws_process"

        def __init__(self, name: str) -> None:
            self.name = name

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> StackAlarm:
            p = cloudformation_json["Properties"]
            cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                datapoints_to_alarm=number(p.get("DatapointsToAlarm")),
                period=number(p.get("Period")),
                threshold=float(p["Threshold"]),
                statistic=p.get("Statistic"),
                extended_statistic=p.get("ExtendedStatistic"),
                description=p.get("AlarmDescription"),
                dimensions=p.get("Dimensions", []),
                alarm_actions=p.get("AlarmActions", []),
                ok_actions=p.get("OKActions", []),
                treat_missing_data=p.get("TreatMissingData"),
                unit=p.get("Unit"),
            )
            return cls(resource_name)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[override]
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
        ) -> StackAlarm:
            cloudwatch_backends[account_id][region_name].delete_alarms([original_resource.name])
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[override]
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


def websocket_deployments() -> None:
    """moto's API Gateway v2 has no CreateDeployment, which `chalice deploy` calls to deploy
    the WebSocket API. Here it answers as API Gateway does (201, a new deploymentId, status
    DEPLOYED) and keeps nothing: moto's WebSocket APIs serve no connections to deploy to."""
    from moto.apigatewayv2 import urls
    from moto.apigatewayv2.responses import ApiGatewayV2Response

    route = "{0}/v2/apis/(?P<api_id>[^/]+)/deployments$"
    if route in urls.url_paths:
        return

    def create_deployment(self: Any) -> tuple[int, dict[str, str], str]:
        deployment = {"deploymentId": os.urandom(5).hex(), "deploymentStatus": "DEPLOYED"}
        return 201, {}, json.dumps(deployment)

    urls.url_paths[route] = ApiGatewayV2Response.dispatch
    ApiGatewayV2Response.create_deployment = create_deployment  # type: ignore[attr-defined]


def _file_json(value: dict[str, Any]) -> dict[str, Any]:
    """A value as local/state.py's files hold it (DynamoDB JSON, binary as base64): the same
    encoding as state.encode_item, which this process does not import (it would load the
    whole app for twenty lines)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {"M": {k: _file_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_file_json(v) for v in inner]}
    return value


def table_lines(table_name: str) -> list[str] | None:
    """Every item of the table, one line each as state.encode_item writes them, read under
    the DynamoDB lock: the table at one instant. None if no account or region has it."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.utilities import dynamo_to_dict

    with DYNAMODB_LOCK:
        for regions in list(dynamodb_backends.values()):
            for backend in list(regions.values()):
                table = backend.tables.get(table_name)
                if table is None:
                    continue
                return [
                    json.dumps(
                        {k: _file_json(v) for k, v in dynamo_to_dict(item.attrs).items()},
                        sort_keys=True,
                    )
                    for item in table.all_items()
                ]
    return None


def write_lines(lines: list[str], target: Path) -> None:
    """`lines` to `target`, whole or not at all (a temporary file, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- the journal: every write acknowledged since the table was last saved ------------------

# The writes the journal records, by the keys they name.
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
# A journal this long is folded into the table's file (Journal.compact).
JOURNAL_LIMIT = 8 * 1024 * 1024


def journal_files(target: Path) -> list[Path]:
    """The journals of the table saved to `target`, oldest first."""
    found = target.parent.glob(f"{target.name}.journal.*")
    return sorted((p for p in found if p.suffix[1:].isdigit()), key=journal_number)


def journal_number(path: Path) -> int:
    return int(path.suffix[1:])


class Journal:
    """What each write this process acknowledged on a table left behind, appended to a file
    before the write is answered: a line per item it named, `{"key": ..., "item": ...}`
    (`item` null once deleted), in DynamoDB JSON as state.encode_item writes items.

    The table's file and its journals are the table: state.restore reads the file, then the
    journals in order, each line the item's state after a write. So a kill of the whole
    process group (SIGKILL), which gives no process the time to save, loses no write that
    was answered: the lines are in the kernel's hands before the answer goes out (a machine
    that goes down can still lose its last writes: nothing is synced to the disk).

    compact() saves the table (the whole of it, under the DynamoDB lock) and starts a new
    journal; the ones before are removed once the file is written."""

    def __init__(self, table_name: str, target: Path) -> None:
        self.table_name = table_name
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        existing = journal_files(target)
        self._number = journal_number(existing[-1]) + 1 if existing else 1
        self._file = self._open()
        self._written = 0
        self._compacting = threading.Lock()

    def _open(self) -> Any:
        self._path = self.target.parent / f"{self.target.name}.journal.{self._number}"
        return self._path.open("a", encoding="utf-8")

    def write(self, lines: list[str]) -> None:
        """Under the DynamoDB lock."""
        text = "".join(line + "\n" for line in lines)
        self._file.write(text)
        self._file.flush()
        self._written += len(text)
        if self._written > JOURNAL_LIMIT and not self._compacting.locked():
            threading.Thread(target=self.compact, daemon=True).start()

    def compact(self) -> None:
        """Fold the journals into the table's file."""
        with self._compacting:
            with DYNAMODB_LOCK:
                lines = table_lines(self.table_name)
                self._file.close()
                done = self._number
                self._number += 1
                self._file = self._open()
                self._written = 0
            if lines is None:
                return
            write_lines(lines, self.target)
            for old in journal_files(self.target):
                if journal_number(old) <= done:
                    old.unlink(missing_ok=True)

    def close(self) -> None:
        """At the end, once compacted: the journal begun since, empty, goes too."""
        with DYNAMODB_LOCK:
            self._file.close()
            if self._written == 0:
                self._path.unlink(missing_ok=True)


JOURNALS: dict[str, Journal] = {}


def _named_keys(operation: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key or whole item) of each item a write names."""
    if operation == "PutItem":
        return [(request["TableName"], request["Item"])]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(request["TableName"], request["Key"])]
    if operation == "BatchWriteItem":
        return [
            (table, (r.get("PutRequest") or {}).get("Item") or r["DeleteRequest"]["Key"])
            for table, requests in request["RequestItems"].items()
            for r in requests
        ]
    named = []
    for entry in request.get("TransactItems", []):
        for kind, body in entry.items():
            if kind in ("Put", "Update", "Delete"):
                named.append((body["TableName"], body.get("Item") or body["Key"]))
    return named


def journal_write(handler: Any) -> None:
    """Journal what an answered write left on the tables that have a journal (under the
    DynamoDB lock, before the answer goes out)."""
    from moto.dynamodb.models.utilities import dynamo_to_dict

    operation = handler._get_action()
    if operation not in WRITES:
        return
    body = handler.body  # moto's DynamoHandler has parsed it already
    request = body if isinstance(body, dict) else json.loads(body)
    lines: dict[str, list[str]] = {}
    for table_name, named in _named_keys(operation, request):
        journal = JOURNALS.get(table_name)
        if journal is None:
            continue
        table = handler.dynamodb_backend.get_table(table_name)
        key = {a: named[a] for a in (table.hash_key_attr, table.range_key_attr) if a}
        found = handler.dynamodb_backend.get_item(table_name, key)
        item = None
        if found is not None:
            item = {k: _file_json(v) for k, v in dynamo_to_dict(found.attrs).items()}
        lines.setdefault(table_name, []).append(
            json.dumps({"key": key, "item": item}, sort_keys=True)
        )
    for table_name, written in lines.items():
        JOURNALS[table_name].write(written)


def wait_for_quiet(quiet: float = QUIET_SECONDS, limit: float = QUIET_LIMIT) -> float:
    """Wait until no DynamoDB or stream request has come for `quiet` seconds, at most
    `limit`; how long it waited.

    For a parent killed outright: its stdin closes, and so does the real-time process's,
    whose feed then hands what the stream still holds to the stream handler, which counts
    the runs it finishes. Saved before that, a run finished in the feed's last poll before
    the kill was in the history but not in the stats, and the feed found no AWS to read."""
    started = time.monotonic()
    while (now := time.monotonic()) - started < limit:
        idle = now - LAST_REQUEST[0]
        if idle >= quiet:
            break
        time.sleep(quiet - idle)
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    # A terminal's Ctrl-C, a process-group kill and a closed terminal reach this process as
    # well as its parent; the parent stops its engine first, so this one waits for its
    # stdin to close.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)

    from moto.server import ThreadedMotoServer

    # moto's server logs every AWS call it answers; the API's own request log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    cache_backend_names()
    cheap_retention_check()
    one_clock_read_per_scan()
    serialise_dynamodb()
    transactions_copy_only_their_items()
    forget_model_instances()
    forget_old_receipt_handles()
    drop_empty_partitions()
    bounded_streams()
    query_reads_its_partition()
    transaction_tokens()
    import_swagger_2()
    websocket_deployments()
    cloudformation_table_settings()
    cloudformation_alarms()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    print(f"{READY}{bound_host}:{bound_port}", flush=True)
    # Whatever moto prints from now on goes to the parent's stderr, not into a pipe that
    # nobody reads.
    os.dup2(2, 1)
    # The parent names, once the table holds what its file and journals held, where the
    # table is kept. From then on every write to it is journaled (Journal) before it is
    # answered, and the journals the restore read are folded into the file at once; when
    # this process ends (its stdin closes: the parent stopped, or died) it saves the table.
    # Not before the restore, or a parent stopped while restoring would leave a
    # half-restored table over the whole file.
    try:
        for line in sys.stdin:
            order = json.loads(line)
            journal = Journal(order["save"], Path(order["to"]))
            with DYNAMODB_LOCK:
                JOURNALS[journal.table_name] = journal
            journal.compact()
    finally:
        if JOURNALS:
            wait_for_quiet()
        for journal in list(JOURNALS.values()):
            try:
                journal.compact()
                journal.close()
            except Exception:
                logging.exception("saving %s at exit failed", journal.table_name)
        server.stop()
    return 0


class EmbeddedAws:
    """Start the child; `endpoint` is its URL once start() returns."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self) -> EmbeddedAws:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self._host, str(self._port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError(f"the embedded AWS did not start (it printed {line!r})")
        self.endpoint = f"http://{line[len(READY) :].strip()}"
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the embedded AWS is not running")
        return self._proc.pid

    def save_on_exit(self, table_name: str, target: Path) -> None:
        """Have the child keep the table at `target` (as state.snapshot writes it) and its
        journals, however its parent ends: call it once the table holds what they held."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the embedded AWS is not running")
        order = {"save": table_name, "to": str(Path(target).resolve())}
        self._proc.stdin.write(json.dumps(order) + "\n")
        self._proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
