"""The WebSocket API: connect (with an API key), subscribe, unsubscribe, disconnect.

The same code answers API Gateway's WebSocket events deployed and make run's local endpoint
(local/realtime.py), which builds the same events. Each takes the raw event (requestContext,
headers, queryStringParameters, body) and answers `{"statusCode": N}`: at connect anything
but 200 refuses the connection (API Gateway answers the handshake with that status).

The key comes as the query parameter `token` (browsers cannot set a WebSocket's headers) or
an `Authorization: Bearer` header. It is never logged: nothing here logs the event, and the
local endpoint logs no request line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter, ValidationError

from chalicelib.errors import NexusError
from chalicelib.models import Instant
from chalicelib.realtime import replay
from chalicelib.realtime.fanout import Gone, Sender
from chalicelib.security.gate import AuthUnavailable, Gate, RateLimited
from chalicelib.security.keys import Forbidden, NotAuthenticated
from chalicelib.store import Store
from chalicelib.store.connections import ALL, Connection
from chalicelib.timefmt import iso

log = logging.getLogger(__name__)

MAX_JOB_IDS = 1_000
# How far back a reconnecting client may ask to be told what it missed.
MAX_REPLAY_AGE = timedelta(hours=24)
MAX_MESSAGE_BYTES = 16 * 1024


@functools.cache
def _instant() -> TypeAdapter[Any]:
    """Built at the first `since` (25 ms at import: the API's cold start pays for imports)."""
    return TypeAdapter(Instant)


ACTIONS = ("subscribe", "unsubscribe", "ping")


class BadMessage(ValueError):
    pass


def callback_endpoint(context: dict[str, Any]) -> str:
    """Where post_to_connection reaches this connection: the stage's management endpoint, or
    make run's (NEXUS_WS_CALLBACK_URL)."""
    local = os.environ.get("NEXUS_WS_CALLBACK_URL")
    if local:
        return local
    return f"https://{context['domainName']}/{context['stage']}"


def presented_key(event: dict[str, Any]) -> str | None:
    query = event.get("queryStringParameters") or {}
    token = query.get("token")
    if token:
        return f"Bearer {token}"
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    value = headers.get("authorization")
    return str(value) if value else None


def _refuse(status: int, detail: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"detail": detail}),
    }


class Sockets:
    def __init__(self, store: Store, gate: Gate, sender: Sender) -> None:
        self._store = store
        self._gate = gate
        self._sender = sender

    def connect(self, event: dict[str, Any], now: datetime) -> dict[str, Any]:
        context = event["requestContext"]
        authorization = presented_key(event)
        if authorization is None:
            return _refuse(
                401, "send an API key with jobs:read: ?token=<key> or Authorization: Bearer"
            )
        verdict = self._gate.authorize(authorization, now)
        try:
            principal, _ = self._gate.admit(dict(verdict), "jobs:read", now)
        except NotAuthenticated as exc:
            return _refuse(401, str(exc))
        except Forbidden as exc:
            return _refuse(403, str(exc))
        except RateLimited as exc:
            return _refuse(429, str(exc))
        except AuthUnavailable as exc:
            return _refuse(503, str(exc))
        self._store.connections.open(
            context["connectionId"], callback_endpoint(context), principal.key_id, now
        )
        return {"statusCode": 200}

    def disconnect(self, event: dict[str, Any], now: datetime) -> dict[str, Any]:
        self._store.connections.close(event["requestContext"]["connectionId"])
        return {"statusCode": 200}

    def message(self, event: dict[str, Any], now: datetime) -> dict[str, Any]:
        connection_id = event["requestContext"]["connectionId"]
        conn = self._store.connections.get(connection_id)
        if conn is None:
            return {"statusCode": 410}
        try:
            action, jobs, since = parse(event.get("body"))
            if since is not None and since < now - MAX_REPLAY_AGE:
                raise BadMessage("since: at most 24 hours ago; reload the state over the REST API")
        except BadMessage as exc:
            self._reply(conn, {"type": "error", "detail": str(exc), "time": iso(now)})
            return {"statusCode": 200}
        if action == "ping":
            self._reply(conn, {"type": "pong", "time": iso(now)})
            return {"statusCode": 200}
        assert jobs is not None
        if action == "unsubscribe":
            updated = self._store.connections.unsubscribe(connection_id, jobs)
        else:
            updated = self._store.connections.subscribe(connection_id, jobs)
        if updated is None:
            return {"statusCode": 410}
        kind = "subscribed" if action == "subscribe" else "unsubscribed"
        self._reply(updated, {"type": kind, "jobs": updated.subscription, "time": iso(now)})
        if action == "subscribe" and since is not None:
            self._replay(updated, jobs, since, now)
        return {"statusCode": 200}

    def _replay(
        self, conn: Connection, jobs: str | list[int], since: datetime, now: datetime
    ) -> None:
        try:
            events, truncated = replay.since(self._store, jobs, since, now)
        except (ClientError, BotoCoreError, NexusError) as exc:
            log.warning("replay failed", extra={"error": str(exc)})
            self._reply(
                conn,
                {
                    "type": "error",
                    "detail": "the replay could not be read; subscribe again",
                    "time": iso(now),
                },
            )
            return
        for event in events:
            if not self._send(conn, event.to_json()):
                return
        self._reply(
            conn,
            {"type": "replay.done", "count": len(events), "truncated": truncated, "time": iso(now)},
        )

    def _reply(self, conn: Connection, body: dict[str, Any]) -> None:
        self._send(conn, json.dumps(body, separators=(",", ":")))

    def _send(self, conn: Connection, text: str) -> bool:
        try:
            self._sender.send(conn, text)
        except Gone:
            self._store.connections.close(conn.id)
            return False
        except (ClientError, BotoCoreError) as exc:
            log.warning("reply not sent", extra={"connection_id": conn.id, "error": str(exc)})
            return False
        return True


def parse(body: Any) -> tuple[str, str | list[int] | None, datetime | None]:
    """(action, jobs, since) of a client's message; BadMessage saying what is wrong."""
    if not isinstance(body, str) or not body.strip():
        raise BadMessage('send a JSON object, e.g. {"action": "subscribe", "jobs": "*"}')
    if len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"a message is at most {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadMessage("the message is not JSON") from None
    if not isinstance(data, dict):
        raise BadMessage('send a JSON object, e.g. {"action": "subscribe", "jobs": "*"}')
    action = data.get("action")
    if action not in ACTIONS:
        raise BadMessage(f"action: must be one of {', '.join(ACTIONS)}")
    unknown = sorted(set(data) - {"action", "jobs", "since"})
    if unknown:
        raise BadMessage(f"unknown field(s): {', '.join(unknown)}; accepted: action, jobs, since")
    if action == "ping":
        return action, None, None
    jobs = data.get("jobs")
    if jobs != ALL:
        if not isinstance(jobs, list) or not jobs or any(type(j) is not int or j < 1 for j in jobs):
            raise BadMessage('jobs: "*" or a non-empty list of job ids (positive integers)')
        if len(jobs) > MAX_JOB_IDS:
            raise BadMessage(f"jobs: at most {MAX_JOB_IDS} ids")
    since = None
    if "since" in data:
        if action != "subscribe":
            raise BadMessage("since: only with subscribe")
        try:
            since = _instant().validate_python(data["since"])
        except ValidationError:
            raise BadMessage(
                "since: an ISO 8601 instant with a zone, e.g. 2026-11-26T17:00:00Z"
            ) from None
    return action, jobs, since
