"""Secret references in `task_kwargs`, and what the history shows of sensitive kwargs.

References. Any value inside a job's `task_kwargs` (nested in dicts and lists too) may be
`{"$secret": "ssm:/nexus/NAME"}`: an SSM Parameter Store SecureString. NAME is relative to
the stage's path, so the same job definition works in every stage: in the stage `prod`
(env `NEXUS_STAGE`; `local` when unset) it names the parameter `/nexus/prod/NAME`, and a
reference cannot reach outside `/nexus/<stage>/` (the worker's IAM policy allows nothing
else either). The API checks a reference's form when a job is created or changed and when
a run is asked for with other kwargs (422 naming the field), never whether the parameter
exists: that is read only by the worker, just before the task is called, so the value is
never in the job, a run record, a message or the API. A parameter that is missing (or not
a SecureString, or not readable) fails that run with the reason (`secret ssm:/nexus/x not
found`); SSM throttling or a 5xx is `Unavailable`, which the worker lets out like any AWS
error of its own, so the message comes back and the run is taken over (lifecycle S3).

Values read from SSM are kept in the worker process for up to CACHE_SECONDS (60 s): a batch
of runs naming the same secret reads it once, and a rotated secret is in use within a
minute. Names are read ten to a GetParameters call (SSM's limit).

Redaction. Some kwargs are credentials given in clear: a value under a key named
`Authorization`, `Cookie`, `Proxy-Authorization` or `X-Api-Key` (any case, in `headers` or
any other dict), or whose name contains `password`, `secret`, `token`, `api_key` or `apikey`
(any case, at any depth). Where each copy lives:

- the job keeps them as given: the worker has to send them, so a literal is somewhere;
  that is the job's item, and only it (a reference is the way to keep one out of the table);
- a run record keeps them as "***" (`redacted`), so its history, its retries and a scan of
  the runs never hold them; the worker puts the job's values (as they are when the run
  starts) back at those places just before the call (`prepare`), so a run on demand may
  not bring a credential of its own in clear: the API refuses one that differs from the
  job's (`override_errors`);
- the API shows a job and its runs redacted; a reference is shown as it is (it is no secret);
- a PUT that sends "***" back where the job has a value keeps the job's value (`kept`), so
  a job read from the API and written back loses nothing;
- what the task returns or raises is scrubbed of the values it was given (`RunArguments`)
  before the run is recorded: nexus.echo's result shows "***" where they were;
- logs: NEXUS logs no kwargs, and botocore's DEBUG record of GetParameters' answer (which
  holds the decrypted values) is dropped (`_Unlogged`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import FieldError
from chalicelib.store.items import error_code, with_backoff

REFERENCE = "$secret"
SCHEME = "ssm:"
ROOT = "/nexus/"
REDACTED = "***"
# Header names whose values are credentials, compared in lower case, in any dict.
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
# Parts of a kwarg's name that make its value a credential, compared in lower case.
SENSITIVE_WORDS = ("password", "secret", "token", "api_key", "apikey")
CACHE_SECONDS = 60.0
# GetParameters takes at most ten names a call.
BATCH = 10
# SSM allows 15 levels of hierarchy; `/nexus/<stage>/` takes two of them.
MAX_LEVELS = 13
MAX_NAME_LENGTH = 900
# A value shorter than this is scrubbed from results only where it is the whole string:
# replacing every "ab" inside other text would garble results without protecting anything.
MIN_SCRUB_INSIDE = 8
_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")
_MISSING = object()
Loc = tuple[str | int, ...]


class SecretError(Exception):
    """A run cannot have the values its kwargs name; the run fails with this reason."""


class SecretNotFound(SecretError, LookupError):
    def __init__(self, references: list[str], stage: str) -> None:
        names = ", ".join(references)
        paths = ", ".join(parameter_name(r, stage) for r in references)
        noun = "secret" if len(references) == 1 else "secrets"
        super().__init__(
            f"{noun} {names} not found (no SecureString parameter {paths} in this account "
            "and region)"
        )
        self.references = references


def current_stage() -> str:
    return os.environ.get("NEXUS_STAGE") or "local"


def stage_path(stage: str) -> str:
    return f"{ROOT}{stage}/"


# -- the reference's form -----------------------------------------------------------------


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and REFERENCE in value


def reference_problem(value: Any, stage: str) -> str | None:
    """What is wrong with a `{"$secret": ...}` value, or None if it is a reference this stage
    accepts."""
    form = f'a secret reference is {{"{REFERENCE}": "ssm:/nexus/NAME"}}'
    if set(value) != {REFERENCE}:
        others = ", ".join(sorted(str(k) for k in value if k != REFERENCE))
        return f"{form}, with no other key (found {others})"
    text = value[REFERENCE]
    if not isinstance(text, str):
        return f"{form}: its value must be a string"
    if not text.startswith(SCHEME):
        return f"{form}: only SSM Parameter Store references (ssm:) are accepted"
    shown = text if len(text) <= 100 else f"{text[:100]}..."  # echoed in the 422
    path = text[len(SCHEME) :]
    if not path.startswith(ROOT):
        return (
            f"{shown} is outside this stage's parameters: a reference is written "
            f"ssm:/nexus/NAME and names the parameter {stage_path(stage)}NAME"
        )
    segments = path[len(ROOT) :].split("/")
    bad = [s for s in segments if not _SEGMENT.fullmatch(s) or s in (".", "..")]
    if bad or len(path) > MAX_NAME_LENGTH or len(segments) > MAX_LEVELS:
        return (
            f"{shown} is not a parameter name: NAME is 1-{MAX_LEVELS} '/'-separated parts of "
            f"letters, digits, '.', '-' and '_' (not '.' or '..'), at most {MAX_NAME_LENGTH} "
            "characters"
        )
    if segments[0] == stage and len(segments) > 1:
        rest = "/".join(segments[1:])
        return (
            f"{text} names the stage: write it relative to the stage's path, "
            f"ssm:/nexus/{rest} (the parameter {stage_path(stage)}{rest})"
        )
    return None


def parameter_name(reference: str, stage: str) -> str:
    """`ssm:/nexus/NAME` -> `/nexus/<stage>/NAME` (the reference is checked already)."""
    return stage_path(stage) + reference[len(SCHEME) + len(ROOT) :]


def reference_errors(kwargs: Any, loc: Loc, stage: str | None = None) -> list[FieldError]:
    """The 422 errors of every reference in `kwargs` (none if all are well-formed)."""
    stage = stage or current_stage()
    if is_reference(kwargs):
        return [FieldError(loc, "the kwargs themselves cannot be a reference", "value_error")]
    errors: list[FieldError] = []
    for where, value in _walk(kwargs, loc):
        if is_reference(value):
            problem = reference_problem(value, stage)
            if problem is not None:
                errors.append(FieldError(where, problem, "value_error.secret"))
    return errors


def _walk(value: Any, loc: Loc) -> Iterable[tuple[Loc, Any]]:
    """Every value inside `value` with its location; a reference is not looked into."""
    if isinstance(value, dict) and not is_reference(value):
        for key, item in value.items():
            yield (*loc, key), item
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*loc, index), item
            yield from _walk(item, (*loc, index))


# -- redaction -----------------------------------------------------------------------------


def is_sensitive(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or any(word in lowered for word in SENSITIVE_WORDS)


def redacted(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` as history shows them: every value under a sensitive name "***" (a
    reference and a null stay as they are). Redacting twice changes nothing."""
    out: dict[str, Any] = _redact(kwargs, False)
    return out


