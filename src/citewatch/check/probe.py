"""Probe one URL: the HTTP exchanges, redirects by hand, capped reading, then classification.

Why by hand: every hop is recorded (the redirect chain is evidence), checked by the SSRF guard
(it sits in the connection backend, so it sees every hop) and counted against ``max_redirects``
with loop detection. Why our own body reader: httpx would inflate a whole gzip chunk at once, so a
gzip bomb could cost hundreds of MB before any cap applied; here the decompressor is asked for at
most the bytes still allowed, so the cap counts *decoded* bytes and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from ..config import Settings
from ..models import Outcome, ProbeResult
from ..wire import HeadersTooLarge
from .classify import (
    PERMANENT_REDIRECTS,
    REDIRECT_STATUSES,
    TRANSIENT_OUTCOMES,
    TRANSIENT_STATUSES,
    HostPrint,
    Page,
    is_app_shell,
    is_bot_wall,
    is_home_path,
    matches_host_print,
    outcome_for_exception,
    outcome_for_status,
    soft_404_reason,
)
from .direct import DirectSender, RawResponse
from .retry import RetryPolicy, parse_retry_after, with_retries
from .scheduler import Scheduler

#: We only advertise encodings we can decode with a bounded output.
REQUEST_HEADERS = {"Accept-Encoding": "gzip, deflate"}
#: Redirect and error bodies are read (to keep the connection reusable) up to this much.
SMALL_BODY = 64 * 1024
#: Bytes of visible text kept as a sample.
TEXT_SAMPLE_BYTES = 2048
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
#: Half of a UTF-16 pair: no database or UTF-8 output takes one alone.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def iso(moment: datetime) -> str:
    """The store's timestamp format (UTC, microseconds, 'Z')."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha1_base32(data: bytes) -> str:
    """SHA-1 in base32, the way Wayback CDX digests are written."""
    return base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


async def read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """Read at most ``cap`` decoded bytes; (body, read whole). Stops early on an endless body."""
    if response.is_stream_consumed:  # already in memory (e.g. a MockTransport response)
        return response.content[:cap], len(response.content) <= cap
    encoding = _encoding(response.headers)
    if encoding not in _OWN_DECODING:  # not advertised by us; let httpx decode it, still capped
        return await _read_decoded(response, cap)
    return await _read_raw(response.aiter_raw(), encoding, cap)


async def _read_direct(response: RawResponse, cap: int) -> tuple[bytes, bool]:
    """:func:`read_capped` for a response of the direct route (see :mod:`.direct`)."""
    encoding = _encoding(response.headers)
    if encoding not in _OWN_DECODING:
        return await _read_decoded(response.as_httpx(), cap)
    return await _read_raw(response.chunks(), encoding, cap)


_OWN_DECODING = frozenset({"gzip", "x-gzip", "deflate", "", "identity"})


def _encoding(headers: httpx.Headers) -> str:
    return headers.get("content-encoding", "identity").strip().lower()


async def _read_raw(chunks: AsyncIterator[bytes], encoding: str, cap: int) -> tuple[bytes, bool]:
    """Decode (gzip, deflate or identity) raw ``chunks`` up to ``cap`` decoded bytes."""
    if encoding in ("gzip", "x-gzip"):
        decoder: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        decoder = None
    buffer = bytearray()
    first = True
    async for chunk in chunks:
        if decoder is None:
            buffer += chunk
        else:
            try:
                buffer += decoder.decompress(chunk, cap + 1 - len(buffer))
            except zlib.error:
                if not (first and encoding == "deflate"):
                    raise
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
                buffer += decoder.decompress(chunk, cap + 1 - len(buffer))
            while decoder.unconsumed_tail and len(buffer) <= cap:
                more = decoder.decompress(decoder.unconsumed_tail, cap + 1 - len(buffer))
                if not more:
                    break
                buffer += more
        first = False
        if len(buffer) > cap:
            return bytes(buffer[:cap]), False
    return bytes(buffer), True


