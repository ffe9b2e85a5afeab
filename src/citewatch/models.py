"""The small, typed records that flow through the pipeline.

extract → :class:`Profile` (with :class:`Citation` and :class:`Finding` rows)
check   → :class:`ProbeResult`
archive → :class:`Snapshot`, :class:`CaptureRequest`

Every record is a frozen (or plain) dataclass; the store turns them into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Why a URL stands in a profile."""

    SOURCE = "source"
    """Cited in the body as evidence."""
    NAVIGATION = "navigation"
    """Bylines, author pages, series/topic/recommended lists, footers."""
    MEDIA = "media"
    """Images and embedded media."""


class Outcome(StrEnum):
    """What one probe of a URL found (DESIGN §5). Exhaustive."""

    OK = "ok"
    REDIRECTED = "redirected"
    """Ended ok after a permanent redirect to another URL."""
    SOFT_404 = "soft_404"
    NOT_FOUND = "not_found"
    GONE = "gone"
    CLIENT_ERROR = "client_error"
    BLOCKED = "blocked"
    """401/403/407/451/999, bot walls, 429 after retries: we cannot tell."""
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    INVALID_URL = "invalid_url"
    SKIPPED = "skipped"
    """Not probed: scheme, policy, private address."""


#: Outcomes that are definitive evidence that the cited page is gone.
DEFINITIVE_FAILURES = frozenset(
    {Outcome.NOT_FOUND, Outcome.GONE, Outcome.SOFT_404, Outcome.DNS_ERROR}
)
#: Failures that may well be on our side of the wire.
CONNECTION_FAILURES = frozenset(
    {Outcome.TIMEOUT, Outcome.DNS_ERROR, Outcome.CONNECT_ERROR, Outcome.TLS_ERROR}
)
SUCCESSES = frozenset({Outcome.OK, Outcome.REDIRECTED})


class Verdict(StrEnum):
    """A URL's state, derived from its whole check history (DESIGN §5)."""

    ALIVE = "alive"
    MOVED = "moved"
    FAILING = "failing"
    DEAD = "dead"
    BLOCKED = "blocked"
    SKIPPED = "skipped"
    UNCHECKED = "unchecked"


#: Verdicts that make a citation "broken" for exit codes and `fix`.
BROKEN_VERDICTS = frozenset({Verdict.DEAD})


class NetworkHealth(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class ArchivedRef:
    """A citation that is itself a Wayback Machine link, unwrapped."""

    original: str
    """The original URL the capture is of."""
    timestamp: str
    """14-digit (or shorter, as cited) Wayback timestamp."""


@dataclass(frozen=True, slots=True)
class Citation:
    """One occurrence of a URL in a profile."""

    url: str | None
    """Absolute, normalised URL to check (no fragment); None when it could not be resolved."""
    raw: str
    """The text exactly as it stands in the document."""
    line: int
    """1-based line (for PDFs: the page number)."""
    column: int
    """1-based column of ``raw`` on ``line`` (0 when unknown, e.g. PDF annotations)."""
    text: str = ""
    """Anchor text (empty for bare URLs)."""
    context: str = ""
    """The sentence around the citation."""
    section: str = ""
    """The heading/label the citation stands under."""
    role: Role = Role.SOURCE
    fragment: str = ""
    """The fragment as cited (without '#'); kept on the citation, never checked."""
    archived: ArchivedRef | None = None
    skip_reason: str | None = None
    """Set for mailto:, tel:, javascript:, data:, fragment-only links: recorded, never checked."""
    page: int | None = None
    """PDF page number (1-based), when the profile is a PDF."""


@dataclass(frozen=True, slots=True)
class Finding:
    """Something wrong with the input that is not a citation: recorded, never fatal."""

    kind: str
    """e.g. malformed_url, unreadable, binary, empty, encoding, too_large, guessed_base_url."""
    message: str
    line: int | None = None
    raw: str = ""


@dataclass(slots=True)
class Profile:
    """A profile document and what was extracted from it."""

    path: str
    title: str = ""
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    """ISO date YYYY-MM-DD."""
    base_url: str | None = None
    base_url_guessed: bool = False
    sha256: str = ""
    format: str = ""
    """text | markdown | html | pdf | unknown"""
    citations: list[Citation] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The evidence from probing one URL once."""

    url: str
    outcome: Outcome
    checked_at: str
    """ISO-8601 UTC timestamp."""
    method: str = "GET"
    status: int | None = None
    final_url: str | None = None
    redirects: tuple[tuple[int, str], ...] = ()
    """(status, location) for each hop followed."""
    elapsed_ms: int = 0
    content_type: str | None = None
    content_length: int | None = None
    sha1: str | None = None
    """Base32 SHA-1 of the whole body (comparable to CDX digests); None if not read whole."""
    title: str | None = None
    error: str | None = None
    attempts: int = 1
    permanent_redirect: bool = False
    """True when the chain contained only permanent (301/308) redirects to another URL."""
    text_sample: str | None = None
    """A short plain-text sample of the page (for drift scores), never the whole body."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One Wayback capture row (CDX fields)."""

    url: str
    """The URL we asked about (normalised)."""
    timestamp: str
    original: str
    status: int | None
    mimetype: str
    digest: str
    length: int | None


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """One Save Page Now request and what became of it."""

    url: str
    requested_at: str
    status: str
    """success | pending | error | dry_run"""
    job_id: str | None = None
    timestamp: str | None = None
    status_ext: str | None = None
    message: str | None = None
