"""simweb: many web hosts, over HTTP and HTTPS, on loopback — for tests that use real sockets.

One HTTP port and one HTTPS port on 127.0.0.1 serve every host name; the Host header picks the
host's behaviour and, for HTTPS, the SNI name picks its certificate (from a trustme test CA).
Clients reach it with curl-style ``--connect-to`` rules (:attr:`SimWeb.connect_to`) and the CA
bundle (:attr:`SimWeb.ca_path`), so URLs keep their real-looking names (``https://news.test/a``).

Every host answers the default *path language* below; :class:`Host` adds per-host routes and
host-wide behaviour (bad certificates, soft-404 host, closed port, never answering).

=========================== ===============================================================
path                        answer
=========================== ===============================================================
``/``                       200 home page
``/ok/…``                   200 HTML page (title and text depend on the path)
``/dead/…``, ``/notfound/…`` 404
``/gone…``                  410
``/status/<code>/…``        that status (401, 403, 451, 500, 503, 999 …)
``/redirect/<k>/…``         k hops of 301, then 200 (the shared bench's language)
``/redir/<c1>-<c2>…/<rest>`` one hop per code (301, 302, 303, 307, 308), then ``/ok/<rest>``
``/goto/<code>/<scheme>/<host>/<rest>`` redirect to another host: ``scheme://host/rest``
``/chain/<k>/…``            k hops of 302 (k > 10: too many redirects)
``/loop/…``                 302 → ``/loop2/…`` → 302 → ``/loop/…``
``/to-home/…``              301 → ``/``
``/to-error/…``             302 → ``/errors/404.html``, a 200 "Oops" page
``/soft404/…``              200 titled "Page not found"
``/soft404-ar/…``           200 titled "الصفحة غير موجودة" (Arabic)
``/soft404-body/…``         200 with a neutral title and a short "could not be found" text
``/head405/…``              405 to HEAD, 200 to GET
``/botwall/…``              403 Cloudflare-style "Just a moment..." challenge (cf-chl)
``/ratelimit…``             429 + Retry-After: 1 on the first request (per host+path), then 200
``/429/<secs>|none/…``      always 429, with ``Retry-After: secs`` or none
``/flaky/…``                503 on the first request (per host+path), then 200
``/flakyn/<k>/…``           503 on the first k requests, then 200
``/flaky-reset/…``          connection reset on the first request, then 200
``/slow/<ms>/…``            200 after <ms> milliseconds
``/reset/…``                connection reset (RST) after reading the request
``/hang/…``                 never answers (until the server stops)
``/endless/…``              200 with an endless chunked body
``/gzipbomb/…``             200, Content-Encoding gzip, 32 MiB of zeros in ~32 KiB
``/bigheaders/…``           200 with ~80 KiB of response headers
anything else               404 (on a soft-404 host, the same 200 "Welcome" page; on a host
                            with ``unknown_status``, that status)
=========================== ===============================================================

Nothing here talks to anything but 127.0.0.1, and everything is bounded: the server stops itself
after ``max_seconds``; endless bodies stop after 256 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import gzip
import html
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trustme

try:
    from .background import BackgroundServer
except ImportError:  # run as a script: python tests/support/simweb.py
    from background import BackgroundServer  # type: ignore[no-redef]

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    429: "Too Many Requests",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
MAX_REQUEST_HEAD = 64 * 1024
ENDLESS_LIMIT = 256 * 1024 * 1024


@dataclass
class Reply:
    """An answer. ``action`` replaces it with a misbehaviour: reset, hang, endless, gzipbomb."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    action: str | None = None


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    host: str
    path: str
    scheme: str
    headers: dict[str, str]


Route = Reply | Callable[[Request], Reply]


@dataclass
class Host:
    """Host-wide behaviour; ``routes`` (exact path → reply) win over the path language."""

    tls: str = "ok"
    """ok | expired | wrong_host"""
    soft404: bool = False
    """Unknown paths answer 200 with one generic page (a "soft-404 host")."""
    closed: bool = False
    """Routed to a port nothing listens on (connection refused)."""
    hang: bool = False
    """Every request is read and never answered."""
    unknown_status: int | None = None
    """Unknown paths answer with this status instead of 404 (e.g. 503: broken error pages)."""
    latency: float | None = None
    routes: dict[str, Route] = field(default_factory=dict)


