"""The way in: the authorizer's verdict on a token, then each route's scope and rate limit.

1. `Gate.authorize` runs in the authorizer (app.py). It never refuses outright: it returns
   the key's principal, or the reason it refused, as the context API Gateway passes to the
   route, so that every refusal is answered by the app in the API's error shape (401 with
   `WWW-Authenticate: Bearer`). API Gateway caches the context per token for
   keys.AUTHORIZER_TTL seconds. A request without any `Authorization` header never reaches
   the authorizer: API Gateway (or the local gateway) answers 401 itself, shaped the same way
   (infra.gateway.GATEWAY_RESPONSES).
2. `Gate.admit` runs in the route: 401 for a refused key, 403 for a missing scope, 429 past
   the key's rate limit; the rate headers go on every answer.

Rate limits fail open: when DynamoDB cannot count a request (throttled, down), the request
goes through, logged and counted as `RateLimitUnavailable`. Refusing every request because
the counter is unavailable would turn a counter outage into an API outage, and the stage's
API Gateway throttling still caps the total rate.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import NexusError, Unavailable
from chalicelib.observability import emit_metrics
from chalicelib.security.keys import (
    LAST_USED_EVERY,
    Principal,
    Scope,
    bearer_token,
    locate,
    verdict,
)
from chalicelib.store import Store
from chalicelib.store.ratelimit import Budget, Verdict

log = logging.getLogger("nexus.auth")


class RateLimited(NexusError):
    """HTTP 429, with Retry-After."""

    def __init__(self, verdict: Verdict, what: str) -> None:
        super().__init__(
            f"rate limit reached: {verdict.limit} {what} per window for this key; "
            f"retry in {verdict.reset_seconds} s"
        )
        self.verdict = verdict


class AuthUnavailable(Unavailable):
    """The key could not be checked (storage throttled or down): HTTP 503."""


def budget_for(principal: Principal, bucket: str) -> Budget:
    """`burst` requests per window of burst/rate seconds (store.ratelimit); `execute` runs at
    execute_rate a second, in windows of 2 s."""
    limit = principal.rate_limit
    if bucket == "execute":
        return Budget("execute", 2 * limit.execute_rate, 2.0)
    return Budget("api", limit.burst, limit.burst / limit.rate)


class Gate:
    def __init__(self, store: Store) -> None:
        self._store = store

    def authorize(self, header: str | None, now: datetime) -> dict[str, str]:
        """The authorizer's context for an `Authorization` header (all values strings)."""
        token = bearer_token(header)
        if token is None:
            return {"refused": "the Authorization header must be 'Bearer <API key>'"}
        located = locate(token)
        if located is None:
            return {"refused": "malformed API key (keys look like nxs_<id>_<secret>)"}
        key_id, secret = located
        try:
            key = self._store.keys.find(key_id)
        except (ClientError, BotoCoreError, Unavailable) as exc:
            log.warning("could not read an API key", extra={"key_id": key_id, "error": str(exc)})
            return {"unavailable": "the API key could not be checked just now; retry shortly"}
        found = verdict(key, secret, now)
        if isinstance(found, str):
            return {"refused": found}
        try:
            self._store.keys.touch(key_id, now, timedelta(seconds=LAST_USED_EVERY))
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not note the key's use", extra={"key_id": key_id, "error": str(exc)})
        return found.to_context()

    def admit(
        self, context: dict[str, object], scope: Scope, now: datetime, bucket: str = "api"
    ) -> tuple[Principal, Verdict | None]:
        """The principal, once its scope and rate are checked; the rate verdict, or None when
        it could not be counted (fail open)."""
        if context.get("unavailable"):
            raise AuthUnavailable(str(context["unavailable"]))
        principal = Principal.from_context(context)
        principal.require(scope)
        budget = budget_for(principal, bucket)
        try:
            counted = self._store.rates.take(principal.key_id, budget, now)
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "rate limit not counted (let through)",
                extra={"key_id": principal.key_id, "error": str(exc)},
            )
            emit_metrics({"RateLimitUnavailable": 1})
            return principal, None
        if not counted.allowed:
            emit_metrics({"RequestsThrottled": 1}, key_id=principal.key_id)
            raise RateLimited(counted, "requests" if bucket == "api" else "runs on demand")
        return principal, counted
