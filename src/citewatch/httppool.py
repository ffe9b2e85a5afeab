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

``net.make_transport`` builds every client's pool from :class:`LinearConnectionPool` (the archive
stage, the canary, and probes that must go through httpx; most probes use :mod:`citewatch.wire`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import sys
import time
import typing

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

    async def _close_connections(self, closing: list[AsyncConnectionInterface]) -> None:
        if closing:  # nothing to close: skip the cancel shield (and the anyio backend it imports)
            await super()._close_connections(closing)

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
