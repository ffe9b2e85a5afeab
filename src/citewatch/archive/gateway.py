"""The one way citewatch talks to the Wayback Machine: endpoints, pacing, retries, circuit breaker.

archive.org asks for restraint: CDX and TimeMap share about 30 requests/min per IP, Save Page Now
allows a handful of captures per minute, a 429 arrives as an HTML page (often with no
Retry-After), and a client that keeps going after 429s for more than a minute gets its IP
firewalled for an hour. So every request goes through here:

* **endpoints** all derive from ``--wayback-url`` (and the availability base), so tests and
  mirrors work unchanged; the client is :func:`citewatch.net.make_client`, so ``--connect-to``,
  ``--cacert`` and the SSRF guard apply;
* **pacing**: one limiter per endpoint *family* (CDX+TimeMap, availability, SPN submit, SPN
  status, replay), shared process-wide, spacing request starts evenly;
* **retries** (tenacity) for transient failures only: connection errors, timeouts, 5xx, 429,
  and malformed answers (:func:`malformed_answer`: sent, but refused by httpx);
* a **429 pauses its whole family** (not just the one request) before anything else is sent;
* a **circuit breaker** stops all archive work for the run after repeated 429s, after a
  connection failure that follows a 429 (the firewall), or when the archive cannot be reached at
  all. Callers then see :class:`ArchiveStopped` and report ``rate_limited`` or ``unreachable`` —
  which is never confused with "no snapshot". A malformed answer came from an archive that is
  there: it is an error for its request (:class:`ArchiveRequestError`), never a connection
  failure, so it cannot make the archive "unreachable".

The archive.org keys only ever travel in the ``Authorization`` header of Save Page Now requests,
and :class:`KeyFilter` hides them (``***``) from everything that comes back: every answer's body and
headers are filtered as they arrive (before anything parses, truncates or quotes them), and every
error text that leaves this module is passed through :meth:`Gateway.scrub`. The runner puts the
same filter in front of the store, the reporter and its result (:mod:`.runner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, AnyStr, TypeVar
from urllib.parse import quote, quote_plus

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from waybackpy.cdx_utils import full_url

from ..check.probe import read_capped
from ..config import Settings
from ..net import PrivateAddressError, make_client
from ..progress import Reporter
from . import decode

#: Statuses worth trying again in a moment.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bodies larger than this are cut (CDX pages are kept small by ``limit``; replays need a sample).
DEFAULT_MAX_BODY = 16 * 1024 * 1024


class Family(StrEnum):
    """Endpoint families: each has its own rate limiter; a 429 pauses the whole family."""

    CDX = "cdx"
    """CDX search and TimeMap (archive.org counts them together)."""
    AVAILABILITY = "availability"
    SPN_SUBMIT = "spn_submit"
    SPN_STATUS = "spn_status"
    REPLAY = "replay"


class ArchiveState(StrEnum):
    """How the archive behaved during a run (``runs.archive``)."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    UNREACHABLE = "unreachable"


