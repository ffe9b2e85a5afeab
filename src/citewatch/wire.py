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
* keep-alive reuse per origin (LIFO, expiry after :attr:`WirePool.keepalive_expiry`); a request
  on a connection idle for a while that fails before any answer (the server's keep-alive timeout
  racing our reuse) goes again on another connection (GET and HEAD are safe to repeat); a
  response not read to its end closes its connection;
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpcore
import httpx

#: Buffered, not yet consumed bytes above which a connection stops reading from its socket.
READ_HIGH_WATER = 256 * 1024
#: A reused connection idle this long that fails before any answer is retried (see request).
STALE_AFTER = 1.0
#: Largest response head (status line + headers) accepted, whatever the caller's header cap.
MAX_HEAD_BYTES = 256 * 1024

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d)[ \t]+(\d{3})(?:[ \t]+(.*))?")
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
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
        """False once a response said ``Connection: close`` (or HTTP/1.0 without keep-alive)."""
        self.answered = False
        """Whether any byte arrived since the current request was sent."""

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
        """Up to ``size`` buffered bytes (resuming the socket once the buffer has drained)."""
        buffer = self.buffer
        if len(buffer) <= size:
            chunk = bytes(buffer)
            buffer.clear()
        else:
            chunk = bytes(buffer[:size])
            del buffer[:size]
        if self.paused and len(buffer) <= READ_HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

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


class WireResponse:
    """A response whose body has not been read yet; read it with :meth:`chunks`, then close."""

    __slots__ = ("status", "headers", "http_version", "_body", "_pool", "_connection", "_done")

    def __init__(
        self,
        status: int,
        headers: httpx.Headers,
        http_version: str,
        body: AsyncIterator[bytes] | None,
        pool: WirePool,
        connection: _Connection,
    ) -> None:
        self.status = status
        self.headers = headers
        self.http_version = http_version
        self._body = body
        self._pool = pool
        self._connection: _Connection | None = connection
        self._done = body is None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The raw (still content-encoded) body, as it arrives."""
        if self._body is not None:
            async for chunk in self._body:
                yield chunk
        self._done = True

    async def aclose(self) -> None:
        """Give the connection back for reuse if the body was read whole, else close it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._done:
            self._pool.release(connection)
        else:
            self._pool.discard(connection)


