"""Probe requests straight to the client's httpcore pool: httpx's own transport, minus its wrapping.

A probe is thousands of small exchanges; per request, ``AsyncClient.send`` builds a Request (URL,
header merging), wraps the response stream three times and runs the cookie machinery, which was a
fifth of a check's CPU time. :class:`DirectSender` sends the same bytes through the same pool
(same :class:`~citewatch.net.RoutingBackend`, SSRF guard, TLS context, limits and timeouts):

* the request headers are the ones ``client.build_request`` makes (``Host`` first, then the
  client's defaults merged with the probe's), computed once;
* httpcore exceptions are turned into the httpx exceptions httpx itself would raise (same
  mapping, same message, same ``__cause__``), so classification sees no difference;
* cookies keep working: while the client's jar is empty (the usual case) nothing is done; a
  ``Set-Cookie`` answer is stored in the jar as httpx would, and once the jar holds cookies,
  :meth:`DirectSender.usable` says no and the prober goes through ``client.send`` again;
* httpx's ``HTTP Request: …`` log line is still written when INFO logging is on for httpx.

It is used only for a plain client (``httpx.AsyncHTTPTransport`` over an httpcore pool, no
redirects, auth, event hooks or mounts), i.e. the one :func:`citewatch.net.make_client` makes;
anything else (a ``MockTransport`` in tests) goes through ``client.send`` unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from httpx._transports.default import AsyncResponseStream, _load_httpcore_exceptions

_LOG = logging.getLogger("httpx")
_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = _load_httpcore_exceptions()


def as_httpx_error(exc: Exception) -> Exception:
    """The httpx exception httpx raises for an httpcore one (the most specific match), or ``exc``."""
    mapped: type[httpx.HTTPError] | None = None
    for source, target in _EXCEPTIONS.items():
        if isinstance(exc, source) and (mapped is None or issubclass(target, mapped)):
            mapped = target
    if mapped is None:
        return exc
    error = mapped(str(exc))
    error.__cause__ = exc
    return error


@dataclass(slots=True)
class RawResponse:
    """An httpcore response whose body has not been read yet."""

    status: int
    headers: httpx.Headers
    stream: Any
    """httpcore's response stream: raw (still encoded) body chunks; must be closed."""

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.stream:
                yield chunk
        except Exception as exc:
            mapped = as_httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def as_httpx(self) -> httpx.Response:
        """The same response as an httpx one (for content encodings only httpx can decode)."""
        return httpx.Response(
            self.status, headers=self.headers, stream=AsyncResponseStream(self.stream)
        )

    async def aclose(self) -> None:
        closer = getattr(self.stream, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception as exc:
                mapped = as_httpx_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc


class DirectSender:
    """Sends GET/HEAD probes without a body through a plain client's httpcore pool."""

    def __init__(
        self, client: httpx.AsyncClient, pool: httpcore.AsyncConnectionPool, headers: dict[str, str]
    ):
        self.client = client
        self.pool = pool
        template = client.build_request("GET", "http://template.invalid/", headers=headers)
        self.headers = [(k, v) for k, v in template.headers.raw if k.lower() != b"host"]
        self.extensions = dict(template.extensions)

    @classmethod
    def for_client(cls, client: httpx.AsyncClient, headers: dict[str, str]) -> DirectSender | None:
        """A sender for ``client`` if it is a plain pool client, else None (use ``client.send``)."""
        transport = getattr(client, "_transport", None)
        pool = getattr(transport, "_pool", None)
        if (
            type(transport) is not httpx.AsyncHTTPTransport
            or not isinstance(pool, httpcore.AsyncConnectionPool)
            or client.follow_redirects
            or client.auth is not None
            or any(client.event_hooks.values())
            or getattr(client, "_mounts", None)
        ):
            return None
        return cls(client, pool, headers)

    def usable(self, url: httpx.URL) -> bool:
        """False when ``client.send`` must do it: cookies to send, or a URL httpx would refuse."""
        return not self.client.cookies.jar and url.scheme in ("http", "https") and bool(url.host)

    async def open(self, method: str, url: httpx.URL) -> RawResponse:
        """Send the request; the response's body is left to read (and close) by the caller."""
        request = httpcore.Request(
            method=method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=[(b"Host", url.netloc), *self.headers],
            extensions=self.extensions,
        )
        try:
            response = await self.pool.handle_async_request(request)
        except Exception as exc:
            mapped = as_httpx_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        headers = httpx.Headers(response.headers)
        raw = RawResponse(response.status, headers, response.stream)
        if "set-cookie" in headers:
            self._keep_cookies(method, url, raw)
        if _LOG.isEnabledFor(logging.INFO):
            version = response.extensions.get("http_version", b"HTTP/1.1").decode("ascii", "ignore")
            _LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                method,
                url,
                version,
                response.status,
                httpx.codes.get_reason_phrase(response.status),
            )
        return raw

    def _keep_cookies(self, method: str, url: httpx.URL, raw: RawResponse) -> None:
        request = httpx.Request(method, url, headers=[(b"Host", url.netloc), *self.headers])
        self.client.cookies.extract_cookies(
            httpx.Response(raw.status, headers=raw.headers, request=request)
        )