async def _read_decoded(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > cap:
            return bytes(buffer[:cap]), False
    return bytes(buffer), True


@dataclass(frozen=True, slots=True)
class PageText:
    """What the body says, as far as classification and drift scores care."""

    title: str | None = None
    sample: str | None = None
    length: int | None = None
    head: str = ""
    """The first characters of the decoded body (bot-wall markers live there)."""


def read_text(body: bytes, content_type: str | None) -> PageText:
    """Title, a visible-text sample (≤ 2 KB) and its full length from an HTML or text body."""
    if not body:
        return PageText()
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    htmlish = "html" in kind or "xml" in kind or (not kind and body.lstrip()[:1] == b"<")
    if not (htmlish or kind.startswith("text/")):
        return PageText()
    charset = _charset(content_type, body)
    try:
        text = body.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError):  # unknown or text-unfit codecs (idna, punycode)
        text = body.decode("utf-8", errors="replace")
    if _SURROGATE.search(text):  # a page's own codec (utf-7, unicode_escape…) spelt a lone half
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if not htmlish:
        visible = _SPACES.sub(" ", text).strip()
        return PageText(None, _sample(visible), len(visible), text[:4096])
    tree = HTMLParser(text)
    node = tree.css_first("title")
    title = _SPACES.sub(" ", node.text()).strip() if node is not None else None
    tree.strip_tags(["script", "style", "noscript", "template", "head"])
    root = tree.body or tree.root
    visible = _SPACES.sub(" ", root.text(separator=" ")).strip() if root is not None else ""
    return PageText(title or None, _sample(visible), len(visible), text[:20000])


def _charset(content_type: str | None, body: bytes) -> str:
    if content_type and "charset=" in content_type.lower():
        value = content_type.lower().split("charset=", 1)[1].split(";", 1)[0].strip(" \"'")
        if value:
            return value
    match = _META_CHARSET.search(body[:4096])
    if match:
        return match.group(1).decode("ascii", "replace")
    return "utf-8"


def _sample(visible: str) -> str | None:
    if not visible:
        return None
    return visible.encode("utf-8")[:TEXT_SAMPLE_BYTES].decode("utf-8", errors="ignore")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its (capped) response."""

    url: str
    method: str
    status: int
    headers: httpx.Headers
    body: bytes
    complete: bool
    parsed: httpx.URL


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at a URL (following its redirects), as the retry policy sees it."""

    result: ProbeResult
    transient: bool = False
    retry_after: float | None = None
    rate_limited: bool = False
    host: str = ""
    """The host that gave the last answer (a redirect target may differ from the URL's host)."""


def _strip_fragment(url: httpx.URL) -> httpx.URL:
    return url.copy_with(fragment=None) if url.fragment else url


