"""Failure notifications (chalicelib/notify.py): which events a run's outcome fires, the body,
the webhook signature, delivery to a real HTTP receiver on 127.0.0.1 and to SNS on moto, and
what a job's `notify` policy accepts.

The receiver is http.server in a thread. Loopback is refused by the outbound guard unless
NEXUS_HTTP_ALLOW lists it, as a stage would list an internal service it trusts; the tests
that need the receiver set it. Backoff pauses go to a recording `sleep`, never to the clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import aws, config, notify
from chalicelib.errors import InvalidInput
from chalicelib.models import Execution, Job
from chalicelib.notify import Channel, InvalidSignature, NotifyPolicy
from chalicelib.security import outbound, secrets
from chalicelib.service import parse_model

NOW = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec-test-0123456789"
REFERENCE = {"$secret": "ssm:/nexus/hooks/ops"}
TOPIC = "arn:aws:sns:us-east-1:123456789012:ops-alerts"

JOB = Job(
    id=42,
    name="nightly report",
    job_type="cron",
    cron_expression="0 9 * * *",
    task_name="nexus.fail",
    created_at=AT,
    updated_at=AT,
)
FAILED = Execution(
    id="42-20260302T090000Z-3",
    job_id=42,
    status="failed",
    trigger="retry",
    scheduled_for=AT,
    attempt=3,
    task_id="t-1",
    task_name="nexus.fail",
    created_at=AT,
    error={"type": "TaskFailed", "message": "boom", "traceback": "not sent"},
)
BODY = notify.event_body("run.failed_final", JOB, FAILED, NOW)


class Sleeps:
    """The backoff's `sleep`: records each pause instead of waiting."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


class FakeSSM:
    """GetParameters answering from a dict of parameter name -> SecureString value."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_parameters(self, Names: list[str], WithDecryption: bool) -> dict[str, Any]:
        return {
            "Parameters": [
                {"Name": n, "Type": "SecureString", "Value": self.values[n]}
                for n in Names
                if n in self.values
            ],
            "InvalidParameters": [n for n in Names if n not in self.values],
        }


@pytest.fixture(autouse=True)
def topics_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage allows the SNS topics of the tests' account (NEXUS_TARGET_ALLOW)."""
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, '["arn:aws:sns:*:123456789012:*"]')


def resolver(values: dict[str, str]) -> secrets.Resolver:
    ssm = FakeSSM(values)
    return secrets.Resolver(lambda: ssm, stage=lambda: "local")


