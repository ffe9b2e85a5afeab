"""The probes' HTTP/1.1 wire (citewatch.wire) against scripted servers on loopback sockets.

Each server answers from a script, one entry per request, in the order the requests arrive over
any connection; an entry is the raw bytes to send, an action (close, reset, hang), or
``(bytes, CLOSE)``: send, then close. The server
counts connections, so keep-alive reuse is observable.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from citewatch import wire
from citewatch.check.classify import outcome_for_exception
from citewatch.models import Outcome
from citewatch.wire import HeadersTooLarge, ResponseHeaders, WirePool, WireTimeouts

CLOSE, RESET, HANG = "close", "reset", "hang"

pytestmark = pytest.mark.asyncio


@dataclass
class Scripted:
    """A loopback server that answers each request with the next entry of ``script``."""

    script: list[bytes | str | tuple[bytes, str]]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                entry = self.script.pop(0) if self.script else CLOSE
                if entry == CLOSE:
                    break
                if entry == RESET:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                if entry == HANG:
                    await asyncio.sleep(30)
                    break
                answer, then = entry if isinstance(entry, tuple) else (entry, "")
                writer.write(answer)
                await writer.drain()
                if then == CLOSE:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def make_pool(timeout: float = 2.0, **kwargs: object) -> WirePool:
    async def targets(host: str, port: int) -> list[tuple[str, int]]:
        return [(host, port)]

    def no_tls() -> object:
        raise AssertionError("no TLS in these tests")

    return WirePool(targets, no_tls, WireTimeouts(timeout, timeout, timeout), **kwargs)  # type: ignore[arg-type]


async def get(
    pool: WirePool, server: Scripted, path: bytes = b"/", method: str = "GET"
) -> tuple[int, httpx.Headers, bytes]:
    response = await pool.request(
        method, ("http", "127.0.0.1", server.port), path, [(b"Host", b"site.test")]
    )
    try:
        body = b"".join([chunk async for chunk in response.chunks()])
    finally:
        await response.aclose()
    return response.status, response.headers, body


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[WirePool]:
    made = make_pool()
    yield made
    await made.aclose()


# -- requests and framing ------------------------------------------------------------------
async def test_the_request_line_and_headers_are_sent_as_given(pool: WirePool) -> None:
    async with Scripted([ok()]) as server:
        response = await pool.request(
            "HEAD",
            ("http", "127.0.0.1", server.port),
            b"/a/b?c=d",
            [(b"Host", b"site.test:8080"), (b"User-Agent", b"citewatch-test")],
        )
        await response.aclose()
    assert server.requests == [
        b"HEAD /a/b?c=d HTTP/1.1\r\nHost: site.test:8080\r\nUser-Agent: citewatch-test\r\n\r\n"
    ]


async def test_content_length_body_and_keep_alive_reuse(pool: WirePool) -> None:
    async with Scripted([ok(b"first"), ok(b"second")]) as server:
        assert (await get(pool, server))[2] == b"first"
        assert (await get(pool, server))[2] == b"second"
    assert server.connections == 1


async def test_chunked_body_with_extensions_and_trailers(pool: WirePool) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with Scripted([answer, ok(b"again")]) as server:
        status, _, body = await get(pool, server)
        assert (status, body) == (200, b"hello world")
        assert (await get(pool, server))[2] == b"again"
    assert server.connections == 1  # the chunked message was read to its end: reusable


async def test_lenient_head_bare_lf_obs_fold_and_junk_lines(pool: WirePool) -> None:
    answer = (
        b"HTTP/1.1 200\nContent-Type: text/html;\n  charset=utf-8\nnot a header line\n"
        b"X-Empty:\nContent-Length: 2\n\nhi"
    )
    async with Scripted([answer]) as server:
        status, headers, body = await get(pool, server)
    assert (status, body) == (200, b"hi")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-empty"] == ""
    assert "not a header line" not in str(headers)


async def test_interim_responses_are_skipped(pool: WirePool) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok()
    )
    async with Scripted([answer]) as server:
        status, headers, body = await get(pool, server)
    assert (status, body) == (200, b"hello")
    assert "link" not in headers


async def test_head_and_no_body_statuses_read_no_body(pool: WirePool) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
    async with Scripted([head, not_modified, ok(b"next")]) as server:
        status, headers, body = await get(pool, server, method="HEAD")
        assert (status, headers["content-length"], body) == (200, "1234", b"")
        assert (await get(pool, server))[0] == 304
        assert (await get(pool, server))[2] == b"next"
    assert server.connections == 1


async def test_connection_close_is_honoured(pool: WirePool) -> None:
    async with Scripted([ok(b"one", b"Connection: close\r\n"), ok(b"two")]) as server:
        assert (await get(pool, server))[2] == b"one"
        assert (await get(pool, server))[2] == b"two"
    assert server.connections == 2


async def test_http10_body_runs_to_the_close(pool: WirePool) -> None:
    async with Scripted([(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", CLOSE)]) as server:
        status, _, body = await get(pool, server)
    assert (status, body) == (200, b"until the end")


async def test_a_large_body_arrives_whole_under_flow_control(pool: WirePool) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB, past the read high-water mark
    async with Scripted([ok(big)]) as server:
        response = await pool.request(
            "GET", ("http", "127.0.0.1", server.port), b"/", [(b"Host", b"x")]
        )
        received = bytearray()
        async for chunk in response.chunks():
            received += chunk
            await asyncio.sleep(0)  # a slow reader: the socket must pause, then resume
        await response.aclose()
    assert bytes(received) == big


async def test_a_body_left_unread_closes_its_connection(pool: WirePool) -> None:
    async with Scripted([ok(b"x" * 100_000), ok(b"next")]) as server:
        response = await pool.request(
            "GET", ("http", "127.0.0.1", server.port), b"/", [(b"Host", b"x")]
        )
        async for _ in response.chunks():
            break
        await response.aclose()
        assert (await get(pool, server))[2] == b"next"
    assert server.connections == 2


async def test_a_chunked_body_whose_server_closes_instead_of_the_last_line_is_complete(
    pool: WirePool,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
    async with Scripted([(answer, CLOSE), ok(b"next")]) as server:
        assert (await get(pool, server))[2] == b"hello"
        assert (await get(pool, server))[2] == b"next"
    assert server.connections == 2  # complete, but that connection was not reused


async def test_ambiguous_framing_is_read_as_chunked_and_not_reused(pool: WirePool) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\n"
    )
    async with Scripted([answer, ok(b"next")]) as server:
        assert (await get(pool, server))[2] == b"hi"
        assert (await get(pool, server))[2] == b"next"
    assert server.connections == 2


async def test_the_socket_resumes_whenever_the_buffer_drains() -> None:
    """However bytes leave the buffer (body chunks, head or chunk-size lines), a paused socket
    is resumed, and a paused connection is never handed out for reuse."""

    class Transport:
        paused = False

        def pause_reading(self) -> None:
            self.paused = True

        def resume_reading(self) -> None:
            self.paused = False

        def is_closing(self) -> bool:
            return False

    for consume in ("take", "drop"):
        connection = wire._Connection(("http", "x", 80))
        transport = Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(b"x" * (wire.READ_HIGH_WATER + 1))
        assert transport.paused and not connection.usable_when_idle()
        getattr(connection, consume)(wire.READ_HIGH_WATER)
        assert not transport.paused and not connection.paused


# -- broken answers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n".encode(), "Content-Length"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "interim response 101"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
async def test_broken_framing_is_a_protocol_error(
    pool: WirePool, answer: bytes, message: str
) -> None:
    async with Scripted([answer]) as server:
        with pytest.raises(httpx.RemoteProtocolError, match=message) as caught:
            await get(pool, server)
    assert outcome_for_exception(caught.value)[0] is Outcome.SERVER_ERROR


async def test_a_truncated_body_is_a_connection_failure(pool: WirePool) -> None:
    async with Scripted(
        [(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", CLOSE)]
    ) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="peer closed") as caught:
            await get(pool, server)
    assert outcome_for_exception(caught.value)[0] is Outcome.CONNECT_ERROR


async def test_no_answer_at_all(pool: WirePool) -> None:
    async with Scripted([CLOSE]) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response") as caught:
            await get(pool, server)
    assert outcome_for_exception(caught.value)[0] is Outcome.CONNECT_ERROR


async def test_a_reset_is_a_read_error_caused_by_the_reset(pool: WirePool) -> None:
    async with Scripted([RESET]) as server:
        with pytest.raises(httpx.ReadError) as caught:
            await get(pool, server)
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert outcome_for_exception(caught.value)[0] is Outcome.CONNECT_ERROR


async def test_a_silent_server_times_out() -> None:
    pool = make_pool(timeout=0.2)
    async with Scripted([HANG]) as server:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await get(pool, server)
    await pool.aclose()
    assert outcome_for_exception(caught.value)[0] is Outcome.TIMEOUT


async def test_oversized_headers_are_refused(pool: WirePool) -> None:
    answer = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 5000 + b"\r\n\r\n"
    async with Scripted([answer]) as server:
        with pytest.raises(HeadersTooLarge):
            await pool.request(
                "GET", ("http", "127.0.0.1", server.port), b"/", [(b"Host", b"x")], head_limit=4096
            )


async def test_a_host_name_tls_cannot_use_is_an_invalid_url(pool: WirePool) -> None:
    with pytest.raises(httpx.InvalidURL) as caught:
        await pool.request("GET", ("https", "bad..name", 443), b"/", [(b"Host", b"bad..name")])
    assert outcome_for_exception(caught.value)[0] is Outcome.INVALID_URL


async def test_a_refused_connection_is_a_connect_error(pool: WirePool) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(httpx.ConnectError) as caught:
        await pool.request("GET", ("http", "127.0.0.1", port), b"/", [(b"Host", b"x")])
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert outcome_for_exception(caught.value)[0] is Outcome.CONNECT_ERROR


# -- keep-alive housekeeping ---------------------------------------------------------------
async def test_a_reused_connection_closed_before_answering_is_replaced(pool: WirePool) -> None:
    """A server that closes after each response without saying so (or whose keep-alive timeout
    races our reuse): the request goes again on a fresh connection, as browsers do."""
    async with Scripted([(ok(b"one"), CLOSE), ok(b"two")]) as server:
        assert (await get(pool, server))[2] == b"one"
        assert (await get(pool, server))[2] == b"two"
    assert server.connections == 2


async def test_a_reset_after_a_long_idle_time_is_replaced_too(
    pool: WirePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "STALE_AFTER", 0.0)
    async with Scripted([ok(b"one"), RESET, ok(b"two")]) as server:
        assert (await get(pool, server))[2] == b"one"
        assert (await get(pool, server))[2] == b"two"
    assert server.connections == 2


async def test_a_reset_right_after_reuse_is_evidence_not_retried(pool: WirePool) -> None:
    """Reused at once and reset without an answer: that is the server's doing (flaky)."""
    async with Scripted([ok(b"one"), RESET, ok(b"two")]) as server:
        assert (await get(pool, server))[2] == b"one"
        with pytest.raises(httpx.ReadError):
            await get(pool, server)
    assert server.connections == 1


