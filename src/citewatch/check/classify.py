"""Turn what a probe saw into an :class:`~citewatch.models.Outcome` (DESIGN §5).

Everything here is a pure function of status codes, headers, titles, text and exceptions, so the
rules can be unit-tested without a network and read as a specification:

>>> outcome_for_status(404), outcome_for_status(451), outcome_for_status(503)
(<Outcome.NOT_FOUND: 'not_found'>, <Outcome.BLOCKED: 'blocked'>, <Outcome.SERVER_ERROR: 'server_error'>)
>>> says_not_found("Page not found – Example"), says_not_found("الصفحة غير موجودة")
(True, True)
>>> is_home_path("/index.html"), is_home_path("/news/2019/article")
(True, False)
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from ..models import Outcome
from ..net import NameResolutionError, PrivateAddressError

#: Statuses that mean "someone refuses to show us the page": we cannot tell whether it exists.
BLOCKED_STATUSES = frozenset({401, 403, 407, 451, 999})
#: Statuses worth retrying: the server may answer differently in a moment.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
#: Outcomes worth retrying (besides the transient statuses).
TRANSIENT_OUTCOMES = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT})


def outcome_for_status(status: int) -> Outcome:
    """The outcome of a final (non-redirect) HTTP status, before any content heuristics."""
    if 200 <= status < 300:
        return Outcome.OK
    if status == 404:
        return Outcome.NOT_FOUND
    if status == 410:
        return Outcome.GONE
    if status in BLOCKED_STATUSES or status == 429:
        return Outcome.BLOCKED
    if 400 <= status < 500:
        return Outcome.CLIENT_ERROR
    # 5xx, and oddities (1xx, 3xx without a Location) that only a broken server sends.
    return Outcome.SERVER_ERROR


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def outcome_for_exception(exc: BaseException) -> tuple[Outcome, str]:
    """Map a failed exchange to (outcome, one-line error text).

    ``connect_error`` covers refused, reset and unreachable connections, over TLS too; ``tls_error``
    is a failed handshake or certificate check; a server that closes the connection mid-handshake
    is a connection problem, not a certificate one.
    """
    chain = list(_causes(exc))
    message = _describe(exc)
    for link in chain:
        if isinstance(link, PrivateAddressError):
            return Outcome.SKIPPED, f"private address: {link} (use --allow-private to check it)"
        if isinstance(link, NameResolutionError):
            return Outcome.DNS_ERROR, str(link)
    for link in chain:
        if isinstance(link, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            return Outcome.CONNECT_ERROR, f"connection closed during TLS: {_describe(link)}"
        if isinstance(link, ssl.SSLError):
            return Outcome.TLS_ERROR, _describe(link)
    if any(
        isinstance(link, httpx.TimeoutException | httpcore.TimeoutException | TimeoutError)
        for link in chain
    ):
        kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            kind = "total"
        return Outcome.TIMEOUT, f"{kind} timeout{': ' + message if message else ''}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return Outcome.INVALID_URL, message
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnect" in message.lower() or "closed" in message.lower():
            return Outcome.CONNECT_ERROR, message
        return Outcome.SERVER_ERROR, f"protocol error: {message}"
    if isinstance(exc, httpx.TransportError | OSError | httpcore.NetworkError):
        return Outcome.CONNECT_ERROR, message
    return Outcome.CONNECT_ERROR, message


def _describe(exc: BaseException) -> str:
    """The first non-empty message along the cause chain, else the exception's class name."""
    for link in _causes(exc):
        text = str(link).strip()
        if text:
            return text
    return type(exc).__name__


# -- content heuristics ------------------------------------------------------------------------

