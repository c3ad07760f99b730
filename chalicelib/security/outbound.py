"""The outbound-request guard: a task's HTTP request reaches only what it may (issue 10, item 5).

A job names the URL that `nexus.http_request` calls, and whoever may create a job is not
necessarily trusted with the network the worker sits in. Without a guard a job could read the
instance metadata service (169.254.169.254), the Lambda runtime API, or any service on the VPC,
and the answer would land in the run's history for the job's author to read.

The rules
    A request may go only to an `http` or `https` URL whose host resolves to public addresses.
    Refused: loopback, private (RFC 1918), shared carrier-grade NAT (100.64.0.0/10), link-local
    (where cloud instance metadata is served), unique-local IPv6, 0.0.0.0/8 and the unspecified
    address, multicast, broadcast and reserved addresses, and the IPv4-mapped, NAT64 and 6to4
    IPv6 forms of any of these. The host is resolved first and every address it resolves to
    must pass: one forbidden address refuses the request. The check runs again on every
    redirect, and a request follows at most `MAX_REDIRECTS` of them.

    The stage may allow what is refused: `NEXUS_HTTP_ALLOW` is a comma-separated list of host
    names (`hooks.internal`, matched exactly and case-insensitively), addresses or CIDR ranges
    (`10.0.0.5`, `10.1.0.0/16`, `fd00::/8`), each optionally with a port (`hooks.internal:8443`,
    `127.0.0.1:8080`, `[::1]:8080`). It is read on every check, so a change needs no restart.
    The Lambda runtime API (`AWS_LAMBDA_RUNTIME_API`) is never allowed: calling it could end
    or hijack the worker's own invocation, and no job has a reason to.

Odd spellings of an address
    `http://2130706433/`, `http://0x7f.1/` and `http://0177.0.0.1/` are all 127.0.0.1 to the
    C library. The guard does not try to recognize spellings: it resolves the host with
    `socket.getaddrinfo`, the same call that connecting would make, and checks the addresses
    that come back. `literal_problem` (used when a job is created, without DNS) does parse
    the BSD `inet_aton` spellings itself, so such a URL is refused at once.

DNS rebinding
    A host name can resolve to a public address when it is checked and to 127.0.0.1 a moment
    later, when the connection resolves it again. So nothing resolves it again: `fetch` opens
    its socket to the very address the guard checked (`_PinnedConnection.connect`), while the
    request keeps the URL's host name in its `Host` header, and TLS uses that name for SNI and
    for checking the certificate. The name is resolved once per hop, and the address checked
    is the address connected to.

Time
    `fetch` bounds the whole request, resolution, connecting, every redirect and reading the
    body, by one total timeout. A per-socket timeout alone would not: a server that sends a
    byte a second never lets one read wait long. So a watchdog shuts the socket down when the
    total time is up, which ends any read in progress.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

ALLOW_ENV = "NEXUS_HTTP_ALLOW"
RUNTIME_API_ENV = "AWS_LAMBDA_RUNTIME_API"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Request headers that carry a credential: not sent on to another origin after a redirect.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, as strings.
Resolver = Callable[[str, int], list[str]]

_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


class ForbiddenDestination(ValueError):
    """The guard refuses a destination. The message names the host, the address and the rule."""

    def __init__(self, message: str, *, host: str, address: str | None, rule: str) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.rule = rule


class OutboundFailure(RuntimeError):
    """A guarded request did not complete: unresolvable host, too many redirects, timeout."""


# -- the rules ----------------------------------------------------------------------------

_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the unspecified address", ("0.0.0.0/32", "::/128")),
    # Connecting to 0.x.x.x reaches this host on Linux, like loopback.
    ("a 'this network' address (0.0.0.0/8)", ("0.0.0.0/8",)),
    ("a loopback address", ("127.0.0.0/8", "::1/128")),
    ("a private (RFC 1918) address", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("a shared carrier-grade NAT (RFC 6598) address", ("100.64.0.0/10",)),
    (
        "a link-local address (169.254.0.0/16, where cloud instance metadata is served)",
        ("169.254.0.0/16",),
    ),
    ("a link-local address", ("fe80::/10",)),
    ("a unique-local (private IPv6) address", ("fc00::/7",)),
    ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
    ("the broadcast address", ("255.255.255.255/32",)),
    ("a reserved address (240.0.0.0/4)", ("240.0.0.0/4",)),
)
_NETWORKS: tuple[tuple[str, IPNetwork], ...] = tuple(
    (rule, ipaddress.ip_network(net)) for rule, nets in _RULES for net in nets
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def forbidden_rule(ip: IPAddress) -> str | None:
    """Why no request may go to `ip` unless allowed, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, v4 = embedded
            rule = forbidden_rule(v4)
            return None if rule is None else f"{kind} form of {v4}, {rule}"
    for rule, network in _NETWORKS:
        if ip in network:
            return rule
    # What the table does not name: documentation and benchmarking ranges, IETF protocol
    # assignments, the IPv4-compatible ::/96, and the like. None is on the public internet.
    if not ip.is_global or ip.is_reserved:
        return "a special-purpose address, not on the public internet"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that reach it."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6", ip.ipv4_mapped
    if ip in _NAT64:
        return "a NAT64 IPv6", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 IPv6", ip.sixtofour
    return None


