"""simwayback: a simulated Wayback Machine on loopback, for tests that use real sockets.

It answers the endpoints citewatch uses, with archive.org's quirks (issue 4):

=================================== =============================================================
endpoint                            behaviour
=================================== =============================================================
``GET /cdx/search/cdx``             JSON with a header row; ``[]`` (no header) for no results;
                                    duplicate rows (``Capture.repeat``); revisits (``warc/revisit``,
                                    statuscode ``-``) filled in by ``resolveRevisits=true`` (unless
                                    ``resolve_revisits=False``); ``showResumeKey`` + ``limit`` +
                                    ``resumeKey`` pagination with opaque keys holding ``%`` and
                                    ``+``; ``matchType`` exact/prefix/host/domain and ``url=…*``;
                                    ``from``/``to``/``filter``/``collapse``/``fl``; 403 with
                                    ``X-Archive-Wayback-Runtime-Error`` for a blocked host
``GET /web/timemap/link/<url>``     a link-format TimeMap (counted with CDX)
``GET /wayback/available``          the closest 2xx capture, or ``{"archived_snapshots": {}}``
``POST /save``                      SPN2 submit (form ``url``): a job id, or an error-as-200
``GET /save/status/<job>``          ``pending`` for ``SpnPlan.pending_polls`` polls, then
                                    ``success`` (a new capture appears) or ``error``
``GET /web/<ts>[id_]/<url>``        replay: 200 with ``Memento-Datetime`` and ``Link``; a timestamp
                                    with no exact capture 302s to the nearest one; 404 if none
=================================== =============================================================

Rate limiting: ``limits={"cdx": (budget, window_seconds)}`` answers past the budget with a 429
HTML page and no Retry-After, like archive.org; ``script={"cdx": [429, 503]}`` answers the next
requests of a family with those statuses first. Families: ``cdx`` (CDX and TimeMap),
``availability``, ``save``, ``status``, ``replay``.

Answers no well-behaved server sends: a :class:`Scripted` entry in ``script`` is sent as given —
any status, body and headers, a header value with a control byte (``Location: /web/…\x01``, which
httpx refuses) or JSON with a lone surrogate escape (``"\udcff"``) — optionally only to the next
request whose target or form contains ``when`` (e.g. one URL's lookup or replay).

A careless archive: ``echo="…"`` repeats that text in an ``X-Echo`` header of every answer and in
every error it sends (the body of an HTTP error, the ``message`` of a JSON error, SPN's
error-as-200 included), and ``SpnPlan(echo_auth=True)`` repeats the request's Authorization header
in the message and an ``X-Request-Authorization`` header — keys must be scrubbed.

Every request is logged (:attr:`SimWayback.hits`: time, family, path, query, status, the
Authorization header, the form) so tests can assert rates, batching and where keys went.
Clients reach it as ``http(s)://web.archive.org`` through a ``--connect-to`` rule
(:attr:`SimWayback.connect_to`), and for TLS with :attr:`SimWayback.ca_path` (a trustme CA).
Nothing here talks to anything but 127.0.0.1; the server stops itself after ``max_seconds``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from citewatch.config import Settings
from citewatch.net import ConnectTo

from .background import BackgroundServer

HOST = "web.archive.org"
FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")
BLOCKED_ERROR = (
    "org.archive.util.io.RuntimeIOException: org.archive.wayback.exception."
    "AdministrativeAccessControlException: Blocked Site Error"
)
TOO_MANY = (
    b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1>"
    b"<p>We are limiting the rate of requests.</p></body></html>"
)
REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def page(title: str, text: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{text}</p></body></html>"
    ).encode()


def article(url: str, timestamp: str) -> bytes:
    words = " ".join(f"Paragraph {i} of the article at {url}." for i in range(20))
    return page(f"Article {urlsplit(url).path}", f"Captured {timestamp}. {words}")


def digest_of(body: bytes) -> str:
    return base64.b32encode(hashlib.sha1(body).digest()).decode()


@dataclass
class Capture:
    """One capture of a URL, as the archive holds it."""

    timestamp: str
    status: int = 200
    mimetype: str = "text/html"
    body: bytes | str | None = None
    """Default: an article page unique to the URL and timestamp."""
    digest: str | None = None
    """Default: base32 SHA-1 of the body (revisits: give the digest of the capture they repeat)."""
    revisit: bool = False
    """Listed as ``warc/revisit`` with statuscode ``-``; replays the capture with its digest."""
    repeat: int = 1
    """How many identical CDX rows list this capture."""
    original: str | None = None
    """The URL as captured (default: the configured URL)."""
    location: str | None = None
    """For a 3xx capture: where it redirected."""


@dataclass
class SpnPlan:
    """How SPN2 treats submissions of one URL."""

    pending_polls: int = 2
    outcome: str = "success"
    """success | error"""
    status_ext: str | None = None
    """For outcome error: e.g. error:not-found."""
    submit_error: str | None = None
    """Refuse at submit time with an error-as-200 (e.g. error:too-many-daily-captures)."""
    submit_http: int | None = None
    echo_auth: bool = False
    """A careless server: error messages repeat the Authorization header (keys must be scrubbed)."""


@dataclass
class Scripted:
    """One answer sent as given, in ``script`` (see the module docstring)."""

    status: int = 200
    body: bytes | str = b""
    """A ``str`` is sent UTF-8 encoded (``json.dumps`` writes a lone surrogate as ``\\udcff``)."""
    headers: list[tuple[str, str]] = field(default_factory=list)
    """Sent as written: a control byte stays one."""
    content_type: str = "application/json"
    when: str | None = None
    """Only for a request whose raw target or form holds this text (None: the next request)."""


@dataclass
class Hit:
    """One request the simulated archive saw."""

    t: float
    family: str
    method: str
    path: str
    query: dict[str, list[str]]
    status: int = 0
    authorization: str | None = None
    form: dict[str, list[str]] = field(default_factory=dict)
    raw_target: str = ""
    raw_form: str = ""


@dataclass
class _Row:
    urlkey: str
    timestamp: str
    original: str
    mimetype: str
    statuscode: str
    digest: str
    length: str
    capture: Capture
    url: str


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


def _host_of(url: str) -> str:
    netloc = urlsplit(url if "://" in url else "http://" + url).netloc.lower()
    host = netloc.rsplit("@", 1)[-1]
    host = re.sub(r":(80|443)$", "", host)
    return re.sub(r"^www\d*\.", "", host)


def urlkey(url: str) -> str:
    """A SURT-ish key: ``com,example)/path?query`` (lower case, no scheme, no www)."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = _host_of(url)
    path = parts.path or "/"
    key = ",".join(reversed(host.split("."))) + ")" + path
    if parts.query:
        key += "?" + "&".join(sorted(parts.query.split("&")))
    return key.lower()