class ArchiveStopped(Exception):
    """The circuit breaker is open: no more archive requests this run."""

    def __init__(self, state: ArchiveState, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


class ArchiveRequestError(Exception):
    """One request failed for good (after retries) without stopping the whole run."""


T = TypeVar("T")


class KeyFilter:
    """Hides the archive.org keys: ``***`` wherever one appears, as sent or in the forms a server
    echoing a request back would use (percent-encoded, form-encoded, JSON-escaped).

    The one filter for anything that came from the archive and is stored, logged, printed or
    returned: :meth:`text` for a message, :meth:`body` and :meth:`headers` for an answer as it
    arrives, :meth:`deep` for whole structures (dicts, lists, tuples, dataclasses such as the rows
    handed to the store).

    A filter can only hide a key it sees whole, so it runs before anything is cut short; where a
    cut cannot wait for it (a body read up to a cap, a sample or an excerpt made elsewhere),
    ``cut=True`` (or :meth:`excerpts`) also hides the start of a key form left at the cut."""

    MASK = "***"

    def __init__(self, keys: Iterable[str] | None) -> None:
        forms: set[str] = set()
        for key in keys or ():
            if key:
                forms |= {
                    key,
                    quote(key, safe="", errors="surrogateescape"),
                    quote_plus(key, errors="surrogateescape"),
                    json.dumps(key)[1:-1],
                }
        # Longest first: a form that contains another is hidden whole.
        self._forms = sorted(forms, key=len, reverse=True)
        raw: set[bytes] = set()
        for form in self._forms:
            for encoding in ("utf-8", "latin-1"):  # the bytes as sent, in either header encoding
                with contextlib.suppress(UnicodeError):
                    raw.add(form.encode(encoding, "surrogateescape"))
        self._raw = sorted(raw, key=len, reverse=True)
        #: The longest form in bytes: read this much past a cap, and a key the cap cuts is whole.
        self.longest = len(self._raw[0]) if self._raw else 0

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str | None, *, cut: bool = False) -> str | None:
        """``text`` with every key form hidden; ``cut``: ``text`` was cut short at its end, so
        the start of a form there is hidden too."""
        if not text or not self._forms:
            return text
        for form in self._forms:
            if form in text:
                text = text.replace(form, self.MASK)
        return self._cut_end(text, self._forms, self.MASK) if cut else text

    def body(self, data: bytes, *, cut: bool = False) -> bytes:
        """:meth:`text` for bytes (an answer's body, a header's name or value), byte for byte:
        nothing is decoded or re-encoded."""
        if not data or not self._raw:
            return data
        mask = self.MASK.encode()
        for form in self._raw:
            if form in data:
                data = data.replace(form, mask)
        return self._cut_end(data, self._raw, mask) if cut else data

    def excerpts(self, text: str | None) -> str | None:
        """:meth:`text` for a message quoting excerpts cut short elsewhere (an error such as
        ``malformed status line 'HTTP/1.1 LOW AKEY1'``): the start of a form is hidden where
        the text ends and where a quote closes."""
        if not text or not self._forms:
            return text
        parts = re.split(r"(['\"])", self.text(text) or "")
        return "".join(
            part if part in ("'", '"') else self._cut_end(part, self._forms, self.MASK)
            for part in parts
        )

    @staticmethod
    def _cut_end(data: AnyStr, forms: list[AnyStr], mask: AnyStr) -> AnyStr:
        """``data`` with its end hidden if the end is the start of a form (a form cut short)."""
        size = 0
        for form in forms:
            for length in range(min(len(form) - 1, len(data)), size, -1):
                if data.endswith(form[:length]):
                    size = length
                    break
        return data[: len(data) - size] + mask if size else data

    def headers(self, headers: httpx.Headers) -> httpx.Headers:
        """The headers with every key form hidden, names and values, in their raw bytes (a
        header may hold any byte: nothing is decoded or re-encoded); the same object when there
        was nothing to hide."""
        if not self._raw:
            return headers
        raw = headers.raw
        hidden = [(self.body(name), self.body(value)) for name, value in raw]
        if all(a[0] is b[0] and a[1] is b[1] for a, b in zip(hidden, raw, strict=True)):
            return headers
        return httpx.Headers(hidden)

    def deep(self, value: T) -> T:
        """``value`` with every string in it filtered (the same object when there was nothing to
        hide)."""
        if not self._forms:
            return value
        return self._deep(value)

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.body(value)
        if isinstance(value, dict):
            pairs = [(self._deep(k), self._deep(v)) for k, v in value.items()]
            if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
                return value
            return type(value)(pairs)
        if isinstance(value, list | tuple):
            parts = [self._deep(v) for v in value]
            if all(a is b for a, b in zip(parts, value, strict=True)):
                return value
            if hasattr(value, "_fields"):  # a named tuple
                return type(value)(*parts)
            return type(value)(parts)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changed = {}
            for f in dataclasses.fields(value):
                old = getattr(value, f.name)
                new = self._deep(old)
                if new is not old:
                    changed[f.name] = new
            return dataclasses.replace(value, **changed) if changed else value
        return value


#: Default requests per minute for the families Settings has no knob for.
DEFAULT_REPLAY_PER_MINUTE = 30.0