def _plain(ip: IPAddress) -> IPAddress:
    """`ip`, or the IPv4 address it maps when it is IPv4-mapped (::ffff:10.0.0.5)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# -- parsing a URL (no DNS) -----------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where a URL points, before any DNS: what the guard checks and the request is sent to."""

    scheme: str
    host: str  # lower case, ASCII (IDNA), without brackets or userinfo
    port: int
    target: str  # the path and query, as sent in the request line
    username: str | None
    password: str | None

    @property
    def name(self) -> str:
        """The host as the allowlist matches it: without a trailing dot."""
        return self.host.rstrip(".")

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.name, self.port


def parse(url: Any) -> Destination:
    """Read `url`, or raise ValueError saying what is wrong with it (never showing a password)."""
    if not isinstance(url, str):
        raise ValueError("url must be a string")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("url must start with http:// or https://")
    if not host:
        raise ValueError("url has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"url has a host name that is not valid: {host!r}") from None
    if not _HOST_NAME.fullmatch(host) and not _is_ip(host):
        raise ValueError(f"url has a host name that is not valid: {host!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(
        scheme=scheme,
        host=host,
        port=port if port is not None else (443 if scheme == "https" else 80),
        target=target,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def redact(url: str) -> str:
    """`url` fit for a message or a log: any password in it replaced by `***`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "(a URL that cannot be read)"
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def literal_ip(host: str) -> IPAddress | None:
    """The address `host` spells without DNS, in any spelling the C library accepts."""
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _inet_aton(host)


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """BSD inet_aton: 1-4 parts, each decimal, octal (0177) or hex (0x7f); the last part fills
    the bytes left, so `2130706433`, `127.1` and `0x7f.0.1` are all 127.0.0.1."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2] in ("0x", "0X"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
    *head, last = values
    if any(not 0 <= v <= 255 for v in head) or not 0 <= last < 256 ** (4 - len(head)):
        return None
    number = last
    for i, value in enumerate(head):
        number += value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


# -- the allowlist --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One NEXUS_HTTP_ALLOW entry: a host name or a network, optionally on one port."""

    host: str | None
    network: IPNetwork | None
    port: int | None

    def permits(self, name: str, ip: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == name
        return ip is not None and self.network is not None and _plain(ip) in self.network


def _parse_entry(text: str) -> _Entry | None:
    host, port_text = text, None
    if text.startswith("["):  # [::1] or [::1]:8080
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] or None
    elif text.count(":") == 1:  # a name or an IPv4 address, with a port
        host, port_text = text.split(":")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    try:
        return _Entry(None, ipaddress.ip_network(host, strict=False), port)
    except ValueError:
        pass
    if "/" not in host and _HOST_NAME.fullmatch(host):
        return _Entry(host.rstrip("."), None, port)
    return None


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[_Entry, ...]
    invalid: tuple[str, ...]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Allowlist:
        """NEXUS_HTTP_ALLOW as it is now (read on every call, so tests can set it)."""
        text = (os.environ if environ is None else environ).get(ALLOW_ENV, "")
        entries, invalid = [], []
        for raw in text.split(","):
            if raw.strip():
                entry = _parse_entry(raw.strip().lower())
                if entry is None:
                    invalid.append(raw.strip())
                else:
                    entries.append(entry)
        return cls(tuple(entries), tuple(invalid))

    def permits(self, name: str, ip: IPAddress | None, port: int) -> bool:
        return any(entry.permits(name, ip, port) for entry in self.entries)

    def require_valid(self) -> None:
        if self.invalid:
            raise ValueError(
                f"{ALLOW_ENV} has entries that are neither a host name nor an address or CIDR"
                f" range (each optionally with :port): {', '.join(map(repr, self.invalid))}"
            )


def _runtime_api(environ: Mapping[str, str]) -> tuple[str, int] | None:
    host, sep, port = environ.get(RUNTIME_API_ENV, "").strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]").lower(), int(port)


def _is_local(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_unspecified or ip in _THIS_NETWORK


def _is_runtime_api(dest: Destination, ip: IPAddress | None, runtime: tuple[str, int]) -> bool:
    host, port = runtime
    if dest.port != port:
        return False
    if dest.name == host:
        return True
    runtime_ip = literal_ip(host)
    if ip is None or runtime_ip is None:
        return False
    a, b = _plain(ip), _plain(runtime_ip)
    # The runtime API listens on loopback: any loopback address (or 0.0.0.0) reaches it.
    return a == b or (_is_local(a) and _is_local(b))


# -- the checks -----------------------------------------------------------------------------


def _refusal(
    dest: Destination,
    ip: IPAddress | None,
    allow: Allowlist,
    environ: Mapping[str, str],
    verb: str,
) -> ForbiddenDestination | None:
    """Why a request to `dest` at address `ip` is refused, or None when it may go."""
    runtime = _runtime_api(environ)
    if runtime is not None and _is_runtime_api(dest, ip, runtime):
        rule = f"the Lambda runtime API ({RUNTIME_API_ENV})"
        return ForbiddenDestination(
            f"{dest.host}:{dest.port} is {rule}; no task may call it, whatever {ALLOW_ENV} says",
            host=dest.host,
            address=None if ip is None else str(ip),
            rule=rule,
        )
    if ip is None:
        if dest.name == "localhost" or dest.name.endswith(".localhost"):
            rule = "a loopback host name"
            if allow.permits(dest.name, None, dest.port):
                return None
            return ForbiddenDestination(
                f"{dest.host} is {rule}; add it to {ALLOW_ENV} to allow it",
                host=dest.host,
                address=None,
                rule=rule,
            )
        return None
    forbidden = forbidden_rule(ip)
    if forbidden is None or allow.permits(dest.name, ip, dest.port):
        return None
    if _spelled(dest.host) == ip:
        message = f"{dest.host} is {forbidden}; add it to {ALLOW_ENV} to allow it"
    else:
        message = (
            f"{dest.host} {verb} {ip}, {forbidden}; "
            f"add {ip} or {dest.host} to {ALLOW_ENV} to allow it"
        )
    return ForbiddenDestination(message, host=dest.host, address=str(ip), rule=forbidden)


def _spelled(host: str) -> IPAddress | None:
    """The address `host` is written as in standard notation (not the odd spellings)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def literal_problem(url: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with `url` that can be seen without DNS, or None.

    For checking a job when it is created: a malformed URL, another scheme, `localhost`, or an
    address literal (in any spelling) the guard refuses. A host name is not resolved here: it
    may resolve differently when the job runs, and `check` runs again then.
    """
    environ = os.environ if environ is None else environ
    try:
        dest = parse(url)
    except ValueError as exc:
        return str(exc)
    # An entry the stage got wrong is the operator's problem, reported when a run uses it.
    allow = Allowlist.from_env(environ)
    refusal = _refusal(dest, literal_ip(dest.host), allow, environ, "is")
    return None if refusal is None else str(refusal)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as getaddrinfo gives them (and connecting would)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    families = (socket.AF_INET, socket.AF_INET6)
    return list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in families))