# -- the receiver --------------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    def __init__(self, answers: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = answers  # the status of each POST in turn; the last one repeats
        self.posts: list[tuple[str, dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/nexus"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append((self.path, dict(self.headers), data))
        answers = self.server.answers
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/moved")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv(outbound.ALLOW_ENV, "127.0.0.1")
    server = Receiver([200])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def webhook(url: str, **fields: Any) -> Channel:
    return Channel(webhook_url=url, **fields)


# -- decide --------------------------------------------------------------------------------

ALL = NotifyPolicy(
    on_failure=True,
    on_recovery=True,
    after_consecutive_failures=3,
    channels=[{"webhook_url": "https://hooks.example.com/x"}],
)


def stored(**policy: Any) -> NotifyPolicy:
    """A policy as the store reads it back (the stage's allowlist is checked on writes)."""
    return NotifyPolicy.model_validate(policy, context=notify.ACCEPTED)


FAILURE_ONLY = stored(channels=[{"sns_topic_arn": TOPIC}])

# (policy, previous status, new status, consecutive failures counting this run) -> events
DECISIONS = [
    (ALL, None, "failed", 1, ["run.failed_final"]),
    (ALL, "completed", "failed", 1, ["run.failed_final"]),
    (ALL, "failed", "failed", 2, ["run.failed_final"]),
    (ALL, "failed", "failed", 3, ["run.failed_final", "job.failing"]),
    (ALL, "failed", "failed", 4, ["run.failed_final"]),  # once a streak, not at N+1
    (ALL, "failed", "dead_lettered", 3, ["run.failed_final", "job.failing"]),
    (ALL, "failed", "completed", 0, ["run.recovered"]),
    (ALL, "dead_lettered", "completed", 0, ["run.recovered"]),
    (ALL, "completed", "completed", 0, []),
    (ALL, None, "completed", 0, []),  # a first success recovers from nothing
    (ALL, "failed", "cancelled", 0, []),
    (ALL, "failed", "skipped", 0, []),
    (ALL, "failed", "missed", 0, []),
    (FAILURE_ONLY, None, "failed", 1, ["run.failed_final"]),
    (FAILURE_ONLY, "failed", "completed", 0, []),  # on_recovery is off by default
    (FAILURE_ONLY, "failed", "failed", 2, ["run.failed_final"]),  # no streak set: no job.failing
    (
        stored(on_failure=False, after_consecutive_failures=2, channels=[{"sns_topic_arn": TOPIC}]),
        "failed",
        "failed",
        2,
        ["job.failing"],
    ),
    (stored(on_failure=False, channels=[{"sns_topic_arn": TOPIC}]), None, "failed", 1, []),
]


@pytest.mark.parametrize(("policy", "previous", "new", "streak", "events"), DECISIONS)
def test_decide_fires_the_events_of_the_table(
    policy: NotifyPolicy, previous: str | None, new: str, streak: int, events: list[str]
) -> None:
    assert notify.decide(policy, previous, new, streak) == events


# -- the body ------------------------------------------------------------------------------


def test_the_body_names_the_event_the_job_and_the_run_in_a_stable_shape() -> None:
    assert BODY == {
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
            "error": {"type": "TaskFailed", "message": "boom"},
        },
        "overdue": None,
    }


def test_the_same_event_of_another_attempt_of_the_run_has_the_same_event_id() -> None:
    again = FAILED.model_copy(update={"id": "42-20260302T090000Z-4", "attempt": 4})
    later = NOW + timedelta(minutes=5)
    assert notify.event_body("run.failed_final", JOB, again, later)["event_id"] == BODY["event_id"]


def test_an_event_without_a_run_has_null_execution_and_an_id_from_its_time() -> None:
    body = notify.event_body("job.overdue", JOB, None, NOW)
    assert body["execution"] is None
    assert body["event_id"] == "job.overdue:42:2026-03-02T09:00:05Z"


def test_an_overdue_event_carries_its_facts_and_an_id_from_the_spell_it_belongs_to() -> None:
    facts = {
        "expect_success_within": 3600,
        "last_success_at": "2026-03-02T07:59:00Z",
        "since": "2026-03-02T08:59:00Z",
        "recovered_at": None,
    }
    body = notify.event_body("job.overdue", JOB, None, NOW, overdue=facts)
    assert body["overdue"] == facts
    assert body["execution"] is None
    assert body["event_id"] == "job.overdue:42:2026-03-02T08:59:00Z"
    later = notify.event_body("job.overdue", JOB, None, NOW + timedelta(minutes=3), overdue=facts)
    assert later["event_id"] == body["event_id"]


def test_a_long_error_message_is_capped_in_the_body() -> None:
    long = FAILED.model_copy(update={"error": {"type": "X", "message": "x" * 5000}})
    error = notify.event_body("run.failed_final", JOB, long, NOW)["execution"]["error"]
    assert len(error["message"]) == notify.MAX_ERROR_MESSAGE


# -- signatures ----------------------------------------------------------------------------


def test_a_signature_verifies_against_the_same_body_and_secret() -> None:
    data = notify.encode(BODY)
    t = int(NOW.timestamp())
    header = notify.sign(data, SECRET, t)
    assert header.startswith(f"t={t},v1=")
    notify.verify(data, header, SECRET, now=t + 10)


def test_a_changed_body_does_not_verify() -> None:
    t = int(NOW.timestamp())
    header = notify.sign(notify.encode(BODY), SECRET, t)
    changed = notify.encode({**BODY, "event": "run.recovered"})
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        notify.verify(changed, header, SECRET, now=t)


def test_another_secret_does_not_verify() -> None:
    t = int(NOW.timestamp())
    header = notify.sign(notify.encode(BODY), SECRET, t)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        notify.verify(notify.encode(BODY), header, "another", now=t)


@pytest.mark.parametrize("age", [notify.SIGNATURE_TOLERANCE + 1, -(notify.SIGNATURE_TOLERANCE + 1)])
def test_an_old_or_future_timestamp_does_not_verify(age: int) -> None:
    t = int(NOW.timestamp())
    header = notify.sign(notify.encode(BODY), SECRET, t)
    with pytest.raises(InvalidSignature, match="replayed"):
        notify.verify(notify.encode(BODY), header, SECRET, now=t + age)


def test_a_replayed_body_with_a_new_timestamp_but_the_old_digest_does_not_verify() -> None:
    t = int(NOW.timestamp())
    digest = notify.sign(notify.encode(BODY), SECRET, t).split(",v1=")[1]
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        notify.verify(notify.encode(BODY), f"t={t + 3600},v1={digest}", SECRET, now=t + 3600)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=123", "t=soon,v1=abc"])
def test_a_malformed_signature_header_does_not_verify(header: str) -> None:
    with pytest.raises(InvalidSignature):
        notify.verify(b"{}", header, SECRET, now=123)


# -- webhooks, against a real receiver -----------------------------------------------------


def test_a_webhook_receives_one_signed_post_whose_signature_verifies(receiver: Receiver) -> None:
    sleeps = Sleeps()
    channel = webhook(receiver.url, secret=REFERENCE)
    delivery = notify.deliver(
        channel, BODY, now=NOW, sleep=sleeps, resolver=resolver({"/nexus/local/hooks/ops": SECRET})
    )
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 1, None)
    assert delivery.as_dict() == {
        "channel": receiver.url,
        "event": "run.failed_final",
        "status": "sent",
        "attempts": 1,
        "error": None,
        "at": "2026-03-02T09:00:05Z",
    }
    [(path, headers, data)] = receiver.posts
    assert path == "/hooks/nexus"
    assert headers["Content-Type"] == "application/json"
    assert headers[notify.EVENT_HEADER] == "run.failed_final"
    assert headers[notify.EVENT_ID_HEADER] == BODY["event_id"]
    assert json.loads(data) == BODY
    notify.verify(data, headers[notify.SIGNATURE_HEADER], SECRET, now=NOW.timestamp() + 1)
    assert sleeps.pauses == []