def family_rates(settings: Settings, keys: tuple[str, str] | None) -> dict[Family, float]:
    """Requests per minute for every family, from the settings (see docs/archive.md)."""
    poll = max(settings.spn_poll_interval, 0.001)
    return {
        Family.CDX: settings.cdx_per_minute,
        Family.AVAILABILITY: settings.cdx_per_minute,
        Family.SPN_SUBMIT: settings.spn_per_minute_keys if keys else settings.spn_per_minute_anon,
        # Polls are spaced per job by spn_poll_interval; the family cap lets a few jobs share it.
        Family.SPN_STATUS: max(60.0, 120.0 / poll),
        Family.REPLAY: DEFAULT_REPLAY_PER_MINUTE,
    }


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Every archive.org URL citewatch uses, derived from the configured bases."""

    base: str
    availability_base: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        base = settings.wayback_url.rstrip("/")
        return cls(base, (settings.availability_url or base).rstrip("/"))

    @property
    def cdx(self) -> str:
        return f"{self.base}/cdx/search/cdx"

    @property
    def available(self) -> str:
        return f"{self.availability_base}/wayback/available"

    @property
    def save(self) -> str:
        return f"{self.base}/save"

    def save_status(self, job_id: str) -> str:
        return f"{self.base}/save/status/{quote(job_id, safe='')}"

    def replay(self, timestamp: str, original: str, raw: bool = True) -> str:
        return f"{self.base}/web/{timestamp}{'id_' if raw else ''}/{original}"


class RateLimiter:
    """Evenly spaced request starts, and a pause that holds back every request of the family.

    Reserving a slot is a plain read-modify-write with no ``await`` in between, so it needs no
    lock and is safe to share between event loops (runs in one process).
    """

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.next_slot = 0.0
        self.paused_until = 0.0

    def set_rate(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0

    def pause(self, seconds: float) -> None:
        """Hold the whole family back for ``seconds`` from now."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def refund(self) -> None:
        """Give a slot back: its request never reached the archive (the connection failed), so
        it spent none of the archive's budget, and a retry need not wait a whole interval."""
        self.next_slot = max(time.monotonic(), self.next_slot - self.interval)

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            slot = max(now, self.next_slot, self.paused_until)
            self.next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if time.monotonic() >= self.paused_until:  # a 429 during our wait pushes us back
                return


_LIMITERS: dict[tuple[str, Family], RateLimiter] = {}


def limiter_for(origin: str, family: Family, per_minute: float) -> RateLimiter:
    """The process-wide limiter of one family at one archive origin."""
    key = (origin, family)
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = RateLimiter(per_minute)
    else:
        limiter.set_rate(per_minute)
    return limiter


@dataclass
class Breaker:
    """Counts what goes wrong and decides when archive work stops for the run."""

    max_consecutive_429: int = 3
    state: ArchiveState = ArchiveState.OK
    reason: str | None = None
    successes: int = 0
    """Answers of any kind but 429 (a 5xx or a malformed answer too: the archive is there)."""
    rate_limited_responses: int = 0
    consecutive_429: dict[Family, int] = field(default_factory=dict)
    consecutive_failures: int = 0

    @property
    def open(self) -> bool:
        return self.state is not ArchiveState.OK

    def trip(self, state: ArchiveState, reason: str) -> None:
        if not self.open:
            self.state, self.reason = state, reason

    def answered(self, family: Family, status: int) -> None:
        if status == 429:
            self.rate_limited_responses += 1
            count = self.consecutive_429.get(family, 0) + 1
            self.consecutive_429[family] = count
            if count >= self.max_consecutive_429:
                self.trip(
                    ArchiveState.RATE_LIMITED,
                    f"archive.org answered {count} requests in a row with 429 Too Many Requests "
                    f"({family} endpoint)",
                )
            return
        self.consecutive_429[family] = 0
        self.consecutive_failures = 0
        self.successes += 1

    def malformed(self, family: Family) -> None:
        """An answer came, but broken (a header value httpx refuses, a malformed status line):
        the archive is there, so this is never a connection failure. It says nothing about rate
        limits either, so a run of 429s on ``family`` is not reset by it."""
        self.consecutive_failures = 0
        self.successes += 1

    def connection_failed(self, family: Family, error: str, final: bool) -> None:
        """A connection-level failure; ``final`` when the retries for that request are used up."""
        if self.rate_limited_responses:
            self.trip(
                ArchiveState.RATE_LIMITED,
                "archive.org stopped accepting connections after answering 429 "
                f"(probably a temporary firewall block): {error}",
            )
            return
        if not final:
            return
        self.consecutive_failures += 1
        if self.successes == 0 or self.consecutive_failures >= 2:
            self.trip(ArchiveState.UNREACHABLE, f"archive.org is unreachable: {error}")


