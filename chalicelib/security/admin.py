"""Making, listing and revoking API keys, and the audit trail's entries."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import FieldError, InvalidInput
from chalicelib.security.keys import (
    Actor,
    ApiKey,
    KeyCreate,
    RateLimit,
    hash_secret,
    locate,
    new_key,
)
from chalicelib.store import Store
from chalicelib.store.audit import AuditEntry


class AuditQuery(BaseModel):
    # Built on first validation (defer_build): the API's first GET or POST /v1/jobs never
    # reads the audit trail, so its import path does not build this (bench/cold_start.py).
    model_config = ConfigDict(extra="ignore", defer_build=True)

    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=2000)


# Audit entries are kept this long (DynamoDB's TTL removes them after).
AUDIT_RETENTION = timedelta(days=400)


def audit_entry(
    action: str,
    now: datetime,
    actor: Actor,
    *,
    job_id: int | None = None,
    key_id: str | None = None,
    changes: dict[str, Any] | None = None,
    execution_id: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        id=secrets.token_hex(6),
        at=now,
        action=action,
        job_id=job_id,
        key_id=key_id,
        actor_key_id=actor.key_id,
        actor_key_name=actor.key_name,
        source_ip=actor.source_ip,
        changes=changes,
        execution_id=execution_id,
        expires_at=now + AUDIT_RETENTION,
    )


class KeyService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def create_key(self, request: KeyCreate, actor: Actor | None, now: datetime) -> dict[str, Any]:
        """A new key; the answer carries the whole key, this once only."""
        if request.expires_at is not None and request.expires_at <= now:
            raise InvalidInput(
                [FieldError(("body", "expires_at"), "must be in the future", "value_error.expired")]
            )
        key_id, text, digest = new_key()
        key = ApiKey(
            id=key_id,
            name=request.name,
            scopes=sorted(set(request.scopes)),
            secret_hash=digest,
            created_at=now,
            expires_at=request.expires_at,
            rate_limit=request.rate_limit,
            created_by_key=actor.key_id if actor else None,
        )
        also = [] if actor is None else [self._put_audit("key.create", now, actor, key_id)]
        self._store.keys.create(key, also)
        return {**key.to_api(), "key": text}

    def list_keys(self) -> list[ApiKey]:
        return self._store.keys.list()

    def revoke_key(self, key_id: str, actor: Actor | None, now: datetime) -> None:
        also = [] if actor is None else [self._put_audit("key.revoke", now, actor, key_id)]
        self._store.keys.revoke(key_id, now, also)

    def ensure_key(self, token: str, name: str, now: datetime) -> ApiKey:
        """Store `token` as an admin key unless it is stored already (make run's bootstrap
        key, NEXUS_ADMIN_KEY or the one it made). A revoked bootstrap key stays revoked."""
        located = locate(token)
        if located is None:
            raise ValueError(
                "an admin key must be a nxs_ key or 24-256 printable characters without spaces"
            )
        key_id, secret = located
        existing = self._store.keys.find(key_id)
        if existing is not None:
            return existing
        key = ApiKey(
            id=key_id,
            name=name,
            scopes=["keys:admin"],
            secret_hash=hash_secret(secret),
            created_at=now,
            rate_limit=RateLimit(rate=1000, burst=2000, execute_rate=100),
        )
        self._store.keys.create(key)
        return key

    def _put_audit(self, action: str, now: datetime, actor: Actor, key_id: str) -> dict[str, Any]:
        return self._store.audit.put(audit_entry(action, now, actor, key_id=key_id))