def test_a_webhook_without_a_secret_is_posted_unsigned(receiver: Receiver) -> None:
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=Sleeps())
    assert delivery.status == "sent"
    [(_, headers, _)] = receiver.posts
    assert notify.SIGNATURE_HEADER not in headers


def test_a_receiver_answering_500_twice_then_200_gets_three_posts_and_the_delivery_is_sent(
    receiver: Receiver,
) -> None:
    receiver.answers[:] = [500, 500, 200]
    sleeps = Sleeps()
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=sleeps)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 3, None)
    assert len(receiver.posts) == 3
    assert sleeps.pauses == [1.0, 2.0]  # exponential, and never slept for real


def test_a_receiver_answering_429_is_tried_again(receiver: Receiver) -> None:
    receiver.answers[:] = [429, 200]
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("sent", 2)


def test_a_receiver_always_answering_500_gives_a_failed_delivery_without_raising(
    receiver: Receiver,
) -> None:
    receiver.answers[:] = [500]
    sleeps = Sleeps()
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=sleeps, attempts=3)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.error == f"POST {receiver.url} answered 500"
    assert len(receiver.posts) == 3
    assert sleeps.pauses == [1.0, 2.0]


def test_a_receiver_answering_400_is_not_tried_again(receiver: Receiver) -> None:
    receiver.answers[:] = [400, 200]
    sleeps = Sleeps()
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == f"POST {receiver.url} answered 400"
    assert len(receiver.posts) == 1
    assert sleeps.pauses == []


@pytest.mark.parametrize("status", [302, 307])
def test_a_receiver_that_redirects_gives_a_failed_delivery_naming_the_new_url(
    receiver: Receiver, status: int
) -> None:
    receiver.answers[:] = [status, 200]
    sleeps = Sleeps()
    delivery = notify.deliver(webhook(receiver.url), BODY, now=NOW, sleep=sleeps)
    moved = receiver.url.replace("/hooks/nexus", "/moved")
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == (
        f"{receiver.url} redirected to {moved}; give the URL that receives the POST as webhook_url"
    )
    assert sleeps.pauses == []


