"""The stream handler's work: each batch of table changes, as events, to whoever listens.

A batch is read once: its events, then the connections (one Query), then each connection
gets the events it subscribed to, in the stream's order, through the WebSocket API's
management API (`post_to_connection`). A connection API Gateway says is gone is deleted.
A send that fails otherwise is logged and the batch goes on: raising would make Lambda
retry the whole batch and send every other listener its events twice.

`stats.changed` goes out at most once a second from one handler (one per stream shard on
AWS, the one poller on make run): a change inside the second is held and sent with the first
batch after it, with the figures as they are then.
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
from chalicelib.store.connections import Connection, ConnectionStore

log = logging.getLogger(__name__)

STATS_EVERY = timedelta(seconds=1)
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

    def handle(self, records: list[dict[str, Any]], now: datetime) -> Report:
        report = Report()
        found = from_records(records, now)
        events = [e for e in found if isinstance(e, Event) and e.type != "stats.changed"]
        revoked = {e.key_id for e in found if isinstance(e, Revoked)}
        if any(isinstance(e, Event) and e.type == "stats.changed" for e in found):
            self._stats_held = True
        stats = self._stats_event(now)
        if stats is not None:
            events.append(stats)
        report.events = len(events)
        if not events and not revoked:
            return report
        listeners = self._connections.all(now)
        if revoked:
            listeners = self._close_revoked(listeners, revoked, report)
        texts = [(e, e.to_json()) for e in events]  # once per event, not per listener
        work = [(c, [t for e, t in texts if c.wants(e.job_id)]) for c in listeners]
        work = [(c, evs) for c, evs in work if evs]
        if not work:
            return report
        if len(work) == 1:
            outcomes = [self._deliver(*work[0])]
        else:
            with ThreadPoolExecutor(min(SEND_CONCURRENCY, len(work))) as pool:
                outcomes = list(pool.map(lambda job: self._deliver(*job), work))
        for sent, outcome in outcomes:
            report.sent += sent
            report.gone += outcome == "gone"
            report.failed += outcome == "failed"
        emit_metrics(
            {
                "RealtimeEvents": report.events,
                "RealtimeSent": report.sent,
                "RealtimeSendFailures": report.failed,
            }
        )
        return report

    def _stats_event(self, now: datetime) -> Event | None:
        if not self._stats_held:
            return None
        if self._stats_sent_at is not None and now - self._stats_sent_at < STATS_EVERY:
            return None  # held: the first batch after the second sends it
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
                try:
                    self._connections.close(conn.id)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("gone connection not removed", extra={"error": str(exc)})
                return sent, "gone"
            except (ClientError, BotoCoreError) as exc:
                log.warning("event not sent", extra={"connection_id": conn.id, "error": str(exc)})
                return sent, "failed"
        return len(texts), "ok"
