"""Failure notifications (issue 14, item 3): what a job's `notify` policy accepts, which events
a run's outcome fires, the JSON each event sends, how a webhook is signed, and delivery.

Nothing here reads the clock. The worker calls it after it records a run's final outcome
(engine.lifecycle, step N: at least once, a duplicated message sends once); the dead-man's
switch (engine.watch) for `job.overdue` and `job.recovered`. Plan first, then act: `decide`
and `event_body` are pure; `deliver` does the I/O and never raises.

The policy (`NotifyPolicy`, a job's `notify`)
    `on_failure` (default true): `run.failed_final` when a run ends failed after its last
    retry. `on_recovery` (default false): `run.recovered` on the first success after a failed
    run. `after_consecutive_failures: N` (2-1000, default none): `job.failing` when the job
    has failed N runs in a row, once per streak (at N, not at N+1, N+2...). Each event goes to
    every one of `channels` (1-5; a channel given twice is kept once). A failed run that is
    also the Nth in a row fires both `run.failed_final` and `job.failing`.

    A channel (`Channel`) is exactly one of
    - `sns_topic_arn`: `arn:aws:sns:REGION:ACCOUNT:NAME`; email, SMS and chat (AWS Chatbot)
      subscribe to the topic. Like an AWS target's ARN, the topic must be in the stage's
      NEXUS_TARGET_ALLOW (checked when the job is written), from which the functions' IAM
      policy is generated: sns:Publish on exactly the listed topics.
    - `webhook_url`: an http(s) URL, POSTed the JSON body. It follows `nexus.http_request`'s
      rules: checked without DNS when the job is written (`outbound.literal_problem`: a 422
      for 169.254.169.254, localhost, private addresses...) and through the outbound guard
      when it is sent (`outbound.fetch`: resolved, pinned, every redirect checked), both
      relaxed only by the stage's NEXUS_HTTP_ALLOW. With `secret`, a secret reference
      (`{"$secret": "ssm:/nexus/NAME"}`, the form of chalicelib.security.secrets), the
      POST is signed with the parameter's value; without it the POST is unsigned.

    The stage's default channel: NEXUS_NOTIFY_DEFAULT, a JSON object of a Channel, read on
    every call (`default_channel`); a malformed value is an error naming the setting. The
    worker adds it to the channels of every job with `notify`, and sends it the
    `run.failed_final` of every job without one (the policy `{"channels": [default]}`).

Events (`decide`; statuses as the run records them)
    ==================  =========================================================
    run.failed_final    on_failure, and the run's final status is failed or dead_lettered
    run.recovered       on_recovery, the run completed, and the job's previous run failed
    job.failing         after_consecutive_failures == N, the run failed, and it is the
                        Nth failed run in a row (exactly N)
    job.overdue         the dead-man's switch (engine.watch): no run of the job
                        succeeded within its `expect_success_within`
    job.recovered       the dead-man's switch: a run succeeded after job.overdue
    ==================  =========================================================
    The two job events have `execution` null and `overdue` set (below); they go to the
    job's `notify` channels and the stage's default one, whatever the policy's flags.
    Cancelled, skipped and missed runs fire nothing.

The body (`event_body`; version 1, every key always present, null when unknown)::

    {
      "version": 1,
      "event": "run.failed_final",
      "event_id": "run.failed_final:42:2026-03-02T09:00:00Z",
      "occurred_at": "2026-03-02T09:00:05Z",
      "job": {"id": 42, "name": "nightly report"},
      "execution": {
        "id": "42-20260302T090000Z-3",
        "scheduled_for": "2026-03-02T09:00:00Z",
        "status": "failed",
        "attempt": 3,
        "error": {"type": "TaskFailed", "message": "..."}
      },
      "overdue": null
    }

    A job event has `"execution": null` and `"overdue": {"expect_success_within": 3600,
    "last_success_at": "2026-03-02T08:00:00Z" or null, "since": "2026-03-02T09:00:00Z",
    "recovered_at": null or the success's time}`; its `event_id` is
    `<event>:<job id>:<since>`.

    `event_id` is the same for the same event of the same run (the run's identity, not the
    attempt's), so a receiver that sees it twice (the worker's message delivered twice) can
    drop the second. The error's message is capped at MAX_ERROR_MESSAGE characters.

The webhook request
    `POST <webhook_url>` with `Content-Type: application/json`, the body's compact JSON
    (sorted keys), and the headers `X-Nexus-Event` (the event), `X-Nexus-Event-Id` (its
    `event_id`) and, with a secret, `X-Nexus-Signature: t=<unix seconds>,v1=<hex>`, where
    hex is HMAC-SHA256 with the secret over `f"{t}.".encode() + body` (Stripe's scheme).
    A receiver recomputes it over the raw body, compares in constant time, and rejects a
    `t` more than SIGNATURE_TOLERANCE seconds from its clock (a replay): `verify`.
    A 2xx answer is delivered. A connection error, a timeout, a 5xx or a 429 is tried again
    after 1 s, then 2 s (exponential), `attempts` times in all; another 4xx, any 3xx, or a
    destination the guard refuses is not tried again. A redirect is a failed delivery (a
    301/302/303 would have turned the POST into a GET without the body): the webhook_url
    must be the URL that takes the POST.

SNS
    `Publish` to the topic in its own region: `Subject` "NEXUS <event>: <job name>" (ASCII,
    at most 100 characters, as SNS requires), `Message` the same JSON. A FIFO topic gets the
    job as its message group and the event id as its deduplication id. Throttling, a 5xx or
    a connection error is tried again like a webhook's 5xx.

Recording (`Delivery`)
    `deliver` returns what happened: channel (its address; a URL's password as ***), event,
    status `sent` or `failed`, attempts made, the last error, and when. It never raises: a
    notification must never fail or hold back the run. Call it after the run's outcome is
    recorded; at most `attempts` tries of WEBHOOK_TIMEOUT seconds each, plus the backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.timefmt import iso

if TYPE_CHECKING:
    # chalicelib.models holds a job's `notify` (a NotifyPolicy): it imports this module, so
    # this module imports it (and secrets, which reads the store) only when it is used; and
    # the outbound guard only where a URL is checked or sent to, which the tick never does.
    from chalicelib.models import Execution, Job
    from chalicelib.security import secrets

# As chalicelib.models': no "1" for 1, no "true" for true.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]

log = logging.getLogger("nexus.notify")

DEFAULT_ENV = "NEXUS_NOTIFY_DEFAULT"
# The validation context of values NEXUS accepted already (`is_accepted`).
ACCEPTED_KEY = "accepted"
ACCEPTED = {ACCEPTED_KEY: True}
SIGNATURE_HEADER = "X-Nexus-Signature"
EVENT_HEADER = "X-Nexus-Event"
EVENT_ID_HEADER = "X-Nexus-Event-Id"
# How far a signature's timestamp may be from the receiver's clock, in seconds.
SIGNATURE_TOLERANCE = 300
BODY_VERSION = 1

FAILED_STATUSES = frozenset({"failed", "dead_lettered"})
SUCCEEDED_STATUSES = frozenset({"completed"})

MAX_CHANNELS = 5
MIN_STREAK = 2
MAX_STREAK = 1000
MAX_URL_LENGTH = 2048
MAX_ERROR_MESSAGE = 1000
# What a Delivery keeps of an error.
MAX_DELIVERY_ERROR = 500

# Each POST is bounded as a whole (outbound.fetch's total timeout); the answer's body is read
# only to be dropped.
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_BODY_CAP = 1024
BACKOFF_BASE = 1.0
# SNS: a Subject is at most 100 printable ASCII characters, without line breaks.
MAX_SUBJECT = 100
_SNS_THROTTLED = frozenset({"Throttled", "Throttling", "ThrottlingException", "KMSThrottling"})

_SNS_ARN = re.compile(
    r"arn:(?:aws|aws-cn|aws-us-gov):sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:"
    r"(?:[A-Za-z0-9_-]{1,251}\.fifo|[A-Za-z0-9_-]{1,256})"
)
SNS_FORM = "arn:aws:sns:REGION:ACCOUNT:NAME"


class InvalidSignature(ValueError):
    """A webhook's signature does not verify; the message says why."""