#: How httpx (httpcore, h11) words a connection that closed instead of answering.
_DISCONNECTED = (
    "Server disconnected",
    "peer unexpectedly closed connection",
    "peer closed connection without sending complete message body",
)


def malformed_answer(exc: httpx.TransportError) -> bool:
    """True if ``exc`` means the archive answered, with bytes httpx will not take: a redirect
    whose ``Location`` is no URL (a control byte, a bad port — httpx parses it even with
    redirects off), a header line with a NUL, a malformed status line, an oversized head, a
    broken chunk. Those are answers — errors for the request, never connection failures: a host
    that sent them is reachable. A connection closed before or during the answer is still a
    connection failure."""
    return isinstance(exc, httpx.RemoteProtocolError) and not str(exc).startswith(_DISCONNECTED)


@dataclass(frozen=True, slots=True)
class Reply:
    """A response, read (capped) into memory."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    complete: bool = True

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, every string fit to store (:func:`.decode.loads`: lone surrogates
        replaced); :class:`ValueError` if it is not JSON."""
        return decode.loads(self.body)


class _Transient(Exception):
    """Internal: an attempt that deserves another try."""

    def __init__(self, message: str, reply: Reply | None = None, connection: bool = False):
        super().__init__(message)
        self.reply = reply
        self.connection = connection


@dataclass
class GatewayTuning:
    """Knobs tests (and future settings) turn; defaults suit archive.org."""

    pause_on_429: float = 60.0
    """Seconds a 429 holds back its whole family (archive.org sends no Retry-After)."""
    max_consecutive_429: int = 3
    rates: Mapping[Family | str, float] = field(default_factory=dict)
    """Overrides of :func:`family_rates` (requests per minute)."""