class Prober:
    """Probes URLs through one shared client and scheduler; holds the per-host soft-404 prints."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        scheduler: Scheduler,
        settings: Settings,
        *,
        now: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        prints: Mapping[str, HostPrint | None] | None = None,
    ) -> None:
        """``prints`` are host prints already known (origin → print, None for a host that
        answers missing paths with an error): those hosts are not probed again."""
        self.client = client
        self.scheduler = scheduler
        self.settings = settings
        self.now = now or (lambda: datetime.now(UTC))
        self.rng = rng or random.Random()
        self.policy = RetryPolicy(
            retries=settings.retries,
            backoff=settings.backoff,
            retry_after_cap=settings.retry_after_cap,
        )
        #: Whole-exchange limit (connect + headers + body): a trickling server cannot hold us.
        self.total_timeout = max(settings.net.timeout * 2, 1.0)
        self._prints: dict[str, asyncio.Future[HostPrint | None]] = {}
        self._known = dict(prints or {})
        #: Host prints probed by this prober (conclusive ones only), for the store.
        self.probed_prints: list[dict[str, object]] = []
        #: The client's pool, driven directly when the client is a plain one (see .direct).
        self._direct = DirectSender.for_client(
            client, REQUEST_HEADERS, head_limit=settings.max_header_bytes
        )

    # -- public ---------------------------------------------------------------------------
    async def probe(self, url: str) -> ProbeResult:
        """Probe ``url`` (with retries for transient failures) and classify what it found."""
        checked_at = iso(self.now())
        started = time.perf_counter()
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            return ProbeResult(url, Outcome.INVALID_URL, checked_at, error=str(exc))
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return ProbeResult(
                url,
                Outcome.SKIPPED,
                checked_at,
                error=f"unsupported URL scheme {parsed.scheme!r} (not checked)",
            )
        attempt, attempts = await with_retries(
            self.policy,
            lambda: self._attempt(url, parsed),
            sleep=self._idle_sleep,
            on_wait=self._on_wait,
            rng=self.rng,
        )
        result = attempt.result
        error = result.error
        if attempt.transient and attempts > 1:
            error = f"{error or 'HTTP ' + str(result.status)} (after {attempts} attempts)"
        return replace(
            result,
            checked_at=checked_at,
            elapsed_ms=int((time.perf_counter() - started) * 1000),
            attempts=attempts,
            error=error,
        )

    async def reachable(self, url: str, timeout: float | None = None) -> tuple[bool, str | None]:
        """Does ``url`` give any HTTP answer at all? (The canary: status codes do not matter.)"""
        limit = timeout or self.settings.net.timeout
        try:
            async with asyncio.timeout(limit * 2):
                parsed = httpx.URL(url)
                direct = self._direct
                if direct is not None and direct.usable(parsed):
                    raw = await direct.open("GET", parsed)  # the probes' own route: no httpcore
                    await raw.aclose()
                    return True, None
                request = self.client.build_request("GET", url, headers=REQUEST_HEADERS)
                response = await self.client.send(request, stream=True)
                await response.aclose()
            return True, None
        except Exception as exc:  # any failure to get an answer means "unreachable"
            return False, outcome_for_exception(exc)[1]

    # -- retries ----------------------------------------------------------------------------
    async def _idle_sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        async with self.scheduler.idle():
            await asyncio.sleep(seconds)

    def _on_wait(self, attempt: Attempt, seconds: float) -> None:
        if attempt.rate_limited or attempt.retry_after is not None:
            self.scheduler.pause(attempt.host, seconds)

    # -- one attempt ------------------------------------------------------------------------
    async def _attempt(
        self, url: str, parsed: httpx.URL | None = None, *, host_probe: bool = False
    ) -> Attempt:
        method = "HEAD" if self.settings.head_first and not host_probe else "GET"
        current = parsed or httpx.URL(url)
        hops: list[tuple[int, str]] = []
        visited = {str(current)}
        urgent = host_probe  # another probe waits for the host probe's answer
        while True:
            try:
                exchange = await self._exchange(method, current, urgent=urgent)
            except asyncio.CancelledError:
                raise
            except HeadersTooLarge as exc:
                return self._failed(url, method, current, hops, Outcome.SERVER_ERROR, str(exc))
            except Exception as exc:
                outcome, error = outcome_for_exception(exc)
                return self._failed(url, method, current, hops, outcome, error)
            urgent = True  # any further request continues this probe
            location = exchange.headers.get("location")
            if exchange.status in REDIRECT_STATUSES and location:
                try:
                    target = _strip_fragment(current.join(location))
                except (httpx.InvalidURL, ValueError):
                    return self._failed(
                        url,
                        method,
                        current,
                        hops,
                        Outcome.INVALID_URL,
                        f"bad Location {location!r}",
                    )
                hops.append((exchange.status, str(target)))
                if str(target) in visited:
                    return self._failed(
                        url,
                        method,
                        current,
                        hops,
                        Outcome.TOO_MANY_REDIRECTS,
                        f"redirect loop back to {target}",
                        status=exchange.status,
                    )
                if len(hops) > self.settings.max_redirects:
                    return self._failed(
                        url,
                        method,
                        current,
                        hops,
                        Outcome.TOO_MANY_REDIRECTS,
                        f"more than {self.settings.max_redirects} redirects",
                        status=exchange.status,
                    )
                if target.scheme not in ("http", "https"):
                    return self._failed(
                        url,
                        method,
                        current,
                        hops,
                        Outcome.INVALID_URL,
                        f"redirect to unsupported URL {target}",
                        status=exchange.status,
                    )
                visited.add(str(target))
                current = target
                if exchange.status == 303 and method != "HEAD":
                    method = "GET"
                continue
            if method == "HEAD" and exchange.status >= 400 and exchange.status != 429:
                method = "GET"  # HEAD refused or mishandled (405, 403, 501…): ask properly
                continue
            if method == "HEAD" and 200 <= exchange.status < 300 and self.settings.soft404_probe:
                # A page that says "not found" under a 200 can only be told by reading it: HEAD
                # spared the redirect hops and error bodies, the page itself is read with GET.
                method = "GET"
                continue
            return await self._classify(url, exchange, hops, host_probe=host_probe)

    def _failed(
        self,
        url: str,
        method: str,
        current: httpx.URL,
        hops: list[tuple[int, str]],
        outcome: Outcome,
        error: str,
        status: int | None = None,
    ) -> Attempt:
        result = ProbeResult(
            url=url,
            outcome=outcome,
            checked_at="",
            method=method,
            status=status,
            final_url=str(current),
            redirects=tuple(hops),
            error=error,
        )
        return Attempt(result, transient=outcome in TRANSIENT_OUTCOMES, host=current.host)

    async def _exchange(self, method: str, url: httpx.URL, *, urgent: bool = False) -> Exchange:
        async with (
            self.scheduler.request(url.host, urgent=urgent),
            asyncio.timeout(self.total_timeout),
        ):
            exchange = await self._send(method, url)
        # Completions come in bursts. Step aside twice so that the requests waiting for the
        # slots this burst freed are all sent before any of the burst is classified; otherwise
        # each freed slot idles behind the classification of every answer queued before it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return exchange

    async def _send(self, method: str, url: httpx.URL) -> Exchange:
        direct = self._direct
        if direct is not None and direct.usable(url):
            raw = await direct.open(method, url)
            try:
                self._check_headers(raw.headers)
                if method == "HEAD":
                    body, complete = b"", True
                else:
                    body, complete = await _read_direct(raw, self._cap(raw.status))
            finally:
                await raw.aclose()
            return Exchange(str(url), method, raw.status, raw.headers, body, complete, url)
        request = self.client.build_request(method, url, headers=REQUEST_HEADERS)
        response = await self.client.send(request, stream=True)
        try:
            self._check_headers(response.headers)
            if method == "HEAD":
                body, complete = b"", True
            else:
                body, complete = await read_capped(response, self._cap(response.status_code))
        finally:
            await response.aclose()
        return Exchange(
            str(url), method, response.status_code, response.headers, body, complete, url
        )

    def _check_headers(self, headers: httpx.Headers) -> None:
        size = sum(len(k) + len(v) + 4 for k, v in headers.raw)
        if size > self.settings.max_header_bytes:
            raise HeadersTooLarge(
                f"response headers are {size} bytes, over the "
                f"{self.settings.max_header_bytes}-byte limit"
            )

    def _cap(self, status: int) -> int:
        """Redirect and error bodies are only read a little (to keep the connection reusable)."""
        if status in REDIRECT_STATUSES or status >= 400:
            return min(SMALL_BODY, self.settings.max_body)
        return self.settings.max_body

    # -- classification ---------------------------------------------------------------------
    async def _classify(
        self, url: str, exchange: Exchange, hops: list[tuple[int, str]], *, host_probe: bool
    ) -> Attempt:
        status = exchange.status
        headers = exchange.headers
        content_type = headers.get("content-type")
        text = read_text(exchange.body, content_type) if exchange.method == "GET" else PageText()
        complete = exchange.complete and exchange.method == "GET"
        length = len(exchange.body) if complete else _int(headers.get("content-length"))
        permanent = (
            bool(hops)
            and all(code in PERMANENT_REDIRECTS for code, _ in hops)
            and exchange.url != url
        )
        result = ProbeResult(
            url=url,
            outcome=outcome_for_status(status),
            checked_at="",
            method=exchange.method,
            status=status,
            final_url=exchange.url,
            redirects=tuple(hops),
            content_type=content_type,
            content_length=length,
            sha1=sha1_base32(exchange.body) if complete and status < 300 else None,
            title=text.title,
            text_sample=text.sample if status < 300 else None,
        )
        host = exchange.parsed.host
        if is_bot_wall(headers, text.title, text.head):
            result = replace(result, outcome=Outcome.BLOCKED, error="bot wall / challenge page")
            return Attempt(result, host=host)
        if result.outcome is Outcome.OK and not host_probe:
            page = Page(
                url=url,
                final_url=exchange.url,
                status=status,
                title=text.title,
                text=text.sample,
                text_length=text.length,
                sha1=result.sha1,
                length=length,
                redirected=bool(hops),
            )
            reason = soft_404_reason(page)
            if reason is None and self.settings.soft404_probe:
                reason = await self._host_soft_404(page, exchange.parsed if not hops else None)
                if reason is not None and is_app_shell(page, text.head):
                    # A JavaScript app answers every path with the same shell: the cited page and
                    # a path that cannot exist look alike without running the script. Can't tell.
                    return Attempt(
                        replace(
                            result,
                            outcome=Outcome.BLOCKED,
                            error="cannot tell: the site is a JavaScript app that serves the same "
                            "page for every path (a missing page looks like a live one)",
                        ),
                        transient=False,
                        retry_after=None,
                        rate_limited=False,
                        host=host,
                    )
            if reason is not None:
                result = replace(result, outcome=Outcome.SOFT_404, error=f"soft 404: {reason}")
            elif permanent:
                result = replace(result, outcome=Outcome.REDIRECTED, permanent_redirect=True)
        if not 200 <= status < 300:
            if not exchange.complete and exchange.method == "GET":
                result = replace(result, content_length=_int(headers.get("content-length")))
            if status == 429:
                result = replace(result, error="rate limited (HTTP 429)")
            elif result.outcome in (Outcome.SERVER_ERROR, Outcome.CLIENT_ERROR, Outcome.BLOCKED):
                result = replace(result, error=f"HTTP {status}")
        retry_after = (
            parse_retry_after(headers.get("retry-after")) if status in TRANSIENT_STATUSES else None
        )
        return Attempt(
            result,
            transient=status in TRANSIENT_STATUSES,
            retry_after=retry_after,
            rate_limited=status == 429,
            host=host,
        )

    # -- the soft-404 host probe -----------------------------------------------------------
    async def _host_soft_404(self, page: Page, asked: httpx.URL | None = None) -> str | None:
        asked = asked or httpx.URL(page.url)
        if is_home_path(asked.path):
            return None
        fingerprint = await self.host_print(asked)
        if fingerprint is not None and matches_host_print(page, fingerprint):
            return "the host answers a random never-existing path with the same page"
        return None

    async def host_print(self, url: httpx.URL) -> HostPrint | None:
        """How ``url``'s host answers a path that cannot exist; probed once per origin, cached."""
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        if origin in self._known:
            return self._known[origin]
        future = self._prints.get(origin)
        if future is None:
            depth = max(1, len([part for part in url.path.split("/") if part]))
            future = asyncio.ensure_future(self._probe_host(origin, depth))
            self._prints[origin] = future
        return await asyncio.shield(future)

    async def _probe_host(self, origin: str, depth: int) -> HostPrint | None:
        path = "/".join(f"citewatch-{self.rng.getrandbits(64):016x}" for _ in range(depth))
        probed_at = iso(self.now())
        try:
            attempt = await self._attempt(f"{origin}/{path}", host_probe=True)
        except Exception:  # a failed host probe only means "no evidence"
            return None
        result = attempt.result
        if result.status is None or attempt.transient:
            return None  # no answer, or a passing one (503, 429): no evidence, nothing to keep
        fingerprint = None
        if 200 <= result.status < 300:
            fingerprint = HostPrint(
                final_url=result.final_url or "",
                title=result.title,
                sha1=result.sha1,
                length=result.content_length,
                redirected=bool(result.redirects),
            )
        self.probed_prints.append(
            {
                "origin": origin,
                "probed_at": probed_at,
                "status": result.status,
                "final_url": result.final_url,
                "title": result.title,
                "sha1": result.sha1,
                "length": result.content_length,
                "redirected": int(bool(result.redirects)),
            }
        )
        return fingerprint


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