@dataclass(frozen=True)
class Checked:
    """A destination the guard accepted, and the addresses it accepted it at."""

    destination: Destination
    addresses: tuple[str, ...]


def check(
    url: Any, *, resolve: Resolver = resolve_host, environ: Mapping[str, str] | None = None
) -> Checked:
    """Resolve `url`'s host and accept it, or raise ForbiddenDestination naming the rule.

    Every address the host resolves to must pass; connect only to those (`fetch` does).
    """
    environ = os.environ if environ is None else environ
    dest = parse(url)
    allow = Allowlist.from_env(environ)
    allow.require_valid()
    refusal = _refusal(dest, None, allow, environ, "is")
    if refusal is not None:
        raise refusal
    try:
        addresses = resolve(dest.host, dest.port)
    except OSError as exc:
        raise OutboundFailure(f"{dest.host} could not be resolved: {exc}") from exc
    if not addresses:
        raise OutboundFailure(f"{dest.host} resolved to no address")
    for address in addresses:
        # An IPv6 address may carry its zone (fe80::1%eth0).
        ip = ipaddress.ip_address(address.partition("%")[0])
        refusal = _refusal(dest, ip, allow, environ, "resolves to")
        if refusal is not None:
            raise refusal
    return Checked(dest, tuple(addresses))