@dataclass
class Record:
    """One request the server saw (for politeness assertions)."""

    host: str
    method: str
    path: str
    scheme: str
    start: float
    end: float | None = None
    status: int | None = None
    in_flight: int = 0
    """Requests in flight to this host when this one arrived (itself included)."""


def STANDARD_HOSTS() -> dict[str, Host]:  # noqa: N802 - reads as a constant
    """Hosts with host-wide behaviour; every other name gets the plain path language."""
    return {
        "expired.test": Host(tls="expired"),
        "wrong.test": Host(tls="wrong_host"),
        "closed.test": Host(closed=True),
        "soft.test": Host(soft404=True),
        "hang.test": Host(hang=True),
    }


def page(title: str, text: str, extra_head: str = "") -> bytes:
    """A small, valid HTML page."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>{extra_head}</head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>\n"
    ).encode()


def article(host: str, path: str) -> bytes:
    words = " ".join(f"{path.strip('/').replace('/', ' ')} paragraph {i}." for i in range(12))
    return page(f"Article {path} — {host}", f"This is a real article on {host}. {words}")


def generic_page(host: str) -> bytes:
    text = " ".join(f"Browse our sections, latest news and features number {i}." for i in range(30))
    return page(f"Welcome to {host}", text)


BOT_WALL = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title>"
    b"<script src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1'></script></head>"
    b"<body><div id='cf-chl-widget'>Checking your browser before accessing.</div>"
    b"<script>window._cf_chl_opt={cType:'managed'};</script></body></html>"
)
_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=6)
    return _BOMB


class SimWeb(BackgroundServer):
    """The server. Use as a context manager (or :meth:`start` / :meth:`stop`)."""

    name = "simweb"

    def __init__(
        self,
        hosts: dict[str, Host] | None = None,
        *,
        latency: float = 0.0,
        max_seconds: float = 300.0,
        workdir: str | Path | None = None,
        bind: str = "127.0.0.1",
        http_port: int = 0,
        https_port: int = 0,
    ) -> None:
        super().__init__()
        if not bind.startswith("127."):
            raise ValueError("simweb binds loopback addresses only")
        self.hosts = hosts or {}
        self.latency = latency
        self.max_seconds = max_seconds
        self.bind = bind
        self.http_port = http_port
        self.https_port = https_port
        self.closed_port = 0
        self._workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="simweb-"))
        self.ca = trustme.CA()
        self.ca_path = str(self._workdir / "simweb-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        self.log: list[Record] = []
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.max_in_flight: collections.Counter[str] = collections.Counter()
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed_socket: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _after_stop(self) -> None:
        if self._closed_socket is not None:
            self._closed_socket.close()
            self._closed_socket = None

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        http = await asyncio.start_server(
            lambda r, w: self._accept(r, w, "http"), self.bind, self.http_port, backlog=1024
        )
        https = await asyncio.start_server(
            lambda r, w: self._accept(r, w, "https"),
            self.bind,
            self.https_port,
            ssl=self._server_context(),
            ssl_handshake_timeout=5,
            backlog=1024,
        )
        self.http_port = http.sockets[0].getsockname()[1]
        self.https_port = https.sockets[0].getsockname()[1]
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        closed.bind((self.bind, 0))  # bound, never listening: connections are refused
        self._closed_socket = closed
        self.closed_port = closed.getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_seconds)
        except TimeoutError:
            pass
        finally:
            http.close()
            https.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    # -- what clients need ----------------------------------------------------------------------
    @property
    def connect_to(self) -> list[str]:
        """``--connect-to`` specs: closed hosts first, then every host on ports 80 and 443."""
        specs = []
        for name, host in self.hosts.items():
            if host.closed:
                specs += [f"{name}:80:127.0.0.1:{self.closed_port}"]
                specs += [f"{name}:443:127.0.0.1:{self.closed_port}"]
        return specs + [f":80:{self.bind}:{self.http_port}", f":443:{self.bind}:{self.https_port}"]

    def url(self, host: str, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{host}{path}"

    def requests_to(self, host: str) -> list[Record]:
        return [record for record in self.log if record.host == host]

    def reset(self) -> None:
        """Forget the log and the per-path counters (flaky, ratelimit)."""
        self.log.clear()
        self.seen.clear()
        self.max_in_flight.clear()

    # -- TLS ----------------------------------------------------------------------------------
    def _server_context(self) -> ssl.SSLContext:
        context = self._context_for("simweb.test", "ok")
        context.sni_callback = self._sni
        return context

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        name = (name or "simweb.test").lower()
        kind = self.hosts[name].tls if name in self.hosts else "ok"
        sslobj.context = self._context_for(name, kind)

    def _context_for(self, name: str, kind: str) -> ssl.SSLContext:
        key = (name, kind)
        if key not in self._contexts:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            now = dt.datetime.now(dt.UTC)
            if kind == "expired":
                cert = self.ca.issue_cert(
                    name, not_before=now - dt.timedelta(days=60), not_after=now - dt.timedelta(1)
                )
            elif kind == "wrong_host":
                cert = self.ca.issue_cert("some-other-host.test")
            else:
                cert = self.ca.issue_cert(name)
            cert.configure_cert(context)
            self._contexts[key] = context
        return self._contexts[key]

    # -- HTTP ---------------------------------------------------------------------------------
    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._connection(reader, writer, scheme)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                return
            if len(head) > MAX_REQUEST_HEAD:
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                return
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            host = headers.get("host", "").lower()
            host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            path = target
            if "://" in target:
                rest = target.split("://", 1)[1]
                path = rest[rest.find("/") :] if "/" in rest else "/"
            request = Request(method.upper(), host, path, scheme, headers)
            keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            record = Record(host, request.method, path, scheme, time.monotonic())
            self.log.append(record)
            self.in_flight[host] += 1
            record.in_flight = self.in_flight[host]
            self.max_in_flight[host] = max(self.max_in_flight[host], self.in_flight[host])
            try:
                keep = await self._answer(request, writer, record) and keep
            finally:
                self.in_flight[host] -= 1
                record.end = time.monotonic()
            if not keep:
                return

    async def _answer(self, request: Request, writer: asyncio.StreamWriter, record: Record) -> bool:
        """Send the answer; False if the connection must close afterwards."""
        config = self.hosts.get(request.host, Host())
        if config.hang:
            await asyncio.sleep(self.max_seconds)
            return False
        reply = self.route(request, config)
        delay = reply.delay + (config.latency if config.latency is not None else self.latency)
        if delay:
            await asyncio.sleep(delay)
        record.status = reply.status
        if reply.action == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if reply.action == "hang":
            await asyncio.sleep(self.max_seconds)
            return False
        head = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
        names = {name.lower() for name, _ in reply.headers}
        if "content-type" not in names:
            head.append("Content-Type: text/html; charset=utf-8")
        head += [f"{name}: {value}" for name, value in reply.headers]
        if reply.action == "endless":
            head.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if request.method == "HEAD":
                return True
            chunk = b"<p>" + b"more " * 4000 + b"</p>\n"
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            sent = 0
            while sent < ENDLESS_LIMIT and not writer.is_closing():
                writer.write(framed)
                await writer.drain()
                sent += len(chunk)
            return False
        body = reply.body
        if reply.action == "gzipbomb":  # built once, off the server loop
            body = await asyncio.get_running_loop().run_in_executor(None, gzip_bomb)
        if reply.action == "gzipbomb":
            head.append("Content-Encoding: gzip")
        head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
        if request.method != "HEAD":
            writer.write(body)
        await writer.drain()
        return reply.action is None

    # -- behaviour ----------------------------------------------------------------------------
    def route(self, request: Request, config: Host) -> Reply:
        """The reply for a request (the path language; per-host routes first)."""
        path = request.path
        for key in (path, path.split("?", 1)[0]):
            if key in config.routes:
                route = config.routes[key]
                return route(request) if callable(route) else route
        host, method = request.host, request.method
        parts = [part for part in path.split("?", 1)[0].split("/") if part]
        kind = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        count = self._count(host, path)
        if not parts:
            return Reply(200, body=page(f"{host} home", f"The front page of {host}. " * 20))
        if kind == "ok":
            return Reply(200, body=article(host, path))
        if kind in ("dead", "notfound", "robots.txt"):
            return Reply(404, body=page("404 Not Found", "Not Found"))
        if kind.startswith("gone"):
            return Reply(410, body=page("410 Gone", "Gone"))
        if kind == "status" and parts[1:] and parts[1].isdigit():
            code = int(parts[1])
            return Reply(code, body=page(f"{code} {REASONS.get(code, 'Status')}", "status"))
        if kind == "redirect" and parts[1:] and parts[1].isdigit():
            hops = int(parts[1])
            if hops <= 0:
                return Reply(200, body=article(host, path))
            tail = "/".join(parts[2:])
            return self._redirect(301, f"/redirect/{hops - 1}/{tail}")
        if kind == "redir" and parts[1:]:
            codes = [code for code in parts[1].split("-") if code]
            tail = "/".join(parts[2:])
            if not codes:
                return Reply(200, body=article(host, "/ok/" + tail))
            following = "-".join(codes[1:])
            target = f"/redir/{following}/{tail}" if following else f"/ok/{tail}"
            return self._redirect(int(codes[0]), target)
        if kind == "goto" and len(parts) >= 4:
            return self._redirect(int(parts[1]), f"{parts[2]}://{parts[3]}/{'/'.join(parts[4:])}")
        if kind == "chain" and parts[1:] and parts[1].isdigit():
            hops = int(parts[1])
            tail = "/".join(parts[2:])
            if hops <= 0:
                return Reply(200, body=article(host, path))
            return self._redirect(302, f"/chain/{hops - 1}/{tail}")
        if kind == "loop":
            return self._redirect(302, f"/loop2/{rest}")
        if kind == "loop2":
            return self._redirect(302, f"/loop/{rest}")
        if kind == "to-home":
            return self._redirect(301, "/")
        if kind == "to-error":
            return self._redirect(302, "/errors/404.html")
        if kind == "errors":
            return Reply(200, body=page("Oops", "Something went wrong. " * 30))
        if kind == "soft404":
            return Reply(200, body=page("Page not found – Example News", "Try the search. " * 5))
        if kind == "soft404-ar":
            return Reply(
                200, body=page("الصفحة غير موجودة", "عذرا، لم نتمكن من العثور على الصفحة.")
            )
        if kind == "soft404-body":
            return Reply(
                200, body=page("Example News", "Sorry, the page you requested could not be found.")
            )
        if kind == "head405":
            if method == "HEAD":
                return Reply(405, headers=[("Allow", "GET")])
            return Reply(200, body=article(host, path))
        if kind == "botwall":
            return Reply(
                403,
                headers=[("Server", "cloudflare"), ("cf-mitigated", "challenge")],
                body=BOT_WALL,
            )
        if kind.startswith("ratelimit"):
            if count == 1:
                return Reply(429, headers=[("Retry-After", "1")], body=b"slow down")
            return Reply(200, body=article(host, path))
        if kind == "429" and parts[1:]:
            headers = [] if parts[1] == "none" else [("Retry-After", parts[1])]
            return Reply(429, headers=headers, body=b"slow down")
        if kind == "flaky":
            if count == 1:
                return Reply(503, body=page("503", "Service Unavailable"))
            return Reply(200, body=article(host, path))
        if kind == "flakyn" and parts[1:] and parts[1].isdigit():
            if count <= int(parts[1]):
                return Reply(503, body=page("503", "Service Unavailable"))
            return Reply(200, body=article(host, path))
        if kind == "flaky-reset":
            if count == 1:
                return Reply(action="reset")
            return Reply(200, body=article(host, path))
        if kind == "slow" and parts[1:] and parts[1].isdigit():
            return Reply(200, body=article(host, path), delay=int(parts[1]) / 1000)
        if kind == "reset":
            return Reply(action="reset")
        if kind == "hang":
            return Reply(action="hang")
        if kind == "endless":
            return Reply(200, action="endless")
        if kind == "gzipbomb":
            return Reply(200, action="gzipbomb")
        if kind == "bigheaders":
            filler = "x" * 1000
            headers = [(f"X-Filler-{i}", filler) for i in range(80)]
            return Reply(200, headers=headers, body=article(host, path))
        if config.soft404:
            return Reply(200, body=generic_page(host))
        if config.unknown_status is not None:
            return Reply(config.unknown_status, body=page("Error", "Something went wrong"))
        return Reply(404, body=page("404 Not Found", "Not Found"))

    def _count(self, host: str, path: str) -> int:
        self.seen[(host, path)] += 1
        return self.seen[(host, path)]

    @staticmethod
    def _redirect(code: int, location: str) -> Reply:
        return Reply(code, headers=[("Location", location)], body=b"moved")


def main() -> None:
    """Run a standalone simweb (used by the benchmark when ../shared/bench is missing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    web = SimWeb(
        latency=args.latency_ms / 1000, max_seconds=args.max_seconds, http_port=args.port
    ).start()
    print(f"READY http={web.http_port} https={web.https_port} ca={web.ca_path}", flush=True)
    try:
        assert web._thread is not None
        web._thread.join()
    except KeyboardInterrupt:
        web.stop()


if __name__ == "__main__":
    main()