def _redact(value: Any, hidden: bool) -> Any:
    if is_reference(value):
        return dict(value)
    if isinstance(value, dict):
        return {k: _redact(v, hidden or is_sensitive(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, hidden) for v in value]
    return REDACTED if hidden and value is not None else value


def kept(kwargs: Any, current: dict[str, Any]) -> Any:
    """New kwargs for a job, with "***" under a sensitive name replaced by the job's current
    value at the same place: what the API showed, sent back, changes nothing."""
    return _restore(kwargs, current, False, (), None) if isinstance(kwargs, dict) else kwargs


def override_errors(
    kwargs: dict[str, Any], job_kwargs: dict[str, Any], loc: Loc, stage: str | None = None
) -> list[FieldError]:
    """The 422 errors of a run's own kwargs: its references, and any credential in clear
    that is not the job's own (a run record keeps it as "***", and the worker can put back
    only the job's value; "***" itself means the job's value)."""
    errors = reference_errors(kwargs, loc, stage)
    for where, value in _sensitive_leaves(kwargs, loc):
        found = _at(job_kwargs, where[len(loc) :])
        if found is _MISSING or value not in (REDACTED, found):
            errors.append(
                FieldError(
                    where,
                    "a run on demand cannot bring a credential in clear (it would be kept in "
                    f'the run\'s history): use {{"{REFERENCE}": "ssm:/nexus/NAME"}}, or "***" '
                    "for the job's own value",
                    "value_error.secret",
                )
            )
    return errors


def _sensitive_leaves(value: Any, loc: Loc, hidden: bool = False) -> Iterable[tuple[Loc, Any]]:
    if is_reference(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _sensitive_leaves(item, (*loc, key), hidden or is_sensitive(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _sensitive_leaves(item, (*loc, index), hidden)
    elif hidden and value is not None:
        yield loc, value


def _at(value: Any, path: Loc) -> Any:
    for step in path:
        in_dict = isinstance(value, dict) and not is_reference(value) and step in value
        in_list = isinstance(value, list) and isinstance(step, int) and step < len(value)
        if not (in_dict or in_list):
            return _MISSING
        value = value[step]
    return value


def _restore(value: Any, source: Any, hidden: bool, loc: Loc, put_back: list[Any] | None) -> Any:
    """`value` with each "***" under a sensitive name replaced by `source`'s value at the same
    place. `put_back` None: a place `source` lacks keeps "***"; a list: it is an error, and
    each value put back is appended to it."""
    if is_reference(value):
        return value
    if isinstance(value, dict):
        return {
            k: _restore(v, _at(source, (k,)), hidden or is_sensitive(k), (*loc, k), put_back)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _restore(v, _at(source, (i,)), hidden, (*loc, i), put_back) for i, v in enumerate(value)
        ]
    if not (hidden and value == REDACTED):
        return value
    if source is _MISSING:
        if put_back is None:
            return value
        where = ".".join(str(step) for step in ("task_kwargs", *loc))
        raise SecretError(
            f"{where} is kept by the job (the run's record shows it as ***), and the job no "
            "longer has it"
        )
    if put_back is not None:
        put_back.append(source)
    return source


# -- the worker's side ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunArguments:
    """The kwargs a task is called with, and the values among them that must not be kept."""

    kwargs: dict[str, Any]
    hidden: frozenset[str] = field(default_factory=frozenset)

    def scrub(self, value: Any) -> Any:
        """`value` (a task's result) with every hidden value in it replaced by "***"."""
        if not self.hidden or value is None or isinstance(value, bool):
            return value
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, str):
            return self._scrub_text(value)
        if isinstance(value, int | float):
            return REDACTED if str(value) in self.hidden else value
        # Anything else is recorded as its text (worker._capped_result): scrub that text.
        text = str(value)
        clean = self._scrub_text(text)
        return value if clean == text else clean

    def _scrub_text(self, text: str) -> str:
        if text in self.hidden:
            return REDACTED
        for secret in sorted(self.hidden, key=len, reverse=True):
            if len(secret) >= MIN_SCRUB_INSIDE:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_error(self, exc: BaseException) -> BaseException:
        """The task's error as the run records it (its type's name and its text), without a
        hidden value in the text: the same exception if it has none."""
        text = str(exc)
        clean = self._scrub_text(text) if self.hidden else text
        if clean == text:
            return exc
        # A stand-in with the same class name, so the record's error type stays the task's.
        stand_in: type[Exception] = type(type(exc).__name__, (Exception,), {"__module__": __name__})
        return stand_in(clean)


class _Unlogged(logging.Filter):
    """botocore logs each response body at DEBUG (`botocore.parsers`), GetParameters' with
    the decrypted values: while a thread reads secrets, those records of that thread are
    dropped, whatever level a deployment or a test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.threads


_UNLOGGED = _Unlogged()
logging.getLogger("botocore.parsers").addFilter(_UNLOGGED)


class Resolver:
    """Reads referenced parameters from SSM, ten names a call, keeping each value for up to
    `ttl` seconds (per process: on Lambda, per sandbox)."""

    def __init__(
        self,
        ssm: Callable[[], Any] | None = None,
        *,
        stage: Callable[[], str] = current_stage,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self._ssm = ssm or _ssm_client
        self._stage = stage
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def values(self, references: Iterable[str]) -> dict[str, str]:
        """reference -> value. SecretError when one cannot be had; `Unavailable` (from
        with_backoff) when SSM keeps answering "not now"."""
        stage = self._stage()
        wanted = {r: parameter_name(r, stage) for r in references}
        found: dict[str, str] = {}
        now = self._clock()
        with self._lock:
            for name, (_, until) in list(self._cache.items()):
                if until <= now:
                    del self._cache[name]
            cached = {n: v for n, (v, _) in self._cache.items()}
        missing = sorted({name for name in wanted.values() if name not in cached})
        for start in range(0, len(missing), BATCH):
            found.update(self._read(missing[start : start + BATCH], stage, wanted))
        with self._lock:
            for name, value in found.items():
                self._cache[name] = (value, now + self._ttl)
        return {r: found.get(name, cached.get(name, "")) for r, name in wanted.items()}

    def _read(self, names: list[str], stage: str, wanted: dict[str, str]) -> dict[str, str]:
        reference_of = {name: r for r, name in wanted.items()}
        thread = threading.get_ident()
        _UNLOGGED.threads.add(thread)
        try:
            out = with_backoff(
                lambda: self._ssm().get_parameters(Names=names, WithDecryption=True),
                what="reading secrets from SSM",
            )
        except ClientError as exc:  # not "not now": refused (access, a bad name)
            references = ", ".join(reference_of[n] for n in names)
            raise SecretError(
                f"secrets {references} could not be read: SSM answered {error_code(exc)}"
            ) from None
        finally:
            _UNLOGGED.threads.discard(thread)
        absent = sorted(reference_of[n] for n in out.get("InvalidParameters") or [])
        if absent:
            raise SecretNotFound(absent, stage)
        values: dict[str, str] = {}
        for parameter in out.get("Parameters") or []:
            name = parameter["Name"]
            if parameter.get("Type") != "SecureString":
                raise SecretError(
                    f"secret {reference_of.get(name, name)} is a {parameter.get('Type')} "
                    "parameter, stored in clear: store it as a SecureString"
                )
            values[name] = str(parameter["Value"])
        unanswered = sorted(reference_of[n] for n in names if n not in values)
        if unanswered:
            raise SecretNotFound(unanswered, stage)
        return values


def _ssm_client() -> Any:
    from chalicelib.aws import client

    return client("ssm")


_resolver = Resolver()


def clear_cache() -> None:
    """Forget the values read (tests; a process that must see a rotation at once)."""
    _resolver.clear()


def prepare(
    record_kwargs: dict[str, Any],
    job_kwargs: dict[str, Any],
    resolver: Resolver | None = None,
) -> RunArguments:
    """The kwargs to call a task with: the record's, with the job's values put back where
    the record shows "***", then each reference replaced by its parameter's value."""
    if is_reference(record_kwargs):
        raise SecretError("task_kwargs itself cannot be a reference; put it in a kwarg")
    put_back: list[Any] = []
    kwargs = _restore(record_kwargs, job_kwargs, False, (), put_back)
    references = sorted({v[REFERENCE] for _, v in _walk(kwargs, ()) if is_reference(v)})
    values = (resolver or _resolver).values(references) if references else {}
    hidden = {
        str(v)
        for v in put_back
        if isinstance(v, str | int | float) and not isinstance(v, bool) and v != REDACTED
    }
    hidden |= {v for v in values.values() if v}
    return RunArguments(_substitute(kwargs, values), frozenset(hidden))


def _substitute(value: Any, values: dict[str, str]) -> Any:
    if is_reference(value):
        return values[value[REFERENCE]]
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value