# -- the guarded request --------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes  # at most the cap `fetch` was given
    truncated: bool  # the body went on past the cap
    url: str  # the final URL, after redirects, with any password redacted


@functools.cache
def _default_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Deadline:
    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.exceeded()
        return left

    def exceeded(self) -> OutboundFailure:
        return OutboundFailure(
            f"{self.what} did not finish within its total timeout of {self.seconds:g} s"
        )


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection for the URL's host that connects only to the checked addresses.

    http.client puts `host` in the Host header; connect() never resolves it again.
    """

    def __init__(self, checked: Checked, deadline: _Deadline, tls: ssl.SSLContext) -> None:
        dest = checked.destination
        super().__init__(dest.host, dest.port, timeout=deadline.remaining())
        self.default_port = 443 if dest.scheme == "https" else 80  # no ":443" in Host
        self._checked = checked
        self._deadline = deadline
        self._tls = tls

    def connect(self) -> None:
        dest = self._checked.destination
        failures = []
        for address in self._checked.addresses:
            try:
                sock = _open_socket(address, dest.port, self._deadline.remaining())
                break
            except TimeoutError:
                raise self._deadline.exceeded() from None
            except OSError as exc:
                failures.append(f"{address}: {exc}")
        else:
            raise OutboundFailure(
                f"could not connect to {dest.host} port {dest.port} ({'; '.join(failures)})"
            )
        if dest.scheme == "https":
            try:
                # The name, not the address: SNI and the certificate check are for the host.
                sock = self._tls.wrap_socket(sock, server_hostname=dest.name)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


def _open_socket(address: str, port: int, timeout: float) -> socket.socket:
    # AI_NUMERICHOST: `address` is the checked address; this must never become a DNS query.
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _Watchdog:
    """Shuts `sock` down when `seconds` pass, ending any read in progress on it."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.fired = False
        self._sock = sock
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="outbound-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        if self._stop.wait(self._seconds):
            return
        self.fired = True
        with contextlib.suppress(OSError):
            # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would
            # tear down its TLS state under the reading thread.
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