def _exact_key(url: str) -> str:
    """Exact-match identity: the urlkey unescaped, without a trailing slash."""
    key = unquote(urlkey(url))
    return key[:-1] if key.endswith("/") and not key.endswith(")/") else key


def wayback_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


class SimWayback(BackgroundServer):
    """The server. Use as a context manager (or :meth:`start` / :meth:`stop`)."""

    name = "simwayback"

    def __init__(
        self,
        captures: dict[str, list[Capture]] | None = None,
        *,
        blocked: Iterable[str] = (),
        limits: dict[str, tuple[int, float]] | None = None,
        script: dict[str, list[int | Scripted]] | None = None,
        spn: dict[str, SpnPlan] | None = None,
        resolve_revisits: bool = True,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        workdir: str | Path | None = None,
        max_seconds: float = 120.0,
        echo: str | None = None,
    ) -> None:
        super().__init__()
        self.captures: dict[str, list[Capture]] = {k: list(v) for k, v in (captures or {}).items()}
        self.blocked = {_host_of(h) for h in blocked}
        self.limits = dict(limits or {})
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.spn = dict(spn or {})
        self.resolve_revisits = resolve_revisits
        self.max_seconds = max_seconds
        self.echo = echo
        self.hits: list[Hit] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.ca_path: str | None = None
        self._ssl = ssl_context
        if tls and ssl_context is None:
            import trustme

            folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="simwayback-"))
            ca = trustme.CA()
            self.ca_path = str(folder / "simwayback-ca.pem")
            ca.cert_pem.write_to_path(self.ca_path)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(HOST, "archive.org").configure_cert(context)
            self._ssl = context
        self.scheme = "https" if self._ssl else "http"
        self.port = 0
        self._resume: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._job_counter = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        extra: dict[str, Any] = {"ssl": self._ssl, "ssl_handshake_timeout": 5} if self._ssl else {}
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0, **extra)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_seconds)
        except TimeoutError:
            pass
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- what clients need ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``--wayback-url`` for this server (reached through :attr:`connect_to`)."""
        return f"{self.scheme}://{HOST}"

    @property
    def connect_to(self) -> list[str]:
        port = 443 if self._ssl else 80
        return [f"{HOST}:{port}:127.0.0.1:{self.port}"]

    def requests(self, family: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if family is None or h.family == family]

    def max_in_window(self, family: str, window: float) -> int:
        """The most requests of a family that started within any ``window`` seconds."""
        times = sorted(h.t for h in self.requests(family))
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- HTTP plumbing ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
        parts = urlsplit(target)
        hit = Hit(
            time.monotonic(),
            self._family(method, parts.path),
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            authorization=headers.get("authorization"),
            form=parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True),
            raw_target=target,
            raw_form=body.decode("utf-8", "replace"),
        )
        with self._lock:
            self.hits.append(hit)
        try:
            reply = self._limited(hit) or self._route(hit, parts.query)
        except Exception as exc:  # a bug in the simulator: answer 500 and remember it
            self.errors.append(f"{type(exc).__name__}: {exc}")
            reply = _Reply(500, b"simulator error", content_type="text/plain")
        if self.echo:
            reply = _echoed(reply, self.echo)
        hit.status = reply.status
        out = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
        out.append(f"Content-Type: {reply.content_type}")
        out += [f"{name}: {value}" for name, value in reply.headers]
        out.append(f"Content-Length: {len(reply.body)}")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("utf-8") + reply.body)
        await writer.drain()
        return version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"

    @staticmethod
    def _family(method: str, path: str) -> str:
        if path.startswith("/cdx/") or path.startswith("/web/timemap/"):
            return "cdx"
        if path.startswith("/wayback/available"):
            return "availability"
        if path.startswith("/save/status/"):
            return "status"
        if path.startswith("/save"):
            return "save"
        if path.startswith("/web/"):
            return "replay"
        return "other"

    def _limited(self, hit: Hit) -> _Reply | None:
        queued = self.script.get(hit.family) or []
        for index, entry in enumerate(queued):
            if isinstance(entry, Scripted):
                about = unquote(hit.raw_target) + " " + unquote(hit.raw_form)
                if entry.when is not None and entry.when not in about:
                    continue
                queued.pop(index)
                body = entry.body.encode() if isinstance(entry.body, str) else entry.body
                return _Reply(entry.status, body, list(entry.headers), entry.content_type)
            status = queued.pop(index)
            body = TOO_MANY if status == 429 else page(f"{status}", "The archive is busy.")
            return _Reply(status, body, content_type="text/html")
        limit = self.limits.get(hit.family)
        if limit is None:
            return None
        budget, window = limit
        with self._lock:
            recent = [h for h in self.hits if h.family == hit.family and hit.t - h.t < window]
        if len(recent) > budget:  # this request is in ``recent`` too
            return _Reply(429, TOO_MANY, content_type="text/html")
        return None

    def _route(self, hit: Hit, raw_query: str) -> _Reply:
        path = hit.path
        if path == "/cdx/search/cdx":
            return self._cdx(hit.query)
        if path.startswith("/web/timemap/link/"):
            return self._timemap(path[len("/web/timemap/link/") :], raw_query)
        if path == "/wayback/available":
            return self._available(hit.query)
        if path.startswith("/save/status/"):
            return self._status(unquote(path[len("/save/status/") :]))
        if path in ("/save", "/save/") and hit.method == "POST":
            return self._submit(hit.form, hit.authorization)
        if path.startswith("/web/"):
            return self._replay(path, raw_query)
        return _Reply(404, page("404", "Not here"), content_type="text/html")

    # -- the archive's contents ---------------------------------------------------------------
    def add_capture(self, url: str, capture: Capture) -> None:
        with self._lock:
            self.captures.setdefault(url, []).append(capture)

    def _body(self, url: str, capture: Capture) -> bytes:
        if capture.body is None:
            if capture.revisit and capture.digest:
                source = self._by_digest(url, capture.digest)
                if source is not None:
                    return self._body(url, source)
            return article(url, capture.timestamp)
        return capture.body.encode() if isinstance(capture.body, str) else capture.body

    def _by_digest(self, url: str, digest: str) -> Capture | None:
        for other in self.captures.get(url, []):
            if not other.revisit and self._digest(url, other) == digest:
                return other
        return None

    def _digest(self, url: str, capture: Capture) -> str:
        if capture.digest:
            return capture.digest
        return digest_of(self._body(url, capture))

    def _rows(self) -> list[_Row]:
        rows = []
        with self._lock:
            items = [(url, list(caps)) for url, caps in self.captures.items()]
        for url, caps in items:
            for cap in caps:
                original = cap.original or url
                body = self._body(url, cap)
                row = _Row(
                    urlkey(original),
                    cap.timestamp,
                    original,
                    "warc/revisit" if cap.revisit else cap.mimetype,
                    "-" if cap.revisit else str(cap.status),
                    self._digest(url, cap),
                    str(len(body)),
                    cap,
                    url,
                )
                rows.extend([row] * cap.repeat)
        rows.sort(key=lambda r: (r.urlkey, r.timestamp))
        return rows

    def _resolved(self, row: _Row, rows: list[_Row]) -> _Row:
        if row.statuscode != "-":
            return row
        earlier = [
            r
            for r in rows
            if r.urlkey == row.urlkey
            and r.digest == row.digest
            and r.statuscode != "-"
            and r.timestamp <= row.timestamp
        ]
        if not earlier:
            return row
        source = earlier[-1]
        return _Row(
            row.urlkey,
            row.timestamp,
            row.original,
            source.mimetype,
            source.statuscode,
            row.digest,
            row.length,
            row.capture,
            row.url,
        )

    def _cdx(self, query: dict[str, list[str]]) -> _Reply:
        one = {k: v[-1] for k, v in query.items()}
        url = one.get("url", "")
        if not url:
            return _Reply(400, b"url is required", content_type="text/plain")
        if _host_of(url) in self.blocked:
            return _Reply(
                403,
                BLOCKED_ERROR.encode(),
                [("X-Archive-Wayback-Runtime-Error", BLOCKED_ERROR)],
                "text/plain",
            )
        match_type = one.get("matchType", "exact")
        if url.endswith("*"):
            url, match_type = url.rstrip("*"), "prefix"
        rows = [r for r in self._rows() if self._matches(r, url, match_type)]
        if one.get("resolveRevisits") == "true" and self.resolve_revisits:
            rows = [self._resolved(r, rows) for r in rows]
        if "from" in one:
            rows = [r for r in rows if r.timestamp[: len(one["from"])] >= one["from"]]
        if "to" in one:
            rows = [r for r in rows if r.timestamp[: len(one["to"])] <= one["to"]]
        for spec in query.get("filter", []):
            negate = spec.startswith("!")
            name, _, pattern = spec.lstrip("!").partition(":")
            rows = [r for r in rows if bool(re.fullmatch(pattern, getattr(r, name, ""))) != negate]
        for spec in query.get("collapse", []):
            name, _, width = spec.partition(":")
            kept: list[_Row] = []
            for r in rows:
                value = getattr(r, name, "")[: int(width)] if width else getattr(r, name, "")
                previous = getattr(kept[-1], name, "") if kept else None
                if previous is not None and width:
                    previous = previous[: int(width)]
                if value != previous:
                    kept.append(r)
            rows = kept
        offset = 0
        if "resumeKey" in one:
            if one["resumeKey"] not in self._resume:
                return _Reply(400, b"bad resume key", content_type="text/plain")
            offset = self._resume[one["resumeKey"]]
        limit = int(one["limit"]) if one.get("limit", "").lstrip("-").isdigit() else None
        page_rows = rows[offset:]
        more = False
        if limit is not None and limit >= 0:
            more = len(page_rows) > limit
            page_rows = page_rows[:limit]
        fields = one.get("fl", ",".join(FIELDS)).split(",")
        if one.get("output") != "json":
            text = "\n".join(" ".join(getattr(r, f) for f in fields) for r in page_rows)
            return _Reply(200, (text + "\n").encode() if text else b"", content_type="text/plain")
        if not page_rows:
            return _Reply(200, b"[]")
        data: list[list[str]] = [fields] + [[getattr(r, f) for f in fields] for r in page_rows]
        if more and one.get("showResumeKey") == "true":
            last = page_rows[-1]
            key = f"{quote(last.urlkey, safe='')}+{last.timestamp}+{offset + len(page_rows)}"
            self._resume[key] = offset + len(page_rows)
            data += [[], [key]]
        return _Reply(200, json.dumps(data).encode())

    def _matches(self, row: _Row, url: str, match_type: str) -> bool:
        if match_type == "exact":
            return _exact_key(row.original) == _exact_key(url)
        if match_type == "prefix":
            return unquote(row.urlkey).startswith(unquote(urlkey(url)))
        host = _host_of(url)
        row_host = _host_of(row.original)
        if match_type == "host":
            return row_host == host
        if match_type == "domain":
            return row_host == host or row_host.endswith("." + host)
        return False

    def _captures_for(self, url: str) -> list[tuple[str, Capture]]:
        key = _exact_key(url)
        with self._lock:
            items = [(u, list(c)) for u, c in self.captures.items()]
        found = [(u, c) for u, caps in items for c in caps if _exact_key(c.original or u) == key]
        return sorted(found, key=lambda pair: pair[1].timestamp)

    def _resolved_status(self, url: str, capture: Capture) -> int:
        if capture.revisit and capture.digest:
            source = self._by_digest(url, capture.digest)
            if source is not None:
                return source.status
        return capture.status

    def _available(self, query: dict[str, list[str]]) -> _Reply:
        url = query.get("url", [""])[-1]
        wanted = query.get("timestamp", [wayback_now()])[-1].ljust(14, "0")
        good = [
            (u, c) for u, c in self._captures_for(url) if 200 <= self._resolved_status(u, c) < 300
        ]
        if not good:
            return _Reply(200, json.dumps({"url": url, "archived_snapshots": {}}).encode())
        u, best = min(good, key=lambda pair: abs(int(pair[1].timestamp) - int(wanted)))
        closest = {
            "status": str(self._resolved_status(u, best)),
            "available": True,
            "url": f"http://{HOST}/web/{best.timestamp}/{best.original or u}",
            "timestamp": best.timestamp,
        }
        return _Reply(
            200, json.dumps({"url": url, "archived_snapshots": {"closest": closest}}).encode()
        )

    def _timemap(self, url: str, raw_query: str) -> _Reply:
        if raw_query:
            url += "?" + raw_query
        found = self._captures_for(url)
        if not found:
            return _Reply(404, b"", content_type="application/link-format")
        lines = [f'<{url}>; rel="original"']
        for u, c in found:
            lines.append(
                f'<{self.base_url}/web/{c.timestamp}/{c.original or u}>; rel="memento"; '
                f'datetime="{_http_date(c.timestamp)}"'
            )
        return _Reply(200, ",\n".join(lines).encode(), content_type="application/link-format")

    # -- replay ----------------------------------------------------------------------------
    def _replay(self, path: str, raw_query: str) -> _Reply:
        match = re.match(r"^/web/(\d{1,14})([a-z]{2}_)?/(.+)$", path)
        if not match:
            return _Reply(404, page("Not found", "Wayback Machine"), content_type="text/html")
        asked, flags, original = match.group(1), match.group(2) or "", match.group(3)
        original = re.sub(r"^(https?):/(?!/)", r"\1://", original)
        if raw_query:
            original += "?" + raw_query
        found = self._captures_for(original)
        if not found:
            body = page("Wayback Machine", "The Wayback Machine has not archived that URL.")
            return _Reply(404, body, content_type="text/html")
        wanted = asked.ljust(14, "0")
        exact = [(u, c) for u, c in found if c.timestamp == wanted]
        if not exact:
            u, nearest = min(found, key=lambda pair: abs(int(pair[1].timestamp) - int(wanted)))
            location = f"/web/{nearest.timestamp}{flags}/{nearest.original or u}"
            return _Reply(302, b"", [("Location", location)], "text/html")
        url, capture = exact[0]
        status = self._resolved_status(url, capture)
        headers = [
            ("Memento-Datetime", _http_date(capture.timestamp)),
            (
                "Link",
                f'<{original}>; rel="original", '
                f'<{self.base_url}/web/timemap/link/{original}>; rel="timemap"; '
                'type="application/link-format", '
                f'<{self.base_url}/web/{capture.timestamp}/{original}>; rel="memento"; '
                f'datetime="{_http_date(capture.timestamp)}"',
            ),
        ]
        if capture.location:
            headers.append(("Location", f"/web/{capture.timestamp}{flags}/{capture.location}"))
        return _Reply(status, self._body(url, capture), headers, capture.mimetype)

    # -- Save Page Now ------------------------------------------------------------------------
    def _submit(self, form: dict[str, list[str]], authorization: str | None) -> _Reply:
        url = form.get("url", [""])[-1]
        if not url:
            return _Reply(
                400, json.dumps({"status": "error", "status_ext": "error:invalid-url"}).encode()
            )
        plan = self.spn.get(url, SpnPlan())
        if plan.submit_http:
            return _Reply(
                plan.submit_http, page("Error", "Save Page Now error"), content_type="text/html"
            )
        if plan.submit_error:
            data = {
                "status": "error",
                "status_ext": plan.submit_error,
                "message": f"Cannot capture {url}: {plan.submit_error}",
            }
            headers = []
            if plan.echo_auth:
                data["message"] += f" (request had Authorization: {authorization})"
                headers.append(("X-Request-Authorization", authorization or ""))
            return _Reply(200, json.dumps(data).encode(), headers)
        with self._lock:
            self._job_counter += 1
            job_id = "spn2-" + hashlib.sha1(f"{url}{self._job_counter}".encode()).hexdigest()[:16]
            self.jobs[job_id] = {"url": url, "polls": 0, "plan": plan}
        return _Reply(200, json.dumps({"url": url, "job_id": job_id}).encode())

    def _status(self, job_id: str) -> _Reply:
        job = self.jobs.get(job_id)
        if job is None:
            data = {"status": "error", "status_ext": "error:not-found", "message": "no such job"}
            return _Reply(404, json.dumps(data).encode())
        job["polls"] += 1
        plan: SpnPlan = job["plan"]
        if job["polls"] <= plan.pending_polls:
            return _Reply(200, json.dumps({"status": "pending", "job_id": job_id}).encode())
        if plan.outcome == "error":
            data = {
                "status": "error",
                "job_id": job_id,
                "status_ext": plan.status_ext or "error:unknown",
                "message": f"Capture failed: {plan.status_ext}",
            }
            return _Reply(200, json.dumps(data).encode())
        if "timestamp" not in job:
            job["timestamp"] = wayback_now()
            self.add_capture(job["url"], Capture(job["timestamp"]))
        data = {
            "status": "success",
            "job_id": job_id,
            "original_url": job["url"],
            "timestamp": job["timestamp"],
            "duration_sec": 1.5,
        }
        return _Reply(200, json.dumps(data).encode())


def _echoed(reply: _Reply, echo: str) -> _Reply:
    """``reply`` as a careless archive sends it: ``echo`` in a header, and in the error if any."""
    headers = [*reply.headers, ("X-Echo", echo)]
    body = reply.body
    data: Any = None
    if reply.content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict) and (data.get("status") == "error" or reply.status >= 400):
        data["message"] = f"{data.get('message') or 'error'} [{echo}]"
        body = json.dumps(data).encode()
    elif reply.status >= 400:
        body += f"<!-- {echo} -->".encode()
    return _Reply(reply.status, body, headers, reply.content_type)


def _http_date(timestamp: str) -> str:
    moment = datetime.strptime(timestamp.ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return format_datetime(moment, usegmt=True)


# -- test helpers ---------------------------------------------------------------------------------
def wayback_settings(wayback: SimWayback, **overrides: Any) -> Settings:
    """Settings aimed at ``wayback`` (connect-to, CA), fast and generous unless overridden."""
    settings = Settings(
        wayback_url=wayback.base_url,
        cdx_per_minute=600.0,
        spn_per_minute_keys=600.0,
        spn_per_minute_anon=600.0,
        spn_poll_interval=0.05,
        spn_poll_timeout=2.0,
        retries=2,
        backoff=0.0,
    )
    settings.net.connect_to = [ConnectTo.parse(spec) for spec in wayback.connect_to]
    settings.net.cacert = wayback.ca_path
    settings.net.timeout = 2.0
    for key, value in overrides.items():
        target = settings.net if hasattr(settings.net, key) else settings
        setattr(target, key, value)
    return settings


@pytest.fixture
def make_simwayback(tmp_path: Path) -> Iterator[Callable[..., SimWayback]]:
    """Factory: ``make_simwayback({url: [Capture(...)]}, blocked=…, limits=…, spn=…, tls=…)``
    → a started :class:`SimWayback`, stopped after the test."""
    started: list[SimWayback] = []

    def make(captures: dict[str, list[Capture]] | None = None, **kwargs: Any) -> SimWayback:
        kwargs.setdefault("workdir", tmp_path)
        wayback = SimWayback(captures, **kwargs).start()
        started.append(wayback)
        return wayback

    yield make
    for wayback in started:
        wayback.stop()
