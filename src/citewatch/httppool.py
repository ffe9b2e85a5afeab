"""A linear-time connection pool for many hosts at once (a workaround for httpcore 1.0.x).

httpcore's ``AsyncConnectionPool._assign_requests_to_connections`` runs on every request start
and end. In 1.0.9 it is quadratic in the number of pooled connections (a
``len([c.is_idle() for c in connections])`` inside the loop over connections) and polls the socket
of every idle connection on every call. With ~100 keep-alive connections over 50 hosts that was
two thirds of the CPU time of a 2,000-URL check. This subclass keeps the same policy — reuse an
available connection to the origin, else open one, else close an idle one and open one — but:

* drops closed connections and surplus idle ones in one linear pass;
* checks a connection's expiry (the socket poll) only when about to reuse it, plus a full sweep
  at most once a second, so stale keep-alive connections are still never reused.

Second, httpcore's ``current_async_library()`` runs ``import sniffio`` on every request. anyio 4.16
no longer needs sniffio, and when it is absent each of those imports is a failed search of
sys.path (about 0.7 ms per request). :func:`avoid_sniffio_search` records the absence once.

Third, where sniffio *is* installed, each of its ``current_async_library()`` calls (httpcore and
anyio make several per request) sniffs for asyncio from scratch. :func:`declare_asyncio` sets
sniffio's own context variable, the documented way for a running event loop to say what it is;
being a context variable, it holds for the calling task and the tasks it starts, nothing else.

``net.make_transport`` builds every client's pool from :class:`LinearConnectionPool`, so the check
and archive stages both get it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import sys
import time
import typing

import anyio
import httpcore
from httpcore._async.interfaces import AsyncConnectionInterface

SWEEP_SECONDS = 1.0


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with an O(connections + queued requests) assignment step."""

    _last_sweep: float = 0.0
    #: Makes the TLS context on first use when the pool was given none (loading the CA bundle
    #: takes a tenth of a second, wasted on a run that only sees plain-HTTP hosts).
    ssl_factory: typing.Callable[[], ssl.SSLContext] | None = None

    def create_connection(self, origin: httpcore.Origin) -> AsyncConnectionInterface:
        factory = self.ssl_factory
        if factory is not None and self._ssl_context is None and origin.scheme != b"http":
            self._ssl_context = self.ssl_factory()
        return super().create_connection(origin)

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now - self._last_sweep >= SWEEP_SECONDS
        if sweep:
            self._last_sweep = now
        kept: list[AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if sweep and connection.has_expired():
                closing.append(connection)
                continue
            kept.append(connection)
        surplus = len(kept) - self._max_keepalive_connections
        if surplus > 0:
            trimmed: list[AsyncConnectionInterface] = []
            for connection in kept:
                if surplus > 0 and connection.is_idle():
                    closing.append(connection)
                    surplus -= 1
                else:
                    trimmed.append(connection)
            kept = trimmed
        self._connections = kept

        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            chosen: AsyncConnectionInterface | None = None
            for connection in list(self._connections):
                if not (connection.can_handle_request(origin) and connection.is_available()):
                    continue
                if connection.is_idle() and connection.has_expired():
                    self._connections.remove(connection)
                    closing.append(connection)
                    continue
                chosen = connection
                break
            if chosen is None:
                if len(self._connections) >= self._max_connections:
                    idle = next((c for c in self._connections if c.is_idle()), None)
                    if idle is None:
                        continue  # stays queued until a connection frees up
                    self._connections.remove(idle)
                    closing.append(idle)
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


def avoid_sniffio_search() -> None:
    """If sniffio is not installed, make ``import sniffio`` fail at once instead of searching."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]  # ImportError without a search


def declare_asyncio() -> None:
    """Tell sniffio, for the current task and the tasks it starts, that this is asyncio."""
    try:
        import sniffio
    except ImportError:
        return
    asyncio.get_running_loop()  # only ever from inside a running loop
    sniffio.current_async_library_cvar.set("asyncio")


# -- lean plain-TCP streams ------------------------------------------------------------------
#: Buffered, not yet read bytes above which a lean stream stops reading from the socket.
READ_HIGH_WATER = 256 * 1024


class LeanBackend(httpcore.AnyIOBackend):
    """httpcore's anyio backend, with plain-TCP reads and writes done on asyncio directly.

    Connecting (happy eyeballs, errors, socket options) and TLS are anyio's, unchanged. Per
    read and write, anyio pays for a cancel scope, a pause/resume of the socket's reader (two
    ``epoll_ctl`` calls) and, in ``is_readable``, a ``getpeername`` and a ``poll``: system calls
    that dominate a plain-HTTP check on a sandboxed kernel. :class:`LeanStream` keeps the socket
    reading into a bounded buffer instead, and answers with the same httpcore exceptions (the same
    chain of causes) that :class:`httpcore.AnyIOBackend`'s streams raise.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return LeanStream(stream)


