"""The probes' own HTTP/1.1 wire: a keep-alive pool per origin over asyncio protocols.

A check is thousands of small GET/HEAD exchanges, and per exchange httpcore's pool, its anyio
locks, cancel scopes and events cost more CPU than the network did (about 0.35 ms of the
0.6 ms a probe took on the shared benchmark): with a hundred requests in flight a check was
CPU-bound. This module sends the same requests with none of that machinery:

* one :class:`asyncio.Protocol` per connection, reading into a bounded buffer (flow control
  past :data:`READ_HIGH_WATER`), timeouts as loop timers;
* the response head and body framing (RFC 9112 §6: HEAD/1xx/204/304, chunked, Content-Length,
  close-delimited) parsed here, leniently where browsers are lenient (bare LF line ends, junk
  header lines, obs-fold), strictly where framing is at stake (conflicting lengths, bad chunk
  sizes), so that a page a browser shows is not called broken;
* keep-alive reuse per origin (LIFO, expiry after :attr:`WirePool.keepalive_expiry`, oldest idle
  connection evicted first); a request on a reused connection that the server closed before
  answering (its keep-alive timeout racing our reuse, or a server that closes after each
  response without saying so) goes again, once, on a fresh connection, as browsers and curl do
  (GET and HEAD are safe to repeat) — but a *reset* of a connection reused at once is the
  server's doing, and stays evidence; a response not read to its end closes its connection;
* connecting goes through :meth:`citewatch.net.RoutingBackend.targets`: the same
  ``--connect-to`` rules, DNS cache and SSRF guard as every other client, so every redirect hop
  is guarded; TLS is asyncio's, with the context (system store + ``--cacert``) of the client.

Errors are the httpx exceptions httpx would raise for the same failure, with the underlying
error as ``__cause__`` (``ssl.SSLCertVerificationError``, ``ConnectionResetError``,
:class:`citewatch.net.NameResolutionError`, …), so classification does not know which route a
probe took. Scheduling (global and per-host limits) is the caller's: the pool never queues.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpcore
import httpx

#: Buffered, not yet consumed bytes above which a connection stops reading from its socket.
READ_HIGH_WATER = 256 * 1024
#: A reused connection idle this long that fails before any answer is retried even if the
#: failure was a reset (a keep-alive timeout race); see WirePool.request.
STALE_AFTER = 1.0
#: Largest response head (status line + headers) accepted, whatever the caller's header cap.
MAX_HEAD_BYTES = 256 * 1024
#: Interim (1xx) responses skipped before the final one, at most.
MAX_INTERIM = 16

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d)[ \t]+(\d{3})(?:[ \t]+(.*))?")
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_DIGITS = re.compile(r"[0-9]{1,18}")
_NO_BODY_STATUSES = frozenset({204, 304})


class HeadersTooLarge(Exception):
    """The response head is larger than the caller allows."""


Origin = tuple[str, str, int]
"""(scheme, host, port)"""


@dataclass(slots=True)
class WireTimeouts:
    connect: float | None
    read: float | None
    write: float | None


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: a receive buffer, and who is waiting for it to grow."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self.uses = 0
        self.reusable = True
        """False once a response's framing or headers rule out another request on it."""
        self.answered = False
        """Whether any byte arrived since the current request was sent."""
        self.body_done = False
        """Whether the current response's body has been read to its end."""

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.answered = True
        if len(self.buffer) > READ_HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: HTTP/1.1 has nothing to say after the server's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the pool and the response ---------------------------------------------------
    @property
    def finished(self) -> bool:
        """No more bytes will arrive (the server closed, or the connection broke)."""
        return self.eof or self.lost

    def usable_when_idle(self) -> bool:
        """Safe to send a new request on: open, and the server has said nothing since."""
        transport = self.transport
        return (
            self.reusable
            and transport is not None
            and not transport.is_closing()
            and not self.finished
            and not self.buffer
            and not self.paused
        )

    async def more(self, timeout: float | None) -> None:
        """Wait until the buffer grows or the connection ends; ReadTimeout after ``timeout``."""
        if self.finished:
            return
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out waiting for the server") from exc
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def take(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes, removed from the buffer."""
        buffer = self.buffer
        if len(buffer) <= size:
            chunk = bytes(buffer)
            buffer.clear()
        else:
            chunk = bytes(buffer[:size])
            del buffer[:size]
        self._maybe_resume()
        return chunk

    def drop(self, size: int) -> None:
        """Remove ``size`` bytes from the front of the buffer."""
        del self.buffer[:size]
        self._maybe_resume()

    def _maybe_resume(self) -> None:
        if self.paused and len(self.buffer) <= READ_HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def broken(self, what: str) -> Exception:
        """The exception for a connection that ended while ``what`` was still expected."""
        if self.error is not None:
            error = httpx.ReadError(str(self.error) or type(self.error).__name__)
            error.__cause__ = self.error
            return error
        return httpx.RemoteProtocolError(what)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


@dataclass(slots=True)
class _Head:
    version: tuple[int, int]
    status: int
    headers: list[tuple[bytes, bytes]]


def _parse_head(block: bytes) -> _Head:
    lines = block.split(b"\n")
    match = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r"))
    if match is None:
        shown = lines[0][:80].decode("latin-1")
        raise httpx.RemoteProtocolError(f"malformed status line {shown!r}")
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and headers:  # obs-fold: a continuation of the last value
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        name = name.strip(b" \t")
        if not colon or not name:
            continue  # not a header line; browsers skip it too
        headers.append((name, value.strip(b" \t")))
    return _Head((int(match[1]), int(match[2])), int(match[3]), headers)


class ResponseHeaders(httpx.Headers):
    """:class:`httpx.Headers` whose lookups are dictionary lookups.

    httpx scans and decodes the whole header list on every ``get``; a probe looks up half a
    dozen fields per response (framing, content type, location, cookies…), thousands of times
    a run. Built from the parsed head as is (names and values are bytes already); changes made
    through the mapping interface drop the index, so it is never stale.
    """

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._list = [(name, name.lower(), value) for name, value in raw]
        self._encoding: str | None = None
        self._index: dict[str, list[str]] | None = None

    def _fields(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            encoding = self.encoding
            index = {}
            for _, name, value in self._list:
                index.setdefault(name.decode(encoding), []).append(value.decode(encoding))
            self._index = index
        return index

    def __getitem__(self, key: str) -> str:
        values = self._fields().get(key.lower())
        if values is None:
            raise KeyError(key)
        return ", ".join(values)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._fields()

    def get(self, key: str, default: object = None) -> object:
        values = self._fields().get(key.lower())
        return default if values is None else ", ".join(values)

    def get_list(self, key: str, split_commas: bool = False) -> list[str]:
        values = self._fields().get(key.lower(), [])
        if not split_commas:
            return list(values)
        return [item.strip() for value in values for item in value.split(",")]

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._index = None

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._index = None

    def update(self, headers: object = None) -> None:  # type: ignore[override]
        super().update(headers)  # type: ignore[arg-type]
        self._index = None

    @property
    def encoding(self) -> str:
        return httpx.Headers.encoding.fget(self)  # type: ignore[attr-defined,no-any-return]

    @encoding.setter
    def encoding(self, value: str) -> None:
        self._encoding = value
        self._index = None


class WireResponse:
    """A response whose body has not been read yet; read it with :meth:`chunks`, then close."""

    __slots__ = ("status", "headers", "http_version", "_body", "_pool", "_connection")

    def __init__(
        self,
        status: int,
        headers: httpx.Headers,
        http_version: str,
        body: AsyncGenerator[bytes, None] | None,
        pool: WirePool,
        connection: _Connection,
    ) -> None:
        self.status = status
        self.headers = headers
        self.http_version = http_version
        self._body = body
        self._pool = pool
        self._connection: _Connection | None = connection

    def chunks(self) -> AsyncIterator[bytes]:
        """The raw (still content-encoded) body, as it arrives. Read it once."""
        return self._body if self._body is not None else _nothing()

    async def aclose(self) -> None:
        """Give the connection back for reuse if the body was read whole, else close it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.body_done:
            self._pool.release(connection)
            return
        self._pool.discard(connection)
        if self._body is not None:
            await self._body.aclose()  # now, not when the garbage collector gets to it


async def _nothing() -> AsyncGenerator[bytes, None]:
    return
    yield  # pragma: no cover - makes this an async generator


class WirePool:
    """Keep-alive HTTP/1.1 connections by origin; see the module docstring."""

    keepalive_expiry = 5.0

    def __init__(
        self,
        connect: Callable[[str, int], Awaitable[list[tuple[str, int]]]],
        ssl_context: Callable[[], ssl.SSLContext],
        timeouts: WireTimeouts,
        *,
        max_idle: int = 100,
    ) -> None:
        """``connect(host, port)`` gives the ``[(address, port), …]`` to try in order (see
        :meth:`citewatch.net.RoutingBackend.targets`); ``ssl_context()`` gives the TLS context
        when the first https origin is met."""
        self._targets = connect
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self.timeouts = timeouts
        self.max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        #: Every idle connection, oldest first (dicts keep insertion order): O(1) eviction.
        self._idle_order: dict[_Connection, None] = {}
        self._open: set[_Connection] = set()

    # -- public ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        origin: Origin,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        head_limit: int = MAX_HEAD_BYTES,
    ) -> WireResponse:
        """Send ``method target`` with ``headers`` (the caller's ``Host`` first) to ``origin``."""
        payload = b"".join(
            [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
            + [b"%s: %s\r\n" % pair for pair in headers]
            + [b"\r\n"]
        )
        connection = self._take_idle(origin)
        while True:
            reused = connection is not None
            idle_for = time.monotonic() - connection.idle_since if connection else 0.0
            if connection is None:
                connection = await self._connect(origin)
            try:
                return await self._exchange(connection, method, payload, head_limit)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                self.discard(connection)
                # The server closed a connection we reused before answering: go again, once,
                # on a fresh connection. A reset right after a quick reuse is the server's own
                # answer to this request, though, and is evidence (a flaky server).
                if (
                    reused
                    and not connection.answered
                    and (connection.error is None or idle_for >= STALE_AFTER)
                ):
                    connection = None
                    continue
                raise
            except BaseException:
                self.discard(connection)
                raise

    def release(self, connection: _Connection) -> None:
        """Keep a connection whose exchange ended cleanly for the next request to its origin."""
        if not connection.usable_when_idle():
            self.discard(connection)
            return
        while len(self._idle_order) >= self.max_idle:
            self._unidle(next(iter(self._idle_order)))
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_order[connection] = None

    def discard(self, connection: _Connection) -> None:
        """Close a connection and stop tracking it."""
        connection.close()
        self._open.discard(connection)

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        self._idle_order.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    # -- connections ------------------------------------------------------------------------
    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            del self._idle_order[connection]
            if (
                connection.usable_when_idle()
                and now - connection.idle_since < self.keepalive_expiry
            ):
                if not idle:
                    del self._idle[origin]
                return connection
            self.discard(connection)
        del self._idle[origin]
        return None

    def _unidle(self, connection: _Connection) -> None:
        """Close an idle connection (the oldest, to make room)."""
        del self._idle_order[connection]
        idle = self._idle[connection.origin]
        idle.remove(connection)
        if not idle:
            del self._idle[connection.origin]
        self.discard(connection)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            try:
                host.encode("idna")  # what the TLS layer will do with it, before any socket
            except UnicodeError as exc:
                raise httpx.InvalidURL(f"host name {host!r} is not valid for TLS: {exc}") from exc
            if self._ssl is None:
                self._ssl = self._ssl_factory()
            context = self._ssl
        try:
            targets = await self._targets(host, port)
        except httpcore.ConnectTimeout as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        loop = asyncio.get_running_loop()
        timeout = self.timeouts.connect
        last: Exception | None = None
        for address, target_port in targets:
            try:
                async with asyncio.timeout(timeout):
                    _, connection = await loop.create_connection(
                        lambda: _Connection(origin),
                        host=address,
                        port=target_port,
                        ssl=context,
                        server_hostname=host if context is not None else None,
                        ssl_handshake_timeout=timeout if context is not None else None,
                    )
            except TimeoutError as exc:
                last = httpx.ConnectTimeout(f"connecting to {host}:{port} timed out")
                last.__cause__ = exc
            except ssl.SSLError as exc:
                # Every address serves the same certificate: no point trying the others.
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            except OSError as exc:
                last = httpx.ConnectError(str(exc) or type(exc).__name__)
                last.__cause__ = exc
            else:
                self._open.add(connection)
                return connection
        if last is None:
            raise httpx.ConnectError(f"no address to connect to for {host}")
        raise last

    # -- one exchange -----------------------------------------------------------------------
    async def _exchange(
        self, connection: _Connection, method: str, payload: bytes, head_limit: int
    ) -> WireResponse:
        connection.uses += 1
        connection.answered = False
        connection.body_done = False
        transport = connection.transport
        if transport is None or transport.is_closing():
            raise httpx.WriteError("connection closed before the request was sent")
        transport.write(payload)
        limit = min(head_limit, MAX_HEAD_BYTES)
        head = await self._read_head(connection, limit)
        interim = 0
        while 100 <= head.status < 200:
            if head.status == 101 or interim >= MAX_INTERIM:
                connection.reusable = False
                raise httpx.RemoteProtocolError(
                    f"unexpected interim response {head.status} (no upgrade was asked for)"
                    if head.status == 101
                    else f"more than {MAX_INTERIM} interim responses"
                )
            interim += 1
            head = await self._read_head(connection, limit)
        headers = ResponseHeaders(head.headers)
        body = self._body(connection, method, head, headers)
        if body is None:
            connection.body_done = True
        version = f"HTTP/{head.version[0]}.{head.version[1]}"
        return WireResponse(head.status, headers, version, body, self, connection)

    async def _read_head(self, connection: _Connection, limit: int) -> _Head:
        scanned = 0
        while True:
            buffer = connection.buffer
            if buffer[:1] in (b"\r", b"\n"):  # stray line ends before a head: skip them
                connection.drop(len(buffer) - len(buffer.lstrip(b"\r\n")))
                buffer = connection.buffer
            end = _END_OF_HEAD.search(buffer, max(0, scanned - 3))
            if end is not None:
                if end.start() > limit:
                    raise HeadersTooLarge(f"response headers are over the {limit}-byte limit")
                block = bytes(buffer[: end.start()])
                connection.drop(end.end())
                return _parse_head(block)
            scanned = len(buffer)
            if scanned > limit:
                raise HeadersTooLarge(f"response headers are over the {limit}-byte limit")
            if connection.finished:
                if connection.error is None and not buffer:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                raise connection.broken("Server disconnected mid-way through the response headers.")
            await connection.more(self.timeouts.read)

    def _body(
        self, connection: _Connection, method: str, head: _Head, headers: httpx.Headers
    ) -> AsyncGenerator[bytes, None] | None:
        if not _keeps_alive(head.version, headers):
            connection.reusable = False
        if method == "HEAD" or head.status in _NO_BODY_STATUSES:
            return None
        codings = _tokens(headers, "transfer-encoding")
        if codings:
            if "content-length" in headers or head.version < (1, 1):
                connection.reusable = False  # ambiguous framing (RFC 9112 §6.1): no reuse
            if codings[-1] == "chunked":
                return self._chunked(connection)
            return self._until_close(connection)
        lengths = set(_tokens(headers, "content-length"))
        if lengths:
            value = next(iter(lengths))
            if len(lengths) > 1 or not _DIGITS.fullmatch(value):
                raise httpx.RemoteProtocolError(f"bad Content-Length {sorted(lengths)!r}")
            length = int(value)
            if length == 0:
                return None
            return self._fixed(connection, length)
        return self._until_close(connection)

    async def _fixed(self, connection: _Connection, length: int) -> AsyncGenerator[bytes, None]:
        remaining = length
        while remaining > 0:
            if not connection.buffer:
                if connection.finished:
                    raise connection.broken(
                        "peer closed connection without sending complete message body: "
                        f"received {length - remaining} bytes, expected {length}"
                    )
                await connection.more(self.timeouts.read)
                continue
            chunk = connection.take(remaining)
            remaining -= len(chunk)
            yield chunk
        connection.body_done = True

    async def _until_close(self, connection: _Connection) -> AsyncGenerator[bytes, None]:
        connection.reusable = False
        while True:
            if connection.buffer:
                yield connection.take(len(connection.buffer))
                continue
            if connection.finished:
                if connection.error is not None:
                    raise connection.broken("")
                connection.body_done = True
                return
            await connection.more(self.timeouts.read)

    async def _chunked(self, connection: _Connection) -> AsyncGenerator[bytes, None]:
        while True:
            line = await self._line(connection)
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                raise httpx.RemoteProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(match[1], 16)
            if size == 0:
                break
            remaining = size
            while remaining > 0:
                if not connection.buffer:
                    if connection.finished:
                        raise connection.broken(
                            "peer closed connection without sending complete message body: "
                            "incomplete chunked read"
                        )
                    await connection.more(self.timeouts.read)
                    continue
                chunk = connection.take(remaining)
                remaining -= len(chunk)
                yield chunk
            if await self._line(connection):
                raise httpx.RemoteProtocolError("chunk data not followed by a line end")
        # Trailer fields, up to the empty line. A server that closes instead of sending that
        # line has still sent the whole body (browsers show it): complete, but not reusable.
        while True:
            line = await self._line_or_end(connection)
            if line is None:
                connection.reusable = False
                break
            if not line:
                break
        connection.body_done = True

    async def _line(self, connection: _Connection) -> bytes:
        line = await self._line_or_end(connection)
        if line is None:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body: "
                "incomplete chunked read"
            )
        return line

    async def _line_or_end(self, connection: _Connection, limit: int = 8192) -> bytes | None:
        """The next line of chunked framing; None if the server closed cleanly first."""
        while True:
            buffer = connection.buffer
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end]).rstrip(b"\r")
                connection.drop(end + 1)
                return line
            if len(buffer) > limit:
                raise httpx.RemoteProtocolError("chunked framing line too long")
            if connection.finished:
                if connection.error is None:
                    return None
                raise connection.broken("")
            await connection.more(self.timeouts.read)


def _tokens(headers: httpx.Headers, name: str) -> list[str]:
    """The comma-separated, lower-cased values of every ``name`` field."""
    values = headers.get_list(name)
    if not values:
        return []
    return [t for t in (part.strip().lower() for part in ",".join(values).split(",")) if t]


def _keeps_alive(version: tuple[int, int], headers: httpx.Headers) -> bool:
    tokens = _tokens(headers, "connection")
    if version >= (1, 1):
        return "close" not in tokens
    return "keep-alive" in tokens