# -- the policy ----------------------------------------------------------------------------


def is_accepted(info: ValidationInfo) -> bool:
    """Whether the model holds values NEXUS accepted already (validated with `ACCEPTED`): a
    job read back from the store, or an API answer the client reads.

    What depends on the stage's settings (NEXUS_HTTP_ALLOW, NEXUS_TARGET_ALLOW, the stage's
    secrets) is checked when a job is written, and again when a notification is sent: a stage
    whose settings changed since must still read its jobs (a refusal then is recorded on the
    delivery), and a client, which has none of the stage's settings, must read the answers."""
    return bool(info.context and info.context.get(ACCEPTED_KEY))


class _Input(BaseModel):
    # As chalicelib.models: an unknown field (a typo such as `on_failures`) is refused.
    # Built on first validation (defer_build): the API's first GET or POST /v1/jobs never
    # validates a policy or a channel on its own (a job's validator has their schema).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Channel(_Input):
    """Where an event goes: exactly one of an SNS topic or a webhook URL."""

    sns_topic_arn: str | None = Field(
        default=None, description=f"An SNS topic, {SNS_FORM}: email, SMS, AWS Chatbot."
    )
    webhook_url: str | None = Field(
        default=None,
        description="An http(s) URL POSTed the event's JSON, under nexus.http_request's rules.",
    )
    secret: dict[str, Any] | None = Field(
        default=None,
        description='A webhook\'s signing secret: {"$secret": "ssm:/nexus/NAME"}.',
    )

    @field_validator("sns_topic_arn")
    @classmethod
    def _topic(cls, arn: str | None, info: ValidationInfo) -> str | None:
        if arn is None:
            return None
        if not _SNS_ARN.fullmatch(arn):
            raise ValueError(f"must be an SNS topic's ARN, {SNS_FORM}")
        if is_accepted(info):
            return arn
        # Only what the stage allows, as for the AWS targets: NEXUS_TARGET_ALLOW, from which
        # the functions' IAM policy (sns:Publish on exactly those topics) is generated.
        from chalicelib.tasks.aws_targets import allowlist_problem

        problem = allowlist_problem(arn)
        if problem is not None:
            raise ValueError(problem)
        return arn

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is None:
            return None
        if len(url) > MAX_URL_LENGTH:
            raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
        if is_accepted(info):
            return url  # checked when written; the guard checks it again on every delivery
        # The check nexus.http_request makes when a job is written; the guard checks the
        # resolved addresses again on every delivery.
        from chalicelib.security import outbound

        problem = outbound.literal_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is None or is_accepted(info):
            return value  # a stored reference is resolved (or its failure recorded) when sent
        from chalicelib.security import secrets

        problem = secrets.reference_problem(value, secrets.current_stage())
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> Channel:
        given = [self.sns_topic_arn is not None, self.webhook_url is not None]
        if given == [True, True]:
            raise ValueError(
                "a channel is one destination: give sns_topic_arn or webhook_url, not both"
            )
        if given == [False, False]:
            raise ValueError(
                f"a channel needs a destination: sns_topic_arn ({SNS_FORM}) or webhook_url"
            )
        if self.secret is not None and self.webhook_url is None:
            raise ValueError("secret signs a webhook's body; an SNS channel takes none")
        return self

    @property
    def address(self) -> str:
        """The channel as a Delivery records it (a URL's password as ***)."""
        if self.sns_topic_arn is not None:
            return self.sns_topic_arn
        from chalicelib.security import outbound

        return outbound.redact(self.webhook_url or "")