class WirePool:
    """Keep-alive HTTP/1.1 connections by origin; see the module docstring."""

    keepalive_expiry = 5.0

    def __init__(
        self,
        connect: Callable[[str, int], object],
        ssl_context: Callable[[], ssl.SSLContext],
        timeouts: WireTimeouts,
        *,
        max_idle: int = 100,
    ) -> None:
        """``connect(host, port)`` is an awaitable of ``[(address, port), …]`` to try in order
        (see :meth:`citewatch.net.RoutingBackend.targets`); ``ssl_context()`` gives the TLS
        context when the first https origin is met."""
        self._targets = connect
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self.timeouts = timeouts
        self.max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
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
        while True:
            connection = self._take_idle(origin)
            idle_for = time.monotonic() - connection.idle_since if connection else 0.0
            if connection is None:
                connection = await self._connect(origin)
            try:
                return await self._exchange(connection, method, payload, head_limit)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                self.discard(connection)
                # A server closing an idle connection (its keep-alive timeout) just as we reuse
                # it: nothing was answered, so a GET or HEAD goes again on another connection.
                # Only after a real idle time: a fresh failure is the server's, and is evidence.
                if idle_for >= STALE_AFTER and not connection.answered:
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
        if self._idle_count >= self.max_idle:
            self._evict_oldest()
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        self._idle_count = 0
        await asyncio.sleep(0)  # let the transports run their close callbacks

    # -- connections ------------------------------------------------------------------------
    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if (
                connection.usable_when_idle()
                and now - connection.idle_since < self.keepalive_expiry
            ):
                return connection
            self.discard(connection)
        return None

    def _evict_oldest(self) -> None:
        oldest: list[_Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest:
            self.discard(oldest.pop(0))
            self._idle_count -= 1

    def discard(self, connection: _Connection) -> None:
        """Close a connection and stop tracking it."""
        connection.close()
        self._open.discard(connection)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        try:
            targets = await self._targets(host, port)  # type: ignore[misc]
        except httpcore.ConnectTimeout as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = self._ssl_factory()
            context = self._ssl
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
        transport = connection.transport
        if transport is None or transport.is_closing():
            raise httpx.WriteError("connection closed before the request was sent")
        transport.write(payload)
        head = await self._read_head(connection, min(head_limit, MAX_HEAD_BYTES))
        while 100 <= head.status < 200 and head.status != 101:  # interim (100, 103): skip
            head = await self._read_head(connection, min(head_limit, MAX_HEAD_BYTES))
        headers = httpx.Headers(head.headers)
        body = self._body(connection, method, head, headers)
        version = f"HTTP/{head.version[0]}.{head.version[1]}"
        return WireResponse(head.status, headers, version, body, self, connection)

    async def _read_head(self, connection: _Connection, limit: int) -> _Head:
        scanned = 0
        while True:
            buffer = connection.buffer
            end = _END_OF_HEAD.search(buffer, max(0, scanned - 3))
            if end is not None:
                block = bytes(buffer[: end.start()])
                del buffer[: end.end()]
                if len(block) > limit:
                    raise HeadersTooLarge(f"response headers are over the {limit}-byte limit")
                return _parse_head(block.lstrip(b"\r\n"))
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
    ) -> AsyncIterator[bytes] | None:
        keep_alive = _keeps_alive(head.version, headers)
        if method == "HEAD" or head.status in _NO_BODY_STATUSES or head.status < 200:
            connection.reusable = connection.reusable and keep_alive
            return None
        codings = [
            c.strip().lower() for c in ",".join(headers.get_list("transfer-encoding")).split(",")
        ]
        codings = [c for c in codings if c]
        if codings:
            if codings[-1] == "chunked":
                return self._chunked(connection, keep_alive)
            return self._until_close(connection)
        lengths = {v.strip() for v in ",".join(headers.get_list("content-length")).split(",")}
        lengths.discard("")
        if lengths:
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                raise httpx.RemoteProtocolError(f"bad Content-Length {sorted(lengths)!r}")
            length = int(next(iter(lengths)))
            if length == 0:
                connection.reusable = connection.reusable and keep_alive
                return None
            return self._fixed(connection, length, keep_alive)
        return self._until_close(connection)

    async def _fixed(
        self, connection: _Connection, length: int, keep_alive: bool
    ) -> AsyncIterator[bytes]:
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
        if not keep_alive:
            connection.reusable = False

    async def _until_close(self, connection: _Connection) -> AsyncIterator[bytes]:
        while True:
            if connection.buffer:
                yield connection.take(len(connection.buffer))
                continue
            if connection.finished:
                if connection.error is not None:
                    raise connection.broken("")
                return
            await connection.more(self.timeouts.read)

    async def _chunked(self, connection: _Connection, keep_alive: bool) -> AsyncIterator[bytes]:
        while True:
            line = await self._line(connection)
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                raise httpx.RemoteProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(match[1], 16)
            if size == 0:
                while await self._line(connection):  # trailer fields, up to the empty line
                    pass
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
        if not keep_alive:
            connection.reusable = False

    async def _line(self, connection: _Connection, limit: int = 8192) -> bytes:
        while True:
            buffer = connection.buffer
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end]).rstrip(b"\r")
                del buffer[: end + 1]
                return line
            if len(buffer) > limit:
                raise httpx.RemoteProtocolError("chunked framing line too long")
            if connection.finished:
                raise connection.broken(
                    "peer closed connection without sending complete message body: "
                    "incomplete chunked read"
                )
            await connection.more(self.timeouts.read)


def _keeps_alive(version: tuple[int, int], headers: httpx.Headers) -> bool:
    tokens = {t.strip().lower() for t in ",".join(headers.get_list("connection")).split(",")}
    if version >= (1, 1):
        return "close" not in tokens
    return "keep-alive" in tokens