def test_a_receiver_that_refuses_connections_is_tried_again_then_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, "127.0.0.1")
    closed = Receiver([200])  # bound for a free port, then closed: nothing listens there
    url = closed.url
    closed.server_close()
    sleeps = Sleeps()
    delivery = notify.deliver(webhook(url), BODY, now=NOW, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "could not connect" in (delivery.error or "")
    assert sleeps.pauses == [1.0, 2.0]


def test_a_webhook_to_the_metadata_address_is_refused_by_the_guard_not_raised() -> None:
    # Validation refuses this URL (the next test); a channel that slipped past it (built
    # without validation, or stored before a rule) still meets the guard when it is sent.
    channel = Channel.model_construct(
        sns_topic_arn=None, webhook_url="http://169.254.169.254/latest/meta-data/", secret=None
    )
    sleeps = Sleeps()
    delivery = notify.deliver(channel, BODY, now=NOW, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == (
        "refused by the outbound guard: 169.254.169.254 is a link-local address "
        "(169.254.0.0/16, where cloud instance metadata is served); add it to "
        "NEXUS_HTTP_ALLOW to allow it"
    )
    assert sleeps.pauses == []


def test_loopback_is_refused_when_the_stage_does_not_allow_it(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = webhook(receiver.url)  # written while NEXUS_HTTP_ALLOW listed 127.0.0.1
    monkeypatch.delenv(outbound.ALLOW_ENV)
    delivery = notify.deliver(channel, BODY, now=NOW, sleep=Sleeps())
    assert delivery.status == "failed"
    assert "127.0.0.1 is a loopback address" in (delivery.error or "")
    assert receiver.posts == []


def test_a_missing_secret_fails_the_delivery_before_anything_is_sent(receiver: Receiver) -> None:
    channel = webhook(receiver.url, secret=REFERENCE)
    delivery = notify.deliver(channel, BODY, now=NOW, sleep=Sleeps(), resolver=resolver({}))
    assert (delivery.status, delivery.attempts) == ("failed", 0)
    assert delivery.error == (
        "the webhook's secret could not be read: secret ssm:/nexus/hooks/ops not found "
        "(no SecureString parameter /nexus/local/hooks/ops in this account and region)"
    )
    assert receiver.posts == []


def test_a_password_in_a_webhook_url_is_not_recorded(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "http://ops:hunter2@")
    delivery = notify.deliver(webhook(url), BODY, now=NOW, sleep=Sleeps())
    assert delivery.status == "sent"
    assert "hunter2" not in json.dumps(delivery.as_dict())


# -- SNS, on moto --------------------------------------------------------------------------


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEXUS_AWS_ENDPOINT_URL", raising=False)
    config.get_settings.cache_clear()
    aws.target_client.cache_clear()
    with mock_aws():
        yield
    config.get_settings.cache_clear()
    aws.target_client.cache_clear()


def subscribed_queue(topic_arn: str, fifo: bool = False) -> str:
    sqs: Any = boto3.client("sqs", region_name="us-east-1")
    name = "ops-inbox.fifo" if fifo else "ops-inbox"
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name="us-east-1").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn
    )
    return str(url)


def received(url: str) -> list[dict[str, Any]]:
    sqs: Any = boto3.client("sqs", region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_an_sns_channel_publishes_the_body_to_the_topic_and_a_subscribed_queue_gets_it(
    moto: None,
) -> None:
    topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="ops-alerts")
    url = subscribed_queue(topic["TopicArn"])
    delivery = notify.deliver(
        Channel(sns_topic_arn=topic["TopicArn"]), BODY, now=NOW, sleep=Sleeps()
    )
    assert (delivery.status, delivery.attempts, delivery.channel) == ("sent", 1, topic["TopicArn"])
    [envelope] = received(url)
    assert envelope["Subject"] == "NEXUS run.failed_final: nightly report"
    assert json.loads(envelope["Message"]) == BODY


def test_an_sns_fifo_topic_deduplicates_the_same_event_sent_twice(moto: None) -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.create_topic(Name="ops-alerts.fifo", Attributes={"FifoTopic": "true"})
    url = subscribed_queue(topic["TopicArn"], fifo=True)
    channel = Channel(sns_topic_arn=topic["TopicArn"])
    for _ in range(2):
        assert notify.deliver(channel, BODY, now=NOW, sleep=Sleeps()).status == "sent"
    assert [json.loads(e["Message"])["event_id"] for e in received(url)] == [BODY["event_id"]]


def test_a_topic_that_does_not_exist_gives_a_failed_delivery_without_raising(moto: None) -> None:
    sleeps = Sleeps()
    delivery = notify.deliver(Channel(sns_topic_arn=TOPIC), BODY, now=NOW, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "NotFound" in (delivery.error or "")
    assert sleeps.pauses == []


def test_a_subject_is_printable_ascii_of_at_most_100_characters() -> None:
    body = {**BODY, "job": {"id": 1, "name": "Café\nnightly " + "x" * 200}}
    subject = notify.subject(body)
    assert len(subject) == 100
    assert subject.startswith("NEXUS run.failed_final: Caf? nightly x")
    assert subject.endswith("...")


# -- what a policy accepts -----------------------------------------------------------------

HOOK = {"webhook_url": "https://hooks.example.com/nexus"}
SNS = {"sns_topic_arn": TOPIC}
LINK_LOCAL = (
    "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud instance metadata "
    "is served); add it to NEXUS_HTTP_ALLOW to allow it"
)

# (policy as sent, the 422's (loc, message) pairs; loc after ("body", "notify"))
INVALID = [
    ({}, [(("channels",), "field required")]),
    (
        {"channels": []},
        [(("channels",), "List should have at least 1 item after validation, not 0")],
    ),
    (
        {"channels": [HOOK] * 6},
        [(("channels",), "List should have at most 5 items after validation, not 6")],
    ),
    (
        {"channels": [{}]},
        [
            (
                ("channels", 0),
                "a channel needs a destination: sns_topic_arn "
                "(arn:aws:sns:REGION:ACCOUNT:NAME) or webhook_url",
            )
        ],
    ),
    (
        {"channels": [{**HOOK, **SNS}]},
        [
            (
                ("channels", 0),
                "a channel is one destination: give sns_topic_arn or webhook_url, not both",
            )
        ],
    ),
    (
        {"channels": [{"sns_topic_arn": "ops-alerts"}]},
        [
            (
                ("channels", 0, "sns_topic_arn"),
                "must be an SNS topic's ARN, arn:aws:sns:REGION:ACCOUNT:NAME",
            )
        ],
    ),
    (
        {"channels": [{"sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}]},
        [
            (
                ("channels", 0, "sns_topic_arn"),
                "must be an SNS topic's ARN, arn:aws:sns:REGION:ACCOUNT:NAME",
            )
        ],
    ),
    (
        {"channels": [{"webhook_url": "http://169.254.169.254/latest/meta-data/"}]},
        [(("channels", 0, "webhook_url"), LINK_LOCAL)],
    ),
    (
        {"channels": [{"webhook_url": "http://localhost:8080/"}]},
        [
            (
                ("channels", 0, "webhook_url"),
                "localhost is a loopback host name; add it to NEXUS_HTTP_ALLOW to allow it",
            )
        ],
    ),
    (
        {"channels": [{"webhook_url": "http://2130706433/"}]},
        [
            (
                ("channels", 0, "webhook_url"),
                "2130706433 is 127.0.0.1, a loopback address; "
                "add 127.0.0.1 or 2130706433 to NEXUS_HTTP_ALLOW to allow it",
            )
        ],
    ),
    (
        {"channels": [{"webhook_url": "ftp://hooks.example.com/"}]},
        [(("channels", 0, "webhook_url"), "url must start with http:// or https://")],
    ),
    (
        {"channels": [{"webhook_url": "https://hooks.example.com/" + "x" * 2048}]},
        [(("channels", 0, "webhook_url"), "must be at most 2048 characters")],
    ),
    (
        {"channels": [{**SNS, "secret": REFERENCE}]},
        [
            (
                ("channels", 0),
                "secret signs a webhook's body; an SNS channel takes none",
            )
        ],
    ),
    (
        {"channels": [{**HOOK, "secret": {"$secret": "vault:/hooks"}}]},
        [
            (
                ("channels", 0, "secret"),
                'a secret reference is {"$secret": "ssm:/nexus/NAME"}: only SSM Parameter '
                "Store references (ssm:) are accepted",
            )
        ],
    ),
    (
        {"channels": [{**HOOK, "secret": "whsec-in-clear"}]},
        [(("channels", 0, "secret"), "Input should be a valid dictionary")],
    ),
    (
        {"channels": [HOOK], "after_consecutive_failures": 1},
        [(("after_consecutive_failures",), "Input should be greater than or equal to 2")],
    ),
    (
        {"channels": [HOOK], "after_consecutive_failures": 1001},
        [(("after_consecutive_failures",), "Input should be less than or equal to 1000")],
    ),
    (
        {"channels": [HOOK], "after_consecutive_failures": True},
        [(("after_consecutive_failures",), "Input should be a valid integer")],
    ),
    (
        {"channels": [HOOK], "on_failure": "yes"},
        [(("on_failure",), "Input should be a valid boolean")],
    ),
    (
        {"channels": [HOOK], "on_failures": True},
        [
            (
                ("on_failures",),
                "unknown field; accepted fields: after_consecutive_failures, channels, "
                "on_failure, on_recovery",
            )
        ],
    ),
]


@pytest.mark.parametrize(("data", "errors"), INVALID)
def test_a_policy_that_is_not_accepted_is_a_422_naming_the_field(
    data: dict[str, Any], errors: list[tuple[tuple[str | int, ...], str]]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_model(NotifyPolicy, data, ("body", "notify"))
    assert [(e.loc, e.msg) for e in caught.value.errors] == [
        (("body", "notify", *loc), msg) for loc, msg in errors
    ]


def test_an_unknown_field_of_a_channel_is_a_422_at_that_field() -> None:
    # The message's list of accepted fields is parse_model's, of the outer model.
    with pytest.raises(InvalidInput) as caught:
        parse_model(NotifyPolicy, {"channels": [{**HOOK, "headers": {}}]}, ("body", "notify"))
    [error] = caught.value.errors
    assert error.loc == ("body", "notify", "channels", 0, "headers")
    assert error.msg.startswith("unknown field")


def test_a_policy_of_channels_alone_notifies_on_failure_only() -> None:
    policy = NotifyPolicy.model_validate({"channels": [SNS]})
    assert (policy.on_failure, policy.on_recovery, policy.after_consecutive_failures) == (
        True,
        False,
        None,
    )


def test_a_channel_given_twice_is_kept_once() -> None:
    signed = {**HOOK, "secret": REFERENCE}
    policy = NotifyPolicy.model_validate({"channels": [SNS, signed, SNS, dict(signed), HOOK]})
    assert [c.model_dump(exclude_none=True) for c in policy.channels] == [SNS, signed, HOOK]


def test_a_loopback_webhook_is_accepted_when_the_stage_allows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(outbound.ALLOW_ENV, "127.0.0.1:8080")
    channel = Channel.model_validate({"webhook_url": "http://127.0.0.1:8080/hook"})
    assert channel.webhook_url == "http://127.0.0.1:8080/hook"


# -- the stage's default channel -----------------------------------------------------------


def test_no_default_channel_when_the_setting_is_unset() -> None:
    assert notify.default_channel({}) is None
    assert notify.default_channel({notify.DEFAULT_ENV: "  "}) is None


def test_the_default_channel_is_read_from_the_setting() -> None:
    channel = notify.default_channel({notify.DEFAULT_ENV: json.dumps(SNS)})
    assert channel == Channel(sns_topic_arn=TOPIC)


def test_the_default_channel_is_read_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.DEFAULT_ENV, json.dumps(SNS))
    assert notify.default_channel() == Channel(sns_topic_arn=TOPIC)
    monkeypatch.setenv(notify.DEFAULT_ENV, json.dumps(HOOK))
    assert notify.default_channel() == Channel(**HOOK)


def test_a_default_channel_that_is_not_json_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^NEXUS_NOTIFY_DEFAULT is 'arn:aws:sns:x', not JSON; "):
        notify.default_channel({notify.DEFAULT_ENV: "arn:aws:sns:x"})


def test_a_default_channel_that_is_no_channel_is_an_error_naming_the_setting_and_field() -> None:
    raw = json.dumps({"webhook_url": "http://169.254.169.254/"})
    with pytest.raises(ValueError) as caught:
        notify.default_channel({notify.DEFAULT_ENV: raw})
    message = str(caught.value)
    assert message.startswith(f"NEXUS_NOTIFY_DEFAULT is {raw!r}: webhook_url: 169.254.169.254 ")
    assert "a JSON object of one channel is accepted" in message