class NotifyPolicy(_Input):
    """A job's `notify`: which events to send, and where."""

    on_failure: StrictBool = Field(
        default=True, description="run.failed_final: a run failed after its last retry."
    )
    on_recovery: StrictBool = Field(
        default=False, description="run.recovered: the first success after a failed run."
    )
    after_consecutive_failures: Annotated[StrictInt, Field(ge=MIN_STREAK, le=MAX_STREAK)] | None = (
        Field(
            default=None,
            description="job.failing: once, when this many runs in a row have failed.",
        )
    )
    channels: Annotated[list[Channel], Field(min_length=1, max_length=MAX_CHANNELS)]

    @field_validator("channels")
    @classmethod
    def _unique(cls, channels: list[Channel]) -> list[Channel]:
        # A channel given twice would send every event twice: keep the first.
        seen: list[dict[str, Any]] = []
        kept: list[Channel] = []
        for channel in channels:
            dumped = channel.model_dump()
            if dumped not in seen:
                seen.append(dumped)
                kept.append(channel)
        return kept


def channels_for(policy: NotifyPolicy | None) -> list[Channel]:
    """Where a job's events go: its policy's channels and the stage's default channel
    (NEXUS_NOTIFY_DEFAULT) once. A malformed default is logged and left out: a notification
    must never fail what sends it."""
    channels = list(policy.channels) if policy is not None else []
    try:
        default = default_channel()
    except ValueError as exc:
        log.error("no default notification channel: %s", exc)
        default = None
    if default is not None and default not in channels:
        channels.append(default)
    return channels


