"""The one place where HTTP clients are made: limits, timeouts, routing, CA bundles, user agent.

The seam is httpcore's network backend (the httpx way: swap the transport, not the call sites):

* ``--connect-to HOST1:PORT1:HOST2:PORT2`` (curl semantics) sends the TCP connection elsewhere while
  the request keeps its URL, Host header and TLS server name;
* every other host is resolved here, and the SSRF guard refuses loopback/private/link-local/reserved
  addresses unless the operator allowed them. Because the guard sits at connect time it applies to every
  redirect hop, and a host matched by ``--connect-to`` is never looked up in DNS at all.

>>> rule = ConnectTo.parse("example.org:443:127.0.0.1:8443")
>>> rule.target("example.org", 443)
('127.0.0.1', 8443)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from dataclasses import dataclass, field

import httpcore
import httpx

from . import __version__
from .httppool import LinearConnectionPool, avoid_sniffio_search
from .wire import WirePool, WireTimeouts

DEFAULT_USER_AGENT = (
    f"citewatch/{__version__} (+https://github.com/citewatch/citewatch; archival citation checker)"
)


#: getaddrinfo errors that mean "this name does not exist" (not "the resolver is unwell").
_NO_SUCH_NAME = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


class NameResolutionError(httpcore.ConnectError):
    """The host name does not resolve (NXDOMAIN, no address)."""


class PrivateAddressError(Exception):
    """The host resolves to an address the SSRF guard refuses."""

    def __init__(self, host: str, address: str):
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host = host
        self.address = address


@dataclass(frozen=True, slots=True)
class ConnectTo:
    """One ``--connect-to`` rule: empty host or port on the left matches any."""

    host: str
    port: int | None
    to_host: str
    to_port: int | None

    @classmethod
    def parse(cls, spec: str) -> ConnectTo:
        """Parse ``HOST1:PORT1:HOST2:PORT2``; IPv6 addresses go in brackets."""
        parts = _split_connect_to(spec)
        if len(parts) != 4:
            raise ValueError(f"--connect-to wants HOST1:PORT1:HOST2:PORT2, got {spec!r}")
        host, port, to_host, to_port = parts
        try:
            return cls(
                host=host.strip("[]").lower(),
                port=int(port) if port else None,
                to_host=to_host.strip("[]"),
                to_port=int(to_port) if to_port else None,
            )
        except ValueError as exc:
            raise ValueError(f"--connect-to port is not a number in {spec!r}") from exc

    def matches(self, host: str, port: int) -> bool:
        return (not self.host or self.host == host.lower()) and (
            self.port is None or self.port == port
        )

    def target(self, host: str, port: int) -> tuple[str, int]:
        return (self.to_host or host, self.to_port or port)


def _split_connect_to(spec: str) -> list[str]:
    parts, current, depth = [], "", 0
    for char in spec:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


@dataclass(slots=True)
class NetSettings:
    """Everything that shapes how citewatch talks to the network."""

    connect_to: list[ConnectTo] = field(default_factory=list)
    cacert: str | None = None
    timeout: float = 15.0
    """Seconds for connect, read and write; the total per request is a multiple (see probe)."""
    connect_timeout: float | None = None
    user_agent: str = DEFAULT_USER_AGENT
    concurrency: int = 64
    allow_private: bool = False
    http2: bool = False

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """Where a ``--connect-to`` rule sends (host, port), or None if no rule matches."""
        for rule in self.connect_to:
            if rule.matches(host, port):
                return rule.target(host, port)
        return None


class RoutingBackend(httpcore.AsyncNetworkBackend):
    """Applies ``--connect-to`` rules and the SSRF guard to every TCP connection."""

    def __init__(self, settings: NetSettings, inner: httpcore.AsyncNetworkBackend | None = None):
        self.settings = settings
        self.inner = inner or httpcore.AnyIOBackend()
        self._resolved: dict[tuple[str, int], list[str]] = {}

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last_error: Exception | None = None
        for address, target_port in await self.targets(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, target_port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address
                last_error = exc
            except httpcore.ConnectTimeout as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def targets(self, host: str, port: int) -> list[tuple[str, int]]:
        """Where a connection to (host, port) goes, in the order to try.

        A ``--connect-to`` target is the operator's explicit choice: no DNS, no guard. Any other
        host is resolved, and refused (:class:`PrivateAddressError`) if any of its addresses is
        not public, unless ``allow_private``.
        """
        routed = self.settings.route(host, port)
        if routed is not None:
            return [routed]
        addresses = await self._resolve(host, port)
        if not self.settings.allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise PrivateAddressError(host, address)
        return [(address, port) for address in addresses]

    async def _resolve(self, host: str, port: int) -> list[str]:
        bare = host.strip("[]")
        try:
            ipaddress.ip_address(bare)
            return [bare]
        except ValueError:
            pass
        key = (bare, port)
        if key in self._resolved:
            return self._resolved[key]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                raise NameResolutionError(f"cannot resolve {bare}: {exc.strerror or exc}") from exc
            # A resolver that fails or times out says nothing about the host: our network's fault.
            raise httpcore.ConnectError(
                f"name lookup for {bare} failed: {exc.strerror or exc}"
            ) from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise NameResolutionError(f"{bare} has no address")
        self._resolved[key] = addresses
        return addresses

    async def connect_unix_socket(
        self, *args: typing.Any, **kwargs: typing.Any
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by citewatch")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def ssl_context(settings: NetSettings) -> ssl.SSLContext:
    """The system trust store (certifi via httpx), plus ``--cacert`` when given."""
    context = httpx.create_ssl_context()
    if settings.cacert:
        context.load_verify_locations(cafile=settings.cacert)
    return context


class CitewatchTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over our httpcore pool, plus the probes' lean HTTP/1.1 pool.

    ``wire`` (a :class:`citewatch.wire.WirePool`, None when HTTP/2 is on) connects through the same
    :class:`RoutingBackend` rules and TLS context as the httpcore pool; the prober sends its GET and
    HEAD requests there (see :mod:`citewatch.check.direct`), everything else goes through httpx.
    Closing the transport closes both.
    """

    wire: WirePool | None = None

    async def aclose(self) -> None:
        if self.wire is not None:
            await self.wire.aclose()
        await super().aclose()