def _without(headers: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in names}


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
    body_cap: int,
    resolve: Resolver = resolve_host,
    tls: ssl.SSLContext | None = None,
    environ: Mapping[str, str] | None = None,
) -> Response:
    """Send a request through the guard, following up to MAX_REDIRECTS redirects.

    Every hop is checked (`check`) and connected to at the address checked. A 303, and a
    301 or 302 answering a POST, turn the request into a GET without body, as browsers do;
    307 and 308 repeat it as it was. Credentials (Authorization, Cookie) are not sent on to
    another origin. `timeout` bounds everything; at most `body_cap` bytes of the body are read.
    """
    deadline = _Deadline(timeout, f"{method.upper()} {redact(url)}")
    method = method.upper()
    sent = dict(headers or {})
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            checked = _check_within(current, deadline, resolve, environ)
        except ForbiddenDestination as exc:
            if current == url:
                raise
            raise ForbiddenDestination(
                f"{exc} (a redirect from {redact(url)} led to {redact(current)})",
                host=exc.host,
                address=exc.address,
                rule=exc.rule,
            ) from None
        status, location, payload, truncated = _exchange(
            checked, method, sent, body, deadline, body_cap, tls or _default_tls()
        )
        if location is None:
            return Response(status, payload, truncated, redact(current))
        following = urljoin(current, location)
        if hop == MAX_REDIRECTS:
            raise OutboundFailure(
                f"{redact(url)} redirected more than {MAX_REDIRECTS} times"
                f" (the last time to {redact(following)})"
            )
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
            sent = _without(sent, frozenset({"content-type", "content-length"}))
        try:
            origin = parse(following).origin
        except ValueError as exc:
            raise OutboundFailure(
                f"{redact(current)} redirected to {redact(following)}, which is refused: {exc}"
            ) from None
        if origin != checked.destination.origin:
            sent = _without(sent, CREDENTIAL_HEADERS)
        current = following
    raise AssertionError("unreachable")


def _check_within(
    url: str, deadline: _Deadline, resolve: Resolver, environ: Mapping[str, str] | None
) -> Checked:
    """`check`, with name resolution bounded by the deadline (getaddrinfo takes no timeout)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["checked"] = check(url, resolve=resolve, environ=environ)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="outbound-resolve", daemon=True)
    thread.start()
    thread.join(deadline.remaining())
    if thread.is_alive():
        raise deadline.exceeded()
    if "error" in outcome:
        raise outcome["error"]
    checked: Checked = outcome["checked"]
    return checked


def _exchange(
    checked: Checked,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    deadline: _Deadline,
    body_cap: int,
    tls: ssl.SSLContext,
) -> tuple[int, str | None, bytes, bool]:
    """One request and its answer: (status, redirect location or None, body, truncated)."""
    dest = checked.destination
    hop_headers = dict(headers)
    if dest.username is not None and not any(k.lower() == "authorization" for k in headers):
        token = base64.b64encode(f"{dest.username}:{dest.password or ''}".encode()).decode()
        hop_headers["Authorization"] = f"Basic {token}"
    conn = _PinnedConnection(checked, deadline, tls)
    response: http.client.HTTPResponse | None = None
    try:
        try:
            conn.connect()
        except TimeoutError:
            raise deadline.exceeded() from None
        except (OSError, http.client.HTTPException) as exc:
            raise OutboundFailure(f"{deadline.what}: {exc}") from exc
        assert conn.sock is not None
        with _Watchdog(conn.sock, deadline.remaining()) as watchdog:
            try:
                conn.request(method, dest.target, body=body, headers=hop_headers)
                response = conn.getresponse()
                location = response.getheader("Location")
                if response.status in REDIRECT_STATUSES and location:
                    return response.status, location, b"", False
                payload = response.read(body_cap + 1)
            except (OSError, http.client.HTTPException) as exc:
                if watchdog.fired:
                    raise deadline.exceeded() from exc
                raise OutboundFailure(f"{deadline.what}: {exc}") from exc
        if watchdog.fired:  # the body may have ended early because the socket was shut
            raise deadline.exceeded()
        return response.status, None, payload[:body_cap], len(payload) > body_cap
    finally:
        # The rest of the body is never read: closing drops it with the connection.
        if response is not None:
            response.close()
        conn.close()
