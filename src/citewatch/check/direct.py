"""Probe requests over the client's lean HTTP/1.1 pool (:mod:`citewatch.wire`), not ``client.send``.

A probe is thousands of small exchanges; per request, ``AsyncClient.send`` builds a Request (URL,
header merging), wraps the response stream three times and runs the cookie machinery, and the
httpcore pool under it adds its anyio locks and cancel scopes. :class:`DirectSender` sends the
same bytes to the same places (same ``--connect-to`` routing, SSRF guard, TLS context and
timeouts: the pool belongs to the client's :class:`~citewatch.net.CitewatchTransport`):

* the request headers are the ones ``client.build_request`` makes (``Host`` first, then the
  client's defaults merged with the probe's), computed once;
* errors are the httpx exceptions httpx would raise, with the same kind of ``__cause__``, so
  classification sees no difference;
* cookies keep working: while the client's jar is empty (the usual case) nothing is done; a
  ``Set-Cookie`` answer is stored in the jar as httpx would, and once the jar holds cookies,
  :meth:`DirectSender.usable` says no and the prober goes through ``client.send`` again;
* httpx's ``HTTP Request: …`` log line is still written when INFO logging is on for httpx.

It is used only for a client made by :func:`citewatch.net.make_client` without HTTP/2 and with
no redirects, auth, event hooks or mounts; anything else (a ``MockTransport`` in tests) goes
through ``client.send`` unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from ..net import CitewatchTransport
from ..wire import MAX_HEAD_BYTES, WirePool, WireResponse

_LOG = logging.getLogger("httpx")


class _BodyStream(httpx.AsyncByteStream):
    def __init__(self, response: WireResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.chunks():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


@dataclass(slots=True)
class RawResponse:
    """A response whose body has not been read yet."""

    status: int
    headers: httpx.Headers
    wire: WireResponse

    def chunks(self) -> AsyncIterator[bytes]:
        """The raw (still content-encoded) body chunks."""
        return self.wire.chunks()

    def as_httpx(self) -> httpx.Response:
        """The same response as an httpx one (for content encodings only httpx can decode)."""
        return httpx.Response(self.status, headers=self.headers, stream=_BodyStream(self.wire))

    async def aclose(self) -> None:
        await self.wire.aclose()


class DirectSender:
    """Sends GET/HEAD probes without a body through a client's :class:`~citewatch.wire.WirePool`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        pool: WirePool,
        headers: dict[str, str],
        head_limit: int = MAX_HEAD_BYTES,
    ):
        self.client = client
        self.pool = pool
        self.head_limit = head_limit
        template = client.build_request("GET", "http://template.invalid/", headers=headers)
        self.headers = [(k, v) for k, v in template.headers.raw if k.lower() != b"host"]

    @classmethod
    def for_client(
        cls, client: httpx.AsyncClient, headers: dict[str, str], head_limit: int = MAX_HEAD_BYTES
    ) -> DirectSender | None:
        """A sender for ``client`` if it is a plain citewatch client, else None (use ``send``)."""
        transport = getattr(client, "_transport", None)
        wire = getattr(transport, "wire", None)
        if (
            not isinstance(transport, CitewatchTransport)
            or not isinstance(wire, WirePool)
            or client.follow_redirects
            or client.auth is not None
            or any(client.event_hooks.values())
            or getattr(client, "_mounts", None)
        ):
            return None
        return cls(client, wire, headers, head_limit)

    def usable(self, url: httpx.URL) -> bool:
        """False when ``client.send`` must do it: cookies to send, or a URL httpx would refuse."""
        return not self.client.cookies.jar and url.scheme in ("http", "https") and bool(url.host)

    async def open(self, method: str, url: httpx.URL) -> RawResponse:
        """Send the request; the response's body is left to read (and close) by the caller."""
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        response = await self.pool.request(
            method,
            (scheme, url.raw_host.decode("ascii"), port),
            url.raw_path,
            [(b"Host", url.netloc), *self.headers],
            head_limit=self.head_limit,
        )
        raw = RawResponse(response.status, response.headers, response)
        try:
            if "set-cookie" in response.headers:
                self._keep_cookies(method, url, raw)
            if _LOG.isEnabledFor(logging.INFO):
                _LOG.info(
                    'HTTP Request: %s %s "%s %d %s"',
                    method,
                    url,
                    response.http_version,
                    response.status,
                    httpx.codes.get_reason_phrase(response.status),
                )
        except BaseException:
            await response.aclose()
            raise
        return raw

    def _keep_cookies(self, method: str, url: httpx.URL, raw: RawResponse) -> None:
        request = httpx.Request(method, url, headers=[(b"Host", url.netloc), *self.headers])
        self.client.cookies.extract_cookies(
            httpx.Response(raw.status, headers=raw.headers, request=request)
        )
