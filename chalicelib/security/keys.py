"""API keys: their format, their hash, their scopes, and who a request is.

A key reads `nxs_<id>_<secret>`: `nxs_<id>` is its visible prefix (safe to quote to support,
shown in lists and the audit trail), the secret is 256 random bits. Only the SHA-256 of the
secret is stored: the secret is high-entropy, so a fast hash is enough (nothing to guess at
by brute force), and it is compared in constant time. The whole key is shown once, in the
answer to its creation.

The authorizer (app.py) turns a bearer token into a `Principal` or a reason to refuse; API
Gateway caches that verdict per token for AUTHORIZER_TTL seconds, so a revoked or expired key
stops working within that time. Each route then asks for its scope (`Principal.require`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.errors import NexusError
from chalicelib.security import AUTHORIZER_TTL as AUTHORIZER_TTL

Scope = Literal["jobs:read", "jobs:write", "jobs:execute", "keys:admin"]
SCOPES: tuple[Scope, ...] = ("jobs:read", "jobs:write", "jobs:execute", "keys:admin")
# last_used_at is written at most this often per key.
LAST_USED_EVERY = 60

PREFIX = "nxs_"
_KEY = re.compile(r"^nxs_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


class RateLimit(BaseModel):
    """Requests a key may make: `rate` a second on average with bursts of `burst`; runs
    started on demand (POST .../execute) are counted apart, `execute_rate` a second."""

    model_config = ConfigDict(extra="forbid")

    # Strict: JSON's true is not 1 (schemathesis sent `"rate": true` and got a 201).
    rate: int = Field(20, ge=1, le=10_000, strict=True)
    burst: int = Field(40, ge=1, le=20_000, strict=True)
    execute_rate: int = Field(2, ge=1, le=1_000, strict=True)


class KeyCreate(BaseModel):
    # Built on first validation (defer_build): the API's first GET or POST /v1/jobs never
    # creates a key, so its import path does not build this (bench/cold_start.py).
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    expires_at: datetime | None = None
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at needs a UTC offset, e.g. 2027-01-01T00:00:00Z")
        return value


class ApiKey(BaseModel):
    """A key as stored: never its secret, only the secret's hash."""

    id: str
    name: str
    scopes: list[Scope]
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    created_by_key: str | None = None

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.id}"

    def to_api(self) -> dict[str, object]:
        out = self.model_dump(mode="json", exclude={"secret_hash"})
        out["prefix"] = self.prefix
        return out

    def refusal(self, now: datetime) -> str | None:
        """Why this key may not be used at `now`, or None."""
        if self.revoked_at is not None:
            return f"API key {self.prefix} was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"API key {self.prefix} expired at {self.expires_at:%Y-%m-%dT%H:%M:%SZ}"
        return None


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key id, the whole key to show once, the hash to store)."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    found = _KEY.match(key)
    return (found.group(1), found.group(2)) if found else None


def matches(key: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class NotAuthenticated(NexusError):
    """No usable key: HTTP 401 with `WWW-Authenticate: Bearer`."""


class Forbidden(NexusError):
    """A known key without the scope a route needs: HTTP 403."""


@dataclass(frozen=True)
class Principal:
    """Who makes a request: the key, as the authorizer vouched for it."""

    key_id: str
    key_name: str
    scopes: frozenset[str]
    rate_limit: RateLimit

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.key_id}"

    def require(self, scope: Scope) -> None:
        """An admin key has every scope."""
        if scope not in self.scopes and "keys:admin" not in self.scopes:
            raise Forbidden(
                f"API key {self.prefix} lacks the scope '{scope}' this request needs "
                f"(it has: {', '.join(sorted(self.scopes))})"
            )

    # API Gateway hands an authorizer's context to the route as strings.
    def to_context(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "key_name": self.key_name,
            "scopes": " ".join(sorted(self.scopes)),
            "rate": str(self.rate_limit.rate),
            "burst": str(self.rate_limit.burst),
            "execute_rate": str(self.rate_limit.execute_rate),
        }

    @classmethod
    def from_context(cls, context: dict[str, object]) -> Principal:
        """The principal the authorizer put in the request, or NotAuthenticated with the
        authorizer's reason."""
        refused = context.get("refused")
        if refused or not context.get("key_id"):
            raise NotAuthenticated(str(refused or "send an API key: Authorization: Bearer <key>"))
        return cls(
            key_id=str(context["key_id"]),
            key_name=str(context.get("key_name", "")),
            scopes=frozenset(str(context.get("scopes", "")).split()),
            rate_limit=RateLimit(
                rate=int(str(context.get("rate", 20))),
                burst=int(str(context.get("burst", 40))),
                execute_rate=int(str(context.get("execute_rate", 2))),
            ),
        )


def verdict(key: ApiKey | None, secret: str, now: datetime) -> Principal | str:
    """The principal for a presented key, or the reason it is refused."""
    if key is None or not matches(key, secret):
        return "unknown API key"
    refusal = key.refusal(now)
    if refusal:
        return refusal
    return Principal(key.id, key.name, frozenset(key.scopes), key.rate_limit)


@dataclass(frozen=True)
class Actor:
    """Who made a change, as the audit trail records it."""

    key_id: str
    key_name: str
    source_ip: str | None = None


# A bootstrap key (NEXUS_ADMIN_KEY) may be any string of this many printable characters;
# its id is derived from its hash, so the authorizer finds it like any other key.
MIN_CUSTOM_KEY, MAX_CUSTOM_KEY = 24, 256


def custom_key_id(token: str) -> str:
    return "x" + hashlib.sha256(token.encode()).hexdigest()[:11]


def locate(token: str) -> tuple[str, str] | None:
    """(key id, secret) for a presented token: a `nxs_` key, or a bootstrap key's token."""
    parsed = parse_key(token)
    if parsed is not None:
        return parsed
    if token.startswith(PREFIX):
        return None  # a damaged nxs_ key: never read as a custom one
    if MIN_CUSTOM_KEY <= len(token) <= MAX_CUSTOM_KEY and token.isprintable() and " " not in token:
        return custom_key_id(token), token
    return None