def default_channel(environ: Mapping[str, str] | None = None) -> Channel | None:
    """NEXUS_NOTIFY_DEFAULT: the stage's default channel, or None when unset.

    Read on every call, like config.target_allow: a change needs no restart, and a
    malformed value is reported where it is used (ValueError naming the setting)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(DEFAULT_ENV, "").strip()
    if not raw:
        return None
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    accepted = (
        'a JSON object of one channel is accepted, e.g. {"sns_topic_arn": '
        '"arn:aws:sns:us-east-1:123456789012:ops"} or {"webhook_url": "https://..."}'
    )
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{DEFAULT_ENV} is {shown!r}, not JSON; {accepted}") from None
    try:
        return Channel.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'channel'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"{DEFAULT_ENV} is {shown!r}: {problems}; {accepted}") from None


# -- which events fire ---------------------------------------------------------------------


def decide(
    policy: NotifyPolicy,
    previous_status: str | None,
    new_status: str,
    consecutive_failures: int,
) -> list[str]:
    """The events a run's final outcome fires, in the order to send them.

    Call it once per run, with its final outcome (after its last retry), never per attempt.
    `previous_status`: the final status of the job's run before this one (None for a first
    run). `consecutive_failures`: the job's streak of failed runs that ends with this one,
    counting it (1 for a first failure; 0 when this run did not fail)."""
    events: list[str] = []
    if new_status in FAILED_STATUSES:
        if policy.on_failure:
            events.append("run.failed_final")
        if consecutive_failures == policy.after_consecutive_failures:
            events.append("job.failing")
    elif (
        new_status in SUCCEEDED_STATUSES
        and policy.on_recovery
        and previous_status in FAILED_STATUSES
    ):
        events.append("run.recovered")
    return events


# -- the body ------------------------------------------------------------------------------


def event_body(
    kind: str,
    job: Job,
    execution: Execution | None,
    now: datetime,
    *,
    overdue: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event's JSON, the same for every channel (the module's docstring shows it).

    `overdue`: the dead-man's switch's facts for `job.overdue` and `job.recovered`
    (engine.watch), with `since`, the instant the job became overdue: the event's id."""
    run: dict[str, Any] | None = None
    if execution is not None:
        error = execution.error
        if error is not None:
            error = {
                "type": error.get("type"),
                "message": str(error.get("message") or "")[:MAX_ERROR_MESSAGE],
            }
        run = {
            "id": execution.id,
            "scheduled_for": iso(execution.scheduled_for),
            "status": execution.status,
            "attempt": execution.attempt,
            "error": error,
        }
        # The run's identity, not the attempt's: the same event of the same run has one id.
        event_id = f"{kind}:{job.id}:{iso(execution.scheduled_for)}"
    elif overdue is not None and overdue.get("since"):
        # The overdue spell's identity: the same event of the same spell has one id.
        event_id = f"{kind}:{job.id}:{overdue['since']}"
    else:
        event_id = f"{kind}:{job.id}:{iso(now)}"
    return {
        "version": BODY_VERSION,
        "event": kind,
        "event_id": event_id,
        "occurred_at": iso(now),
        "job": {"id": job.id, "name": job.name},
        "execution": run,
        "overdue": dict(overdue) if overdue is not None else None,
    }