# "Not found" must be said *about the page*: a headline such as "Flight 404 lands safely" or a
# short story saying "the journalist was not found" is content, not an error page.
_NOT_FOUND = re.compile(
    r"""
    \b(?:page|article|content|file|document|story|post|url|link|resource|item)s?\b[^.!?\n]{0,40}?
        (?:\bnot\s+(?:be\s+)?found\b|\b(?:does\s+not|doesn[’']t|no\s+longer)\s+exists?\b
        |\b(?:is|was|has\s+been)\s+(?:no\s+longer\s+available|removed|deleted)\b
        |\bno\s+longer\s+available\b|\b(?:cannot|can[’']t|could\s+not|couldn[’']t)\s+be\s+found\b)
    | \berror\s*404\b | \b404\s*(?:error|not\s+found|page)\b | \bnothing\s+(?:was\s+)?found\b
    | الصفحة\s+(?:المطلوبة\s+)?غير\s+(?:موجودة|متوفرة) | المحتوى\s+غير\s+(?:موجود|متوفر)
    | لم\s+(?:يتم|نتمكن\s+من)\s+العثور\s+على\s+(?:الصفحة|المحتوى|المقال|الرابط)
    | لا\s+توجد\s+صفحة | خطأ\s*404
    """,
    re.IGNORECASE | re.VERBOSE,
)
# A title says "not found" only when one of its parts (split at | – — : and " - ") is nothing else.
_TITLE_PART = re.compile(r"\s*(?:\||–|—|:|\s-\s)\s*")
_TITLE_NOT_FOUND = re.compile(
    r"^(?:(?:sorry|oops|error)[,!.]?\s*)?(?:404|not\s+found|404\s+not\s+found"
    r"|(?:error\s*)?404(?:\s*error)?|(?:the\s+)?(?:page|article|file|content)\s+(?:was\s+)?not\s+found"
    r"|(?:this\s+|the\s+)?page\s+(?:does\s+not|doesn[’']t)\s+exist"
    r"|(?:this\s+|the\s+)?page\s+(?:is\s+)?(?:missing|unavailable|removed|no\s+longer\s+available)"
    r"|الصفحة\s+(?:المطلوبة\s+)?غير\s+(?:موجودة|متوفرة)|خطأ\s*404|404\s*[-–]?\s*الصفحة\s+غير\s+موجودة"
    r"|لم\s+يتم\s+العثور\s+على\s+الصفحة)[.!]?$",
    re.IGNORECASE,
)
#: A page whose visible text is shorter than this may be judged by its body alone.
SHORT_BODY_CHARS = 1200

_HOME_PATH = re.compile(
    r"^/?(?:(?:[a-z]{2}(?:[-_][a-z]{2})?)/?)?(?:(?:index|default|home|main)(?:\.\w{2,5})?)?/?$",
    re.IGNORECASE,
)
_ERROR_PATH = re.compile(
    r"(?:^|/)(?:404|error|errors|not[-_]?found|page[-_]?not[-_]?found|pagenotfound|missing)"
    r"(?:\.\w{2,5})?(?:/|$)",
    re.IGNORECASE,
)

_BOT_WALL_TITLES = (
    "just a moment",
    "attention required! | cloudflare",
    "checking your browser",
    "please wait while we verify",
    "ddos-guard",
    "verifying you are human",
    "are you a robot",
    "human verification",
)
_BOT_WALL_MARKERS = (
    "cf-chl",
    "cf_chl",
    "challenge-platform",
    "captcha-delivery.com",
    "/_incapsula_resource",
    "px-captcha",
    "g-recaptcha",
)

#: Any of the markers, in any case (one scan of the page head instead of one per marker).
_BOT_WALL_MARKER = re.compile("|".join(map(re.escape, _BOT_WALL_MARKERS)), re.ASCII | re.IGNORECASE)


def says_not_found(text: str | None) -> bool:
    """True if a short page text says the page itself does not exist (English and Arabic)."""
    return bool(text) and _NOT_FOUND.search(text) is not None  # type: ignore[arg-type]


def title_says_not_found(title: str | None) -> bool:
    """True if a part of the title is only "not found" / "404" / "الصفحة غير موجودة"."""
    if not title:
        return False
    return any(_TITLE_NOT_FOUND.match(part) for part in _TITLE_PART.split(title.strip()) if part)


