"""nexus.http_request against real HTTP servers on 127.0.0.1: what the outbound guard stops.

Each server is http.server in a thread. Loopback is forbidden by default, so a test that
needs a server reachable lists it in NEXUS_HTTP_ALLOW, the way a stage would list an
internal service it trusts; a name that must look public resolves through a patched
getaddrinfo.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.security import outbound
from chalicelib.security.outbound import ForbiddenDestination, OutboundFailure
from chalicelib.tasks import RunContext, registry
from chalicelib.tasks.builtin import TaskFailed

CTX = RunContext(
    job_id=1, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC), execution_id="1-x-1", attempt=1
)
SECRET = "TOP-SECRET-instance-credentials"


def http_request(**kwargs: Any) -> dict[str, Any]:
    return registry.get("nexus.http_request").func(CTX, **kwargs)  # type: ignore[no-any-return]


class Handler(BaseHTTPRequestHandler):
    """/secret, /redirect?to=URL&status=302, /chain/N (N redirects, then 200), /echo (the
    request as seen), /big (10 KB), /slow?where=headers|body (a byte every 0.2 s)."""

    server: Server

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/secret":
            self.answer(200, SECRET.encode())
        elif url.path == "/redirect":
            self.send_response(int(query.get("status", "302")))
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path.startswith("/chain/"):
            left = int(url.path.rsplit("/", 1)[1])
            if left == 0:
                self.answer(200, b"end of the chain")
            else:
                self.send_response(302)
                self.send_header("Location", f"/chain/{left - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif url.path == "/echo":
            length = int(self.headers.get("Content-Length") or 0)
            seen = {
                "method": self.command,
                "body": self.rfile.read(length).decode(),
                "authorization": self.headers.get("Authorization"),
                "host": self.headers.get("Host"),
            }
            self.answer(200, json.dumps(seen).encode())
        elif url.path == "/big":
            self.answer(200, b"x" * 10_000)
        elif url.path == "/slow":
            self.trickle(query.get("where", "body"))
        else:
            self.answer(404, b"no such page")

    do_POST = do_GET

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def trickle(self, where: str) -> None:
        """Send a little every 0.2 s for 10 s: each read is quick, the whole never ends."""
        self.close_connection = True
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            if where == "body":
                self.wfile.write(b"Content-Length: 50\r\n\r\n")
            for _ in range(50):
                self.wfile.write(b"X-Slow: 1\r\n" if where == "headers" else b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up: what the test wants

    def log_message(self, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]


@pytest.fixture
def servers() -> Iterator[Callable[[], Server]]:
    started: list[Server] = []

    def start() -> Server:
        server = Server()
        server.thread.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
        server.thread.join()


@pytest.fixture
def server(servers: Callable[[], Server]) -> Server:
    return servers()


@pytest.fixture(autouse=True)
def _no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outbound.ALLOW_ENV, raising=False)
    monkeypatch.delenv(outbound.RUNTIME_API_ENV, raising=False)


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Make getaddrinfo answer `names` with the addresses listed, in turn (the last one
    repeats); every other name as it would. Returns the names looked up, in order."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            lookups.append(host)
            answers = names[host]
            address = answers[min(len(lookups) - 1, len(answers) - 1)]
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


# -- the task, called directly -------------------------------------------------------------


def test_a_request_to_a_loopback_server_is_refused_and_nothing_is_sent(server):
    with pytest.raises(ForbiddenDestination) as refused:
        http_request(url=server.url("/secret"))
    assert str(refused.value) == (
        "127.0.0.1 is a loopback address; add it to NEXUS_HTTP_ALLOW to allow it"
    )
    assert server.seen == []


def test_the_same_request_succeeds_once_the_allowlist_names_the_server(server, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    result = http_request(url=server.url("/secret"))
    assert result == {
        "status": 200,
        "body": SECRET,
        "truncated": False,
        "url": server.url("/secret"),
    }


@pytest.mark.parametrize("internal_host", ["localhost", "127.0.0.1"])
def test_a_redirect_from_an_allowed_server_to_an_internal_one_is_refused_at_the_redirect(
    servers, monkeypatch, internal_host
):
    front, internal = servers(), servers()
    # Only the first hop is allowed: it plays a public server that answers 302 inward.
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", f"127.0.0.1:{front.port}")
    inward = internal.url("/secret", host=internal_host)
    with pytest.raises(ForbiddenDestination) as refused:
        http_request(url=front.url(f"/redirect?to={inward}"))
    message = str(refused.value)
    assert message.startswith(f"{internal_host} is a loopback")
    assert f"a redirect from {front.url('/redirect')}" in message
    assert SECRET not in message
    assert len(front.seen) == 1
    assert internal.seen == []


def test_with_both_servers_allowed_the_redirect_is_followed(servers, monkeypatch):
    front, internal = servers(), servers()
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", f"127.0.0.1:{front.port}, localhost:{internal.port}")
    inward = internal.url("/secret", host="localhost")
    result = http_request(url=front.url(f"/redirect?to={inward}"))
    assert (result["status"], result["body"], result["url"]) == (200, SECRET, inward)


def test_five_redirects_are_followed_and_a_sixth_fails(server, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    assert http_request(url=server.url("/chain/5"))["body"] == "end of the chain"
    server.seen.clear()
    with pytest.raises(OutboundFailure, match=r"redirected more than 5 times"):
        http_request(url=server.url("/chain/6"))
    assert len(server.seen) == 6  # the 6th redirect is not followed


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_that_trickles_is_cut_off_by_the_total_timeout(server, monkeypatch, where):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    started = time.monotonic()
    with pytest.raises(OutboundFailure, match=r"within its total timeout of 1 s"):
        http_request(url=server.url(f"/slow?where={where}"), timeout=1)
    assert time.monotonic() - started < 3  # the server would go on for 10 s


def test_the_total_timeout_is_capped_at_the_tasks_own(server, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    seen: dict[str, float] = {}
    real_fetch = outbound.fetch

    def fetch(*args: Any, **kwargs: Any) -> outbound.Response:
        seen["timeout"] = kwargs["timeout"]
        return real_fetch(*args, **kwargs)

    monkeypatch.setattr(outbound, "fetch", fetch)
    http_request(url=server.url("/secret"), timeout=3600)
    assert seen["timeout"] == registry.get("nexus.http_request").timeout_seconds == 60


@pytest.mark.parametrize(
    ("status", "method", "kept"),
    [
        (303, "POST", False),
        (302, "POST", False),
        (301, "POST", False),
        (307, "POST", True),
        (308, "POST", True),
    ],
)
def test_a_redirect_turns_a_post_into_a_get_as_browsers_do_except_307_and_308(
    server, monkeypatch, status, method, kept
):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    result = http_request(
        url=server.url(f"/redirect?status={status}&to=/echo"), method=method, json_body={"a": 1}
    )
    seen = json.loads(result["body"])
    assert (seen["method"], seen["body"]) == (("POST", '{"a": 1}') if kept else ("GET", ""))


def test_credentials_are_not_sent_on_to_another_origin(servers, monkeypatch):
    front, other = servers(), servers()
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    auth = {"Authorization": "Bearer job-token"}
    same = http_request(url=front.url("/redirect?to=/echo"), headers=auth)
    assert json.loads(same["body"])["authorization"] == "Bearer job-token"
    moved = http_request(url=front.url(f"/redirect?to={other.url('/echo')}"), headers=auth)
    assert json.loads(moved["body"])["authorization"] is None


def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_shown(server, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    result = http_request(url=f"http://robot:pa%20ss@127.0.0.1:{server.port}/echo")
    assert json.loads(result["body"])["authorization"] == "Basic cm9ib3Q6cGEgc3M="  # robot:pa ss
    assert result["url"] == f"http://robot:***@127.0.0.1:{server.port}/echo"
    with pytest.raises(TaskFailed) as failed:
        http_request(url=f"http://robot:pa%20ss@127.0.0.1:{server.port}/nothing-here")
    assert (
        str(failed.value)
        == f"GET http://robot:***@127.0.0.1:{server.port}/nothing-here answered 404"
    )


def test_the_body_kept_is_capped(server, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    result = http_request(url=server.url("/big"))
    assert (len(result["body"]), result["truncated"]) == (4096, True)


def test_a_name_is_resolved_once_and_the_connection_goes_to_the_address_checked(
    server, monkeypatch
):
    # DNS rebinding: public-looking (allowed) when checked, elsewhere a moment later.
    lookups = fake_dns(monkeypatch, {"rebind.example.test": ["127.0.0.1", "10.255.255.1"]})
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    result = http_request(url=server.url("/echo", host="rebind.example.test"), timeout=5)
    assert result["status"] == 200
    assert lookups == ["rebind.example.test"]
    assert json.loads(result["body"])["host"] == f"rebind.example.test:{server.port}"


def test_https_checks_the_certificate_for_the_url_host_while_connecting_to_the_address(
    tmp_path, monkeypatch
):
    cert, key = self_signed(tmp_path, "secure.example.test")
    server = Server()
    names: list[str | None] = []
    tls_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_server.load_cert_chain(cert, key)

    def remember_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    tls_server.sni_callback = remember_sni  # type: ignore[assignment]
    server.socket = tls_server.wrap_socket(server.socket, server_side=True)
    server.thread.start()
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "secure.example.test,wrong.example.test")
    to_loopback = {"secure.example.test": ["127.0.0.1"], "wrong.example.test": ["127.0.0.1"]}

    def resolve(host: str, port: int) -> list[str]:
        return to_loopback[host]

    trust = ssl.create_default_context(cafile=cert)
    try:
        response = outbound.fetch(
            f"https://secure.example.test:{server.port}/secret",
            timeout=5,
            body_cap=100,
            resolve=resolve,
            tls=trust,
        )
        assert (response.status, response.body) == (200, SECRET.encode())
        assert names == ["secure.example.test"]
        with pytest.raises(OutboundFailure, match="CERTIFICATE_VERIFY_FAILED"):
            outbound.fetch(
                f"https://wrong.example.test:{server.port}/secret",
                timeout=5,
                body_cap=100,
                resolve=resolve,
                tls=trust,
            )
    finally:
        server.shutdown()
        server.server_close()
        server.thread.join()


def self_signed(directory: Path, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


# -- through the API and the worker --------------------------------------------------------


def http_job(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "call a hook",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "nexus.http_request",
        "task_kwargs": {"url": url},
        **overrides,
    }


def run_what_is_queued() -> None:
    """Be the worker Lambda for the messages on the work queue now."""
    import app as app_module
    from chalicelib.aws import client
    from chalicelib.config import get_settings

    out = client("sqs").receive_message(
        QueueUrl=get_settings().queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300
    )
    worker = app_module.worker_engine()
    for message in out.get("Messages", []):
        worker.process(message["Body"])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://localhost:9001/2018-06-01/runtime/invocation/next",
        "http://10.0.0.5/admin",
    ],
)
def test_creating_a_job_that_calls_a_forbidden_address_is_422_naming_the_url(api, url):
    response = api.post("/v1/jobs", http_job(url))
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", "task_kwargs", "url"]
    assert error["type"] == "value_error.url"
    assert "NEXUS_HTTP_ALLOW" in error["msg"]
    assert api.get("/v1/jobs").json == []


def test_the_metadata_refusal_says_what_the_address_is(api):
    response = api.post("/v1/jobs", http_job("http://169.254.169.254/latest/meta-data/"))
    assert response.json["detail"][0]["msg"] == (
        "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud instance metadata"
        " is served); add it to NEXUS_HTTP_ALLOW to allow it"
    )


def test_a_job_calling_an_address_the_stage_allows_is_created(api, monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "10.0.0.0/8")
    assert api.post("/v1/jobs", http_job("http://10.0.0.5/admin")).status_code == 201


def test_a_manual_run_overriding_the_url_with_a_forbidden_one_is_422_and_records_nothing(api):
    job = api.post("/v1/jobs", http_job("https://hooks.example.com/ping")).json
    response = api.post(
        f"/v1/jobs/{job['id']}/execute", {"task_kwargs": {"url": "http://127.0.0.1:9001/"}}
    )
    assert response.status_code == 422, response.json
    assert response.json["detail"][0]["loc"] == ["body", "task_kwargs", "url"]
    assert api.get(f"/v1/jobs/{job['id']}/executions").json == []


def test_a_job_whose_name_resolves_to_loopback_at_run_time_fails_with_the_guards_message(
    api, server, monkeypatch
):
    # A name is not resolved when the job is created; when it runs, it resolves inward.
    fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1"]})
    url = server.url("/secret", host="hooks.example.test")
    job = api.post("/v1/jobs", http_job(url, max_retries=0)).json
    assert api.post(f"/v1/jobs/{job['id']}/execute").status_code == 200
    run_what_is_queued()
    [run] = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert run["status"] == "failed"
    assert run["error"]["type"] == "ForbiddenDestination"
    assert run["error"]["message"] == (
        "hooks.example.test resolves to 127.0.0.1, a loopback address; "
        "add 127.0.0.1 or hooks.example.test to NEXUS_HTTP_ALLOW to allow it"
    )
    assert SECRET not in json.dumps(run)
    assert server.seen == []
