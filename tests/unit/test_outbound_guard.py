"""The outbound-request guard's decisions (chalicelib/security/outbound.py), without a network.

Host names resolve through a table given to `check`, so every rule is tried on the addresses a
name resolves to; the odd IPv4 spellings go through the real getaddrinfo, which parses them
without asking DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest

from chalicelib.security import outbound
from chalicelib.security.outbound import ForbiddenDestination, check, literal_problem


@pytest.fixture(autouse=True)
def _no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outbound.ALLOW_ENV, raising=False)
    monkeypatch.delenv(outbound.RUNTIME_API_ENV, raising=False)


def dns(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A resolver that answers from `table` and fails for any other name."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


# Every range the guard refuses, with the words its rule uses.
FORBIDDEN = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.0.0.5", "a private (RFC 1918) address"),
    ("172.16.0.1", "a private (RFC 1918) address"),
    ("172.31.255.255", "a private (RFC 1918) address"),
    ("192.168.1.1", "a private (RFC 1918) address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("255.255.255.255", "the broadcast address"),
    ("240.0.0.1", "a reserved address"),
    ("192.0.2.10", "not on the public internet"),  # documentation (TEST-NET-1)
    ("198.18.0.1", "not on the public internet"),  # benchmarking
    ("::ffff:127.0.0.1", "an IPv4-mapped IPv6 form of 127.0.0.1, a loopback address"),
    ("::ffff:169.254.169.254", "IPv4-mapped IPv6 form of 169.254.169.254, a link-local"),
    ("::ffff:10.0.0.5", "IPv4-mapped IPv6 form of 10.0.0.5, a private (RFC 1918)"),
    ("64:ff9b::a9fe:a9fe", "a NAT64 IPv6 form of 169.254.169.254"),
    ("2002:7f00:1::", "a 6to4 IPv6 form of 127.0.0.1"),
    ("::7f00:1", "not on the public internet"),  # IPv4-compatible, deprecated
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"]


@pytest.mark.parametrize(("address", "rule"), FORBIDDEN)
def test_a_name_resolving_into_a_forbidden_range_is_refused_with_its_rule(address, rule):
    with pytest.raises(ForbiddenDestination) as refused:
        check("https://service.example/path", resolve=dns({"service.example": [address]}))
    assert rule in refused.value.rule
    assert refused.value.host == "service.example"
    assert refused.value.address == str(ipaddress.ip_address(address))
    assert str(refused.value).startswith(f"service.example resolves to {refused.value.address}")


@pytest.mark.parametrize(("address", "rule"), FORBIDDEN)
def test_a_url_naming_a_forbidden_address_is_refused_at_job_creation(address, rule):
    host = f"[{address}]" if ":" in address else address
    problem = literal_problem(f"http://{host}/latest/meta-data/")
    assert problem is not None
    assert rule in problem
    assert problem.endswith("to NEXUS_HTTP_ALLOW to allow it")


@pytest.mark.parametrize("address", [*PUBLIC, "::ffff:8.8.8.8"])
def test_a_public_address_is_accepted(address):
    checked = check("http://service.example/", resolve=dns({"service.example": [address]}))
    assert checked.addresses == (address,)
    host = f"[{address}]" if ":" in address else address
    assert literal_problem(f"http://{host}/") is None


def test_the_refusal_names_the_host_the_address_and_the_rule_and_how_to_allow_it():
    with pytest.raises(ForbiddenDestination) as refused:
        check("http://10.0.0.5/", resolve=dns({"10.0.0.5": ["10.0.0.5"]}))
    assert str(refused.value) == (
        "10.0.0.5 is a private (RFC 1918) address; add it to NEXUS_HTTP_ALLOW to allow it"
    )
    assert isinstance(refused.value, ValueError)


def test_a_host_is_refused_when_any_one_of_its_addresses_is_forbidden():
    resolve = dns({"rebind.example": ["93.184.215.14", "2606:4700::1111", "10.0.0.5"]})
    with pytest.raises(ForbiddenDestination) as refused:
        check("http://rebind.example/", resolve=resolve)
    assert str(refused.value) == (
        "rebind.example resolves to 10.0.0.5, a private (RFC 1918) address; "
        "add 10.0.0.5 or rebind.example to NEXUS_HTTP_ALLOW to allow it"
    )


# 127.0.0.1 as the C library reads it in a URL's host: decimal, hex, octal, short forms.
SPELLINGS = ["2130706433", "0x7f.1", "0x7f.0.0.1", "0177.0.0.1", "127.1", "0x7f000001"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_odd_spellings_of_loopback_resolve_to_it_and_are_refused(spelling):
    with pytest.raises(ForbiddenDestination) as refused:
        check(f"http://{spelling}:8080/")  # the real getaddrinfo: these need no DNS
    assert refused.value.address == "127.0.0.1"
    assert refused.value.rule == "a loopback address"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_odd_spellings_of_loopback_are_refused_at_job_creation_without_dns(spelling):
    assert literal_problem(f"http://{spelling}/") == (
        f"{spelling} is 127.0.0.1, a loopback address; "
        f"add 127.0.0.1 or {spelling} to NEXUS_HTTP_ALLOW to allow it"
    )


def test_the_metadata_address_in_decimal_and_hex_is_refused_at_job_creation():
    for spelling in ("2852039166", "0xa9.0xfe.0xa9.0xfe", "0251.0376.0251.0376"):
        assert "169.254.169.254, a link-local address" in str(
            literal_problem(f"http://{spelling}/latest/meta-data/")
        )


@pytest.mark.parametrize(
    "url",
    ["http://localhost/", "http://LocalHost:8080/x", "http://localhost./", "http://a.localhost/"],
)
def test_localhost_is_refused_at_job_creation(url):
    assert "is a loopback host name; add it to NEXUS_HTTP_ALLOW" in str(literal_problem(url))


def test_job_creation_never_resolves_a_name(monkeypatch):
    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("literal_problem must not resolve names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert literal_problem("https://metadata.google.internal/computeMetadata/v1/") is None
    assert literal_problem("http://127.0.0.1.nip.io/") is None  # the run-time check's job


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/"])
def test_only_http_and_https_are_accepted(url):
    assert literal_problem(url) == "url must start with http:// or https://"
    with pytest.raises(ValueError, match=r"http:// or https://"):
        check(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http:///path", "url has no host"),
        ("http://example.com:99999/", "url is not a valid URL"),
        ("http://exa mple.com/", "not valid"),
        (42, "url must be a string"),
    ],
)
def test_a_malformed_url_is_refused_saying_why(url, problem):
    assert problem in str(literal_problem(url))


def test_the_allowlist_names_a_host_exactly_and_in_any_case(monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", " Hooks.Internal , other.internal")
    resolve = dns({name: ["10.0.0.5"] for name in ("hooks.internal", "x.hooks.internal")})
    assert check("http://HOOKS.internal/", resolve=resolve).addresses == ("10.0.0.5",)
    assert check("http://hooks.internal./", resolve=dns({"hooks.internal.": ["10.0.0.5"]}))
    with pytest.raises(ForbiddenDestination):
        check("http://x.hooks.internal/", resolve=resolve)


def test_the_allowlist_names_addresses_and_cidr_ranges(monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "10.1.0.0/16,192.168.0.7,fd00::/8")
    allowed = ["10.1.2.3", "10.1.255.255", "192.168.0.7", "::ffff:10.1.0.9", "fd00::5"]
    refused = ["10.2.0.1", "192.168.0.8", "127.0.0.1", "fc00::5"]
    for address in allowed:
        check("http://svc.example/", resolve=dns({"svc.example": [address]}))
    for address in refused:
        with pytest.raises(ForbiddenDestination):
            check("http://svc.example/", resolve=dns({"svc.example": [address]}))
    assert literal_problem("http://10.1.2.3/") is None
    assert literal_problem("http://10.2.0.1/") is not None


def test_an_allowlist_entry_with_a_port_allows_that_port_only(monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1:8080,hooks.internal:8443,[::1]:9000")
    resolve = dns({"127.0.0.1": ["127.0.0.1"], "hooks.internal": ["10.0.0.5"], "::1": ["::1"]})
    check("http://127.0.0.1:8080/", resolve=resolve)
    check("https://hooks.internal:8443/", resolve=resolve)
    check("http://[::1]:9000/", resolve=resolve)
    for url in ("http://127.0.0.1:8081/", "https://hooks.internal/", "http://[::1]/"):
        with pytest.raises(ForbiddenDestination):
            check(url, resolve=resolve)


def test_the_allowlist_allows_localhost_by_name(monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "localhost")
    assert literal_problem("http://localhost:8000/") is None
    check("http://localhost:8000/", resolve=dns({"localhost": ["127.0.0.1", "::1"]}))


def test_the_lambda_runtime_api_is_refused_even_when_the_allowlist_covers_it(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.0/8,localhost")
    resolve = dns({"127.0.0.1": ["127.0.0.1"], "localhost": ["127.0.0.1"], "0": ["0.0.0.0"]})
    for url in (
        "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
        "http://localhost:9001/",
    ):
        with pytest.raises(ForbiddenDestination, match="the Lambda runtime API"):
            check(url, resolve=resolve)
    assert "Lambda runtime API" in str(literal_problem("http://127.0.0.2:9001/"))
    check("http://127.0.0.1:9002/", resolve=resolve)  # another port on loopback is allowed


def test_an_allowlist_entry_that_cannot_be_read_fails_the_run_naming_it(monkeypatch):
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "10.0.0.0/33, ok.internal, bad host")
    with pytest.raises(ValueError, match=r"'10.0.0.0/33', 'bad host'"):
        check("http://ok.internal/", resolve=dns({"ok.internal": ["10.0.0.5"]}))
    # At job creation it is not the caller's fault: the valid entries still apply.
    assert literal_problem("http://10.0.0.5/") is not None


def test_a_password_in_the_url_never_appears_in_a_message():
    url = "http://admin:s3cret-pw@10.0.0.5/"
    assert "s3cret" not in str(literal_problem(url))
    with pytest.raises(ForbiddenDestination) as refused:
        check(url, resolve=dns({"10.0.0.5": ["10.0.0.5"]}))
    assert "s3cret" not in str(refused.value)
    assert outbound.redact(url) == "http://admin:***@10.0.0.5/"
    assert outbound.redact("https://example.com/a?b=c") == "https://example.com/a?b=c"


def test_a_name_that_does_not_resolve_fails_saying_so():
    with pytest.raises(outbound.OutboundFailure, match=r"nowhere\.example could not be resolved"):
        check("http://nowhere.example/", resolve=dns({}))