class _LeanProtocol(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.exception: BaseException | None = None
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.drain: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep the transport open for writing, as anyio does

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.exception = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self.drain is None:
            self.drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain, self.drain = self.drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)


def _timed_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _broken(cause: BaseException) -> anyio.BrokenResourceError:
    error = anyio.BrokenResourceError()
    error.__cause__ = cause
    return error


class LeanStream(httpcore.AsyncNetworkStream):
    """An httpcore network stream over anyio's connected asyncio transport (see LeanBackend).

    It starts as a thin wrapper of the anyio stream and takes the transport over at the first
    read or write; a stream upgraded to TLS first (``start_tls``) stays anyio's throughout.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._protocol: _LeanProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._adoptable = True
        self._closed = False

    def _adopt(self) -> _LeanProtocol | None:
        if self._protocol is not None or not self._adoptable:
            return self._protocol
        self._adoptable = False
        inner = getattr(self._stream, "_stream", None)  # anyio's SocketStream
        transport = getattr(inner, "_transport", None)
        old = getattr(inner, "_protocol", None)
        if (
            not isinstance(transport, asyncio.Transport)
            or not hasattr(old, "read_queue")
            or getattr(inner, "_closed", True)
            or transport.is_closing()
            or getattr(old, "exception", None) is not None
            or getattr(old, "is_at_eof", False)
        ):
            return None  # anything unusual: anyio keeps the stream
        protocol = _LeanProtocol(transport)
        for chunk in old.read_queue:
            protocol.buffer += chunk
        old.read_queue.clear()
        transport.set_protocol(protocol)
        transport.resume_reading()
        self._transport, self._protocol = transport, protocol
        return protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._adopt()
        if protocol is None:
            return await self._stream.read(max_bytes, timeout)
        if not protocol.buffer and not protocol.eof and not protocol.lost and not self._closed:
            loop = asyncio.get_running_loop()
            waiter = protocol.waiter = loop.create_future()
            timer = loop.call_later(timeout, _timed_out, waiter) if timeout is not None else None
            try:
                await waiter
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(str(exc)) from exc
            finally:
                protocol.waiter = None
                if timer is not None:
                    timer.cancel()
        buffer = protocol.buffer
        if buffer:
            if len(buffer) <= max_bytes:
                chunk = bytes(buffer)
                buffer.clear()
            else:
                chunk = bytes(buffer[:max_bytes])
                del buffer[:max_bytes]
            if protocol.paused and len(buffer) <= READ_HIGH_WATER // 2:
                protocol.paused = False
                self._transport.resume_reading()  # type: ignore[union-attr]
            return chunk
        if self._closed:
            closed = anyio.ClosedResourceError()
            raise httpcore.ReadError(str(closed)) from closed
        if protocol.exception is not None:
            broken = _broken(protocol.exception)
            raise httpcore.ReadError(str(broken)) from broken
        return b""  # end of stream

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._adopt()
        if protocol is None:
            return await self._stream.write(buffer, timeout)
        transport = self._transport
        assert transport is not None
        if protocol.drain is not None:
            await self._drain(protocol, timeout)
        self._check_writable(protocol)
        try:
            transport.write(buffer)
        except RuntimeError as exc:
            if transport.is_closing():
                broken = _broken(exc)
                raise httpcore.WriteError(str(broken)) from broken
            raise
        if protocol.drain is not None:
            await self._drain(protocol, timeout)
            self._check_writable(protocol)

    def _check_writable(self, protocol: _LeanProtocol) -> None:
        if self._closed:
            closed = anyio.ClosedResourceError()
            raise httpcore.WriteError(str(closed)) from closed
        if protocol.exception is not None:
            broken = _broken(protocol.exception)
            raise httpcore.WriteError(str(broken)) from broken

    async def _drain(self, protocol: _LeanProtocol, timeout: float | None) -> None:
        drain = protocol.drain
        if drain is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(drain)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc

    async def aclose(self) -> None:
        if self._protocol is None:
            self._adoptable = False
            await self._stream.aclose()
            return
        self._closed = True
        self._transport.abort()  # type: ignore[union-attr]
        await asyncio.sleep(0)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._protocol is not None:  # httpcore only upgrades fresh connections (not here)
            raise httpcore.ConnectError("TLS upgrade of a stream already in use")
        self._adoptable = False
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        protocol = self._protocol
        if protocol is None:
            return self._stream.get_extra_info(info)
        if info == "is_readable":  # what a poll() would say, from what the loop has seen
            return bool(protocol.buffer) or protocol.eof or protocol.lost
        if info == "ssl_object":
            return None
        sock = self._transport.get_extra_info("socket")  # type: ignore[union-attr]
        if info == "socket":
            return sock
        try:
            if info == "client_addr":
                return _address(sock.getsockname())
            if info == "server_addr":
                return _address(sock.getpeername())
        except OSError:
            return None
        return None


def _address(address: typing.Any) -> typing.Any:
    return (address[0], address[1]) if isinstance(address, tuple) and len(address) > 2 else address
