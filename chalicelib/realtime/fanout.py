"""The stream handler's work: each batch of table changes, as events, to whoever listens.

A batch is read once: its events, then the connections (one Query), then each connection
gets the events it subscribed to, in the stream's order, through the WebSocket API's
management API (`post_to_connection`). A connection API Gateway says is gone is deleted.
A send that fails otherwise is logged and the batch goes on: raising would make Lambda
retry the whole batch and send every other listener its events twice.

The listeners are read with a Query at most once a second (CONNECTIONS_FRESH); in between,
the batch's own connection records (connect, subscribe, disconnect) keep the list current, in
the stream's order, so a subscription recorded before a change hears of it. (On make run a
Query per batch waited behind the periodic snapshot's Scan: the delivery p99 went over 2 s.)
With a stream of several shards, a subscription recorded on another shard is seen within the
second.

`stats.changed` goes out at most once a second from one handler (one per stream shard on
AWS, the one poller on make run): a change inside the second is held and sent with the first
batch after it, with the figures as they are then. The figures are read only when a listener
is subscribed: a table that changes every second would otherwise pay a read of the counters
(COUNTER_SHARDS items) and an SQS request each second, listened to or not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.observability import emit_metrics
from chalicelib.realtime.events import Event, Revoked, from_records
from chalicelib.store.connections import (
    CONNECTIONS,
    Connection,
    ConnectionStore,
    connection_from_item,
)

log = logging.getLogger(__name__)

STATS_EVERY = timedelta(seconds=1)
CONNECTIONS_FRESH = timedelta(seconds=1)
# Connections sent to at once: each send is one HTTPS request to the management API.
SEND_CONCURRENCY = 8


class Gone(Exception):
    """The connection is closed: API Gateway answered GoneException (410)."""


class Sender:
    """post_to_connection / delete_connection on a connection's own endpoint."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for

    def send(self, conn: Connection, text: str) -> None:
        client = self._client_for(conn.endpoint)
        try:
            client.post_to_connection(ConnectionId=conn.id, Data=text.encode("utf-8"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("GoneException", "410"):
                raise Gone(conn.id) from exc
            raise

    def close(self, conn: Connection) -> None:
        client = self._client_for(conn.endpoint)
        try:
            client.delete_connection(ConnectionId=conn.id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("GoneException", "410"):
                raise


@dataclass
class Report:
    events: int = 0
    sent: int = 0
    gone: int = 0
    failed: int = 0
    closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Fanout:
    def __init__(
        self,
        connections: ConnectionStore,
        sender: Sender,
        stats: Callable[[datetime], dict[str, Any]],
    ) -> None:
        self._connections = connections
        self._sender = sender
        self._stats = stats
        self._stats_sent_at: datetime | None = None
        self._stats_held = False
        self._listeners: dict[str, Connection] = {}
        self._listed_at: datetime | None = None

    def handle(self, records: list[dict[str, Any]], now: datetime) -> Report:
        report = Report()
        found = from_records(records, now)
        events = [e for e in found if isinstance(e, Event) and e.type != "stats.changed"]
        revoked = {e.key_id for e in found if isinstance(e, Revoked)}
        if any(isinstance(e, Event) and e.type == "stats.changed" for e in found):
            self._stats_held = True
        self._follow(records)
        if events or revoked:
            listeners = self._current(now)
            if revoked:
                listeners = self._close_revoked(listeners, revoked, report)
            self._send(events, listeners, report)
        # After the batch's own events: reading the figures must not hold them up.
        stats = self._stats_event(now)
        if stats is not None:
            self._send([stats], self._current(now), report)
        if report.events:
            emit_metrics(
                {
                    "RealtimeEvents": report.events,
                    "RealtimeSent": report.sent,
                    "RealtimeSendFailures": report.failed,
                }
            )
        return report

    def _send(self, events: list[Event], listeners: list[Connection], report: Report) -> None:
        report.events += len(events)
        texts = [(e, e.to_json()) for e in events]  # once per event, not per listener
        work = [(c, [t for e, t in texts if c.wants(e.job_id)]) for c in listeners]
        work = [(c, evs) for c, evs in work if evs]
        if not work:
            return
        if len(work) == 1:
            outcomes = [self._deliver(*work[0])]
        else:
            with ThreadPoolExecutor(min(SEND_CONCURRENCY, len(work))) as pool:
                outcomes = list(pool.map(lambda job: self._deliver(*job), work))
        for sent, outcome in outcomes:
            report.sent += sent
            report.gone += outcome == "gone"
            report.failed += outcome == "failed"

    def _follow(self, records: list[dict[str, Any]]) -> None:
        """The batch's connection records, applied to the list in the stream's order."""
        for record in records:
            change = record.get("dynamodb") or {}
            keys = change.get("Keys") or {}
            if (keys.get("pk") or {}).get("S") != CONNECTIONS:
                continue
            connection_id = (keys.get("sk") or {}).get("S", "")
            new = change.get("NewImage")
            if new is None:
                self._listeners.pop(connection_id, None)
            else:
                self._listeners[connection_id] = connection_from_item(new)

    def _current(self, now: datetime) -> list[Connection]:
        if self._listed_at is None or not (
            timedelta(0) <= now - self._listed_at < CONNECTIONS_FRESH
        ):
            self._listeners = {c.id: c for c in self._connections.all(now)}
            self._listed_at = now
        return [c for c in self._listeners.values() if c.expires_at > now]

    def _forget(self, connection_id: str) -> None:
        self._listeners.pop(connection_id, None)

    def _stats_event(self, now: datetime) -> Event | None:
        if not self._stats_held:
            return None
        if self._stats_sent_at is not None and now - self._stats_sent_at < STATS_EVERY:
            return None  # held: the first batch after the second sends it
        if not any(c.wants(None) for c in self._current(now)):
            # Held for whoever subscribes: with nobody to tell, the figures are not read (a
            # read of every counter shard and an SQS request, each second the table changes).
            return None
        try:
            overview = self._stats(now)
        except (ClientError, BotoCoreError) as exc:
            log.warning("stats not read for stats.changed", extra={"error": str(exc)})
            return None
        self._stats_held = False
        self._stats_sent_at = now
        return Event("stats.changed", None, now, overview)

    def _close_revoked(
        self, listeners: list[Connection], revoked: set[str], report: Report
    ) -> list[Connection]:
        keep = []
        for conn in listeners:
            if conn.key_id not in revoked:
                keep.append(conn)
                continue
            try:
                self._sender.close(conn)
                self._connections.close(conn.id)
                self._forget(conn.id)
                report.closed += 1
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not close a revoked key's connection", extra={"error": str(exc)})
        return keep

    def _deliver(self, conn: Connection, texts: list[str]) -> tuple[int, str]:
        """Events to one connection, in order; (how many were sent, "ok" | "gone" | "failed").
        The rest of its events are not sent after a failure, so none arrives out of order."""
        for sent, text in enumerate(texts):
            try:
                self._sender.send(conn, text)
            except Gone:
                self._forget(conn.id)
                try:
                    self._connections.close(conn.id)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("gone connection not removed", extra={"error": str(exc)})
                return sent, "gone"
            except (ClientError, BotoCoreError) as exc:
                log.warning("event not sent", extra={"connection_id": conn.id, "error": str(exc)})
                return sent, "failed"
        return len(texts), "ok"