def is_home_path(path: str) -> bool:
    """True for a site's front page: '/', '/index.html', '/en/', '/ar/home' and the like."""
    return _HOME_PATH.match(path or "/") is not None


def is_error_path(path: str) -> bool:
    """True for a generic error page path such as '/404.html' or '/errors/not-found'."""
    return _ERROR_PATH.search(path or "") is not None


def is_bot_wall(headers: Mapping[str, str], title: str | None, body_head: str) -> bool:
    """A challenge/CAPTCHA interstitial (Cloudflare, DataDome, PerimeterX…): we were not let in."""
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if title and title.strip().lower().startswith(_BOT_WALL_TITLES):
        return True
    return _BOT_WALL_MARKER.search(body_head, 0, 20000) is not None


def _site(host: str) -> str:
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


@dataclass(frozen=True, slots=True)
class Page:
    """What classification needs to know about a 2xx answer."""

    url: str
    """The URL asked for."""
    final_url: str
    status: int
    title: str | None = None
    text: str | None = None
    """Visible text sample."""
    text_length: int | None = None
    """Length of the whole visible text (may exceed the sample)."""
    sha1: str | None = None
    length: int | None = None
    redirected: bool = False


def soft_404_reason(page: Page) -> str | None:
    """Why a 2xx page is really a "not found" page, or None. The host-level probe is separate."""
    asked = urlsplit(page.url)  # urllib: ten times cheaper than httpx.URL, same answer here
    final = urlsplit(page.final_url)
    deep = not is_home_path(asked.path)
    if page.redirected and deep and _site(final.hostname or "") == _site(asked.hostname or ""):
        if is_home_path(final.path) and not final.query:
            return "a deep URL redirected to the site's home page"
        if is_error_path(final.path):
            return f"redirected to a generic error page ({final.path})"
    if page.title and title_says_not_found(page.title):
        return f"the page title says not found: {page.title[:80]!r}"
    short = page.text_length is not None and page.text_length <= SHORT_BODY_CHARS
    if short and page.text and (says_not_found(page.text) or title_says_not_found(page.text)):
        return "the short page text says not found"
    return None


#: Visible text below this, on a page the host also serves for random paths, is an app shell.
APP_SHELL_TEXT_CHARS = 200


_APP_ROOT = re.compile(
    r"""<(?:div|main|app-root)[^>]*\b(?:id=["']?(?:root|app|__next|__nuxt|svelte|main-app)\b"""
    r"""|ng-version|data-reactroot|ng-app)|<script[^>]+type=["']?module|<noscript>[^<]*javascript""",
    re.IGNORECASE,
)


def is_app_shell(page: Page, head: str) -> bool:
    """A near-empty page with an app mount point or module script and no "not found" wording:
    what single-page apps serve for every path before their script runs. Matching the host's
    random-path page then proves nothing. (``head``: the start of the decoded HTML.)"""
    if page.redirected or title_says_not_found(page.title):
        return False
    if page.text and says_not_found(page.text):
        return False
    short = page.text_length is not None and page.text_length < APP_SHELL_TEXT_CHARS
    return short and _APP_ROOT.search(head) is not None


@dataclass(frozen=True, slots=True)
class HostPrint:
    """How a host answers a random path that cannot exist (its "not found" page, when it is 2xx)."""

    final_url: str
    title: str | None
    sha1: str | None
    length: int | None
    redirected: bool


def matches_host_print(page: Page, fingerprint: HostPrint) -> bool:
    """True when ``page`` looks like the page the host serves for paths that do not exist."""
    if page.sha1 and page.sha1 == fingerprint.sha1:
        return True
    if (
        fingerprint.redirected
        and page.redirected
        and _strip_query(page.final_url) == _strip_query(fingerprint.final_url)
    ):
        return True
    same_title = bool(page.title and fingerprint.title) and (
        page.title.strip() == fingerprint.title.strip()  # type: ignore[union-attr]
    )
    if same_title and page.length and fingerprint.length:
        return 0.8 <= page.length / fingerprint.length <= 1.25
    return False


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]