def encode(body: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


# -- signatures ----------------------------------------------------------------------------


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The X-Nexus-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    return f"t={int(timestamp)},v1={_digest(body, secret, int(timestamp))}"


def verify(
    body: bytes,
    header: str,
    secret: str,
    *,
    now: float,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> None:
    """Check a received X-Nexus-Signature against the raw body, or raise InvalidSignature.

    `now` is the receiver's clock (Unix seconds). Several `v1=` entries are accepted (one
    must match), so a sender may sign with an old and a new secret while it is rotated."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"t={value!r} is not a Unix time") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex>")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(
            f"the signature's time t={timestamp} is {abs(now - timestamp):.0f} s from now; "
            f"at most {tolerance} s is accepted (an old request replayed?)"
        )
    expected = _digest(body, secret, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("no v1 signature matches the body and the secret")


# -- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What became of one event on one channel: what a run's record keeps."""

    channel: str
    event: str
    status: Literal["sent", "failed"]
    attempts: int
    error: str | None
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "at": iso(self.at),
        }


class _Retry(Exception):
    """This try failed in a way worth trying again."""


class _GiveUp(Exception):
    """This try failed in a way another try would not change."""


def deliver(
    channel: Channel,
    body: Mapping[str, Any],
    *,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = 3,
    resolver: secrets.Resolver | None = None,
    sns: Callable[[str], Any] | None = None,
) -> Delivery:
    """Send `body` (an `event_body`) to `channel`; never raises.

    `sleep` is the backoff's pause (1 s, 2 s, ...); `resolver` reads a webhook's secret
    (default: the worker's shared, cached one); `sns(region)` gives the SNS client (default:
    chalicelib.aws.target_client)."""
    event = str(body.get("event", ""))
    made = 0
    try:
        data = encode(body)
        secret = _secret_value(channel, resolver)
        for attempt in range(1, max(1, attempts) + 1):
            made = attempt
            try:
                if channel.webhook_url is not None:
                    _post(channel.webhook_url, data, body, secret, now)
                else:
                    _publish(channel.sns_topic_arn or "", data, body, sns)
                return Delivery(channel.address, event, "sent", made, None, now)
            except _Retry as exc:
                if attempt >= attempts:
                    raise _GiveUp(str(exc)) from None
                sleep(BACKOFF_BASE * 2 ** (attempt - 1))
        raise AssertionError("unreachable")
    except _GiveUp as exc:
        error = str(exc)
    except Exception as exc:  # a notification never fails the run
        error = f"{type(exc).__name__}: {exc}"
    return Delivery(channel.address, event, "failed", made, error[:MAX_DELIVERY_ERROR], now)


def _secret_value(channel: Channel, resolver: secrets.Resolver | None) -> str | None:
    if channel.secret is None:
        return None
    from chalicelib.security import secrets

    try:
        # prepare() resolves every reference in a kwargs dict; here the dict is the secret.
        arguments = secrets.prepare({"secret": channel.secret}, {}, resolver)
    except Exception as exc:  # SecretError, Unavailable: this delivery fails, the run does not
        raise _GiveUp(f"the webhook's secret could not be read: {exc}") from None
    return str(arguments.kwargs["secret"])


def _post(
    url: str, data: bytes, body: Mapping[str, Any], secret: str | None, now: datetime
) -> None:
    from chalicelib.security import outbound

    headers = {
        "Content-Type": "application/json",
        "User-Agent": "nexus-scheduler",
        EVENT_HEADER: str(body.get("event", "")),
        EVENT_ID_HEADER: str(body.get("event_id", "")),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(data, secret, int(now.timestamp()))
    try:
        response = outbound.fetch(
            url,
            method="POST",
            headers=headers,
            body=data,
            timeout=WEBHOOK_TIMEOUT,
            body_cap=WEBHOOK_BODY_CAP,
        )
    except outbound.ForbiddenDestination as exc:
        raise _GiveUp(f"refused by the outbound guard: {exc}") from None
    except outbound.OutboundFailure as exc:  # unresolvable, refused connection, timeout
        raise _Retry(str(exc)) from None
    if response.url != outbound.redact(url):
        # The guard followed a redirect (checking its target), but a 301, 302 or 303 turns
        # the POST into a GET without the body: whatever answered did not get the event.
        raise _GiveUp(
            f"{outbound.redact(url)} redirected to {response.url}; give the URL that "
            "receives the POST as webhook_url"
        )
    if 200 <= response.status < 300:
        return
    answered = f"POST {response.url} answered {response.status}"
    if response.status >= 500 or response.status == 429:
        raise _Retry(answered)
    raise _GiveUp(answered)


def _publish(
    arn: str, data: bytes, body: Mapping[str, Any], sns: Callable[[str], Any] | None
) -> None:
    match = _SNS_ARN.fullmatch(arn)
    if match is None:  # the model checked it; a Channel built with model_construct is not
        raise _GiveUp(f"{arn} is not an SNS topic's ARN ({SNS_FORM})")
    from chalicelib.tasks.aws_targets import allowlist_problem

    problem = allowlist_problem(arn)  # the stage may have narrowed it since the job was written
    if problem is not None:
        raise _GiveUp(problem)
    if sns is None:
        from chalicelib.aws import target_client

        client = target_client("sns", match["region"])
    else:
        client = sns(match["region"])
    params: dict[str, Any] = {
        "TopicArn": arn,
        "Subject": subject(body),
        "Message": data.decode(),
    }
    if arn.endswith(".fifo"):
        job = body.get("job") or {}
        params["MessageGroupId"] = f"nexus-job-{job.get('id')}"
        # At most 128 characters: the event id can be longer, its digest cannot.
        params["MessageDeduplicationId"] = hashlib.sha256(
            str(body.get("event_id", "")).encode()
        ).hexdigest()
    try:
        client.publish(**params)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _SNS_THROTTLED or status >= 500:
            raise _Retry(f"SNS answered {code or status}: {exc}") from None
        raise _GiveUp(f"SNS answered {code or status}: {exc}") from None
    except BotoCoreError as exc:  # could not connect, timed out
        raise _Retry(f"SNS could not be reached: {exc}") from None


def subject(body: Mapping[str, Any]) -> str:
    """`NEXUS <event>: <job name>`, as SNS takes a Subject: printable ASCII, <= 100 chars."""
    job = body.get("job") or {}
    text = f"NEXUS {body.get('event', '')}: {job.get('name', '')}"
    # A line break would make SNS refuse the Subject: whitespace becomes a space.
    text = "".join(c if " " <= c <= "~" else " " if c.isspace() else "?" for c in text)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3] + "..."