def make_transport(settings: NetSettings, max_connections: int | None = None) -> CitewatchTransport:
    """An httpx transport whose pools connect through :class:`RoutingBackend`."""
    limit = max_connections or max(settings.concurrency, 1)
    avoid_sniffio_search()
    # httpx would load the CA bundle for the pool replaced below: hand it an empty context.
    transport = CitewatchTransport(
        http2=settings.http2, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    # One TLS context for both pools, made on the first https connection (loading the CA bundle
    # takes a tenth of a second, wasted on a run that only sees plain-HTTP hosts); one with
    # --cacert at once, so that a bad bundle still fails here, before any probe.
    contexts: list[ssl.SSLContext] = [ssl_context(settings)] if settings.cacert else []

    def shared_context() -> ssl.SSLContext:
        if not contexts:
            contexts.append(ssl_context(settings))
        return contexts[0]

    router = RoutingBackend(settings)
    # httpx does not expose httpcore's network_backend; replace the pool with one that has ours
    # (and a linear-time assignment step: see httppool).
    pool = LinearConnectionPool(
        ssl_context=contexts[0] if contexts else None,
        max_connections=limit,
        max_keepalive_connections=limit,
        keepalive_expiry=5.0,
        http1=True,
        http2=settings.http2,
        network_backend=router,
    )
    pool.ssl_factory = shared_context
    transport._pool = pool
    if not settings.http2:
        connect = (
            settings.connect_timeout if settings.connect_timeout is not None else settings.timeout
        )
        transport.wire = WirePool(
            router.targets,
            shared_context,
            WireTimeouts(connect=connect, read=settings.timeout, write=settings.timeout),
            max_idle=limit,
        )
    return transport


def make_client(
    settings: NetSettings,
    *,
    max_connections: int | None = None,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """The shared async client factory. Redirects are off by default: probes follow them by hand,
    so that every hop is recorded and checked by the guard."""
    connect = settings.connect_timeout if settings.connect_timeout is not None else settings.timeout
    return httpx.AsyncClient(
        transport=make_transport(settings, max_connections),
        timeout=httpx.Timeout(settings.timeout, connect=connect),
        follow_redirects=follow_redirects,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en,ar;q=0.8,*;q=0.5",
            **(headers or {}),
        },
        trust_env=False,
    )
