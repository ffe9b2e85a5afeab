"""The client factory: --connect-to routing over real loopback sockets, and the SSRF guard."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading

import httpx
import pytest

from citewatch.net import (
    ConnectTo,
    NetSettings,
    PrivateAddressError,
    is_public_address,
    make_client,
)


@pytest.fixture
def loopback_server():
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib name
            seen.append(self.headers["Host"])
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()


@pytest.mark.parametrize(
    ("spec", "host", "port", "target"),
    [
        ("example.org:80:127.0.0.1:8080", "example.org", 80, ("127.0.0.1", 8080)),
        (":443:127.0.0.1:8443", "any.host", 443, ("127.0.0.1", 8443)),
        ("example.org::localhost:", "example.org", 81, ("localhost", 81)),
        ("[::1]:80:[::1]:8080", "::1", 80, ("::1", 8080)),
    ],
)
def test_connect_to_rules(spec, host, port, target):
    rule = ConnectTo.parse(spec)
    assert rule.matches(host, port)
    assert rule.target(host, port) == target


def test_bad_connect_to_is_rejected():
    with pytest.raises(ValueError):
        ConnectTo.parse("example.org:80:127.0.0.1")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("93.184.216.34", True),
    ],
)
def test_public_address_classification(address, public):
    assert is_public_address(address) is public


def test_connect_to_keeps_url_and_host_header(loopback_server):
    port, seen = loopback_server
    settings = NetSettings(connect_to=[ConnectTo.parse(f"cited.example:80:127.0.0.1:{port}")])

    async def go():
        async with make_client(settings) as client:
            return await client.get("http://cited.example/page")

    response = asyncio.run(go())
    assert response.status_code == 200
    assert str(response.url) == "http://cited.example/page"
    assert seen == ["cited.example"]


def test_private_addresses_are_refused_unless_allowed(loopback_server):
    port, seen = loopback_server

    async def go(settings):
        async with make_client(settings) as client:
            return await client.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(PrivateAddressError):
        asyncio.run(go(NetSettings()))
    assert seen == []
    assert asyncio.run(go(NetSettings(allow_private=True))).status_code == 200


def test_unresolvable_host_is_a_connect_error_with_a_dns_cause(monkeypatch):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # no DNS traffic from tests

    async def go():
        async with make_client(NetSettings(timeout=2)) as client:
            await client.get("http://no-such-host.invalid/")

    with pytest.raises(httpx.ConnectError) as info:
        asyncio.run(go())
    assert type(info.value.__cause__).__name__ == "NameResolutionError"


def test_a_failing_resolver_is_a_connection_error_not_a_dead_name(monkeypatch):
    def resolver_down(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", resolver_down)

    async def go():
        async with make_client(NetSettings(timeout=2)) as client:
            await client.get("http://some-host.example/")

    with pytest.raises(httpx.ConnectError) as info:
        asyncio.run(go())
    assert type(info.value.__cause__).__name__ != "NameResolutionError"


def test_closing_a_pool_that_never_connected_skips_the_cancel_shield(monkeypatch) -> None:
    """A check whose probes all went the wire route closes an empty httpcore pool: closing it
    must not build httpcore's cancel shield, whose anyio backend import costs tens of ms."""
    import httpcore._async.connection_pool as httpcore_pool

    from citewatch.httppool import LinearConnectionPool

    def shield_built() -> None:
        raise AssertionError("the cancel shield was built for nothing to close")

    monkeypatch.setattr(httpcore_pool, "AsyncShieldCancellation", shield_built)
    asyncio.run(LinearConnectionPool().aclose())