async def test_a_fresh_connection_closed_without_answer_is_not_retried(pool: WirePool) -> None:
    async with Scripted([CLOSE, ok()]) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await get(pool, server)
    assert server.connections == 1


async def test_expired_idle_connections_are_not_reused(pool: WirePool) -> None:
    pool.keepalive_expiry = 0.0
    async with Scripted([ok(b"one"), ok(b"two")]) as server:
        await get(pool, server)
        await get(pool, server)
    assert server.connections == 2


async def test_idle_connections_are_capped() -> None:
    pool = make_pool(max_idle=1)
    async with Scripted([ok(), ok(), ok()]) as first, Scripted([ok()]) as second:
        await get(pool, first)
        await get(pool, second)  # evicts the idle connection to `first`
        await get(pool, first)
    await pool.aclose()
    assert first.connections == 2 and second.connections == 1


async def test_closing_the_pool_closes_every_connection() -> None:
    pool = make_pool()
    async with Scripted([ok(), HANG]) as server:
        await get(pool, server)
        connections = list(pool._open)
        await pool.aclose()
    assert connections and all(c.transport is None or c.transport.is_closing() for c in connections)


async def test_response_headers_answer_like_httpx_headers():
    """The wire's indexed headers give httpx's answers (case, repeats, empty values, latin-1)."""
    raw = [
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2, c=3"),
        (b"X-Empty", b""),
        (b"Caf\xe9", b"v\xe9"),
    ]
    ours, theirs = ResponseHeaders(raw), httpx.Headers(raw)
    for name in ("content-type", "SET-COOKIE", "x-empty", "missing", "caf\xe9"):
        assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)
        assert ours.get_list(name) == theirs.get_list(name)
        assert ours.get_list(name, split_commas=True) == theirs.get_list(name, split_commas=True)
    assert ours == theirs and ours.raw == theirs.raw and ours.encoding == theirs.encoding
    with pytest.raises(KeyError):
        ours["missing"]


async def test_response_headers_changed_through_the_mapping_are_never_stale():
    headers = ResponseHeaders([(b"Location", b"/a")])
    assert headers["location"] == "/a"
    headers["Location"] = "/b"
    assert headers["location"] == "/b"
    del headers["location"]
    assert "location" not in headers
    headers.update({"Retry-After": "5"})
    assert headers.get("retry-after") == "5"
    assert httpx.Response(200, headers=headers).headers["retry-after"] == "5"