class Gateway:
    """Paced, retried, breaker-guarded requests to the archive. Use ``async with``."""

    def __init__(
        self,
        settings: Settings,
        *,
        keys: tuple[str, str] | None = None,
        tuning: GatewayTuning | None = None,
        reporter: Reporter | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.tuning = tuning or GatewayTuning()
        self.endpoints = Endpoints.from_settings(settings)
        self.reporter = reporter
        self.breaker = Breaker(self.tuning.max_consecutive_429)
        self.sent: dict[Family, int] = {family: 0 for family in Family}
        self._keys = keys
        self.keys_filter = KeyFilter(keys)
        self._own_client = client is None
        self.client = client or make_client(
            settings.net,
            max_connections=8,
            headers={"Accept-Encoding": "gzip, deflate"},
        )
        rates = family_rates(settings, keys)
        for name, value in self.tuning.rates.items():
            rates[Family(name)] = value
        self.rates = rates
        self._rng = random.Random()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    def scrub(self, text: str | None) -> str | None:
        """``text`` with the archive.org keys replaced — for anything stored, logged or shown."""
        return self.keys_filter.text(text)

    def _limiter(self, family: Family, url: str) -> RateLimiter:
        origin = httpx.URL(url)
        return limiter_for(
            f"{origin.scheme}://{origin.netloc.decode()}", family, self.rates[family]
        )

    def check_open(self) -> None:
        """Raise :class:`ArchiveStopped` if the breaker has tripped."""
        if self.breaker.open:
            raise ArchiveStopped(self.breaker.state, self.breaker.reason or "archive stopped")

    async def get(
        self,
        family: Family,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        auth: bool = False,
    ) -> Reply:
        """GET ``url`` (params encoded the CDX way: repeated ``filter``/``collapse`` allowed)."""
        target = full_url(url, dict(params)) if params else url
        return await self._request(family, "GET", target, None, max_body, auth)

    async def post_form(
        self, family: Family, url: str, form: Mapping[str, str], *, auth: bool = False
    ) -> Reply:
        return await self._request(family, "POST", url, dict(form), 1024 * 1024, auth)

    async def _request(
        self,
        family: Family,
        method: str,
        url: str,
        form: dict[str, str] | None,
        max_body: int,
        auth: bool,
    ) -> Reply:
        self.check_open()
        try:
            httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:  # e.g. a cited original with a control byte
            raise ArchiveRequestError(
                self.scrub(f"not a URL citewatch can request: {exc}") or "invalid URL"
            ) from None
        limiter = self._limiter(family, url)
        # Replays are pages; every API answers JSON (SPN2 needs the header to answer JSON at all).
        headers = {} if family is Family.REPLAY else {"Accept": "application/json"}
        if auth and self._keys:
            headers["Authorization"] = f"LOW {self._keys[0]}:{self._keys[1]}"

        async def attempt() -> Reply:
            self.check_open()
            await limiter.acquire()
            self.check_open()
            self.sent[family] += 1
            try:
                async with self.client.stream(method, url, data=form, headers=headers) as response:
                    # Filtered as it arrives: a server echoing the Authorization header back
                    # (in an error message, a header, a redirect) hands nothing on with a key.
                    # The body is read a key's length past the cap and cut after the filter, so
                    # a key the cap falls in is hidden whole, never left half shown.
                    hide = self.keys_filter
                    try:
                        body, complete = await read_capped(response, max_body + hide.longest)
                    except (zlib.error, httpx.DecodingError) as exc:
                        # The archive answered, with a body its own encoding cannot decode.
                        self.breaker.answered(family, response.status_code)
                        raise _Transient(
                            self.scrub(f"HTTP {response.status_code}, undecodable body: {exc}")
                            or "undecodable body"
                        ) from None
                    body = hide.body(body, cut=not complete)
                    if len(body) > max_body:
                        body, complete = body[:max_body], False
                    reply = Reply(
                        str(response.url),
                        response.status_code,
                        hide.headers(response.headers),
                        body,
                        complete,
                    )
            except PrivateAddressError as exc:
                self.breaker.trip(
                    ArchiveState.UNREACHABLE,
                    f"the archive address is not public ({exc}); use --connect-to to route it",
                )
                self.check_open()
                raise
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    limiter.refund()  # nothing reached the archive: no budget spent
                message = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, httpx.ProtocolError):  # may quote the answer, cut short
                    message = self.keys_filter.excerpts(message) or ""
                else:
                    message = self.scrub(message) or ""
                if malformed_answer(exc):
                    # The archive answered, with bytes that break HTTP (say a Location header
                    # with a control byte): an error for this request, retried like a 5xx —
                    # never a sign that the archive is unreachable.
                    self.breaker.malformed(family)
                    raise _Transient(f"malformed answer from the archive: {message}") from None
                self.breaker.connection_failed(family, message, final=False)
                self.check_open()
                raise _Transient(message, connection=True) from None
            self.breaker.answered(family, reply.status)
            if reply.status == 429:
                limiter.pause(self.tuning.pause_on_429)
                if self.reporter is not None and not self.breaker.open:
                    self.reporter.note(
                        f"archive.org rate limit (429) on {family}: pausing that endpoint "
                        f"for {self.tuning.pause_on_429:g}s"
                    )
                self.check_open()
                raise _Transient("429 Too Many Requests", reply)
            if reply.status in TRANSIENT_STATUSES:
                raise _Transient(f"HTTP {reply.status}", reply)
            return reply

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.reply is not None and exc.reply.status == 429:
                return 0.0  # the family pause does the waiting, for every request of the family
            backoff = self.settings.backoff
            if backoff <= 0:
                return 0.0
            return min(
                backoff * 2 ** (state.attempt_number - 1) + self._rng.uniform(0, backoff), 30.0
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(0, self.settings.retries) + 1),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
            wait=wait,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except _Transient as exc:
            if exc.connection:
                self.breaker.connection_failed(family, str(exc), final=True)
                self.check_open()
            elif exc.reply is not None and exc.reply.status != 429:
                return exc.reply  # a 5xx that stayed: the caller reports it for this URL
            raise ArchiveRequestError(self.scrub(str(exc)) or "request failed") from None
