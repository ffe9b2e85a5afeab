"""URL handling: WHATWG parsing and resolution (ada-url), normalisation, Wayback unwrapping.

Everything that decides "is this the same page?" lives here, so that the same page cited as a raw
Arabic IRI and as its percent-encoded form becomes one URL row.

>>> resolve("/experts/a/", "https://www.washingtoninstitute.org/policy-analysis/x").url
'https://www.washingtoninstitute.org/experts/a/'
>>> unwrap_wayback("https://web.archive.org/web/20171017230858/https://example.com/a")
ArchivedRef(original='https://example.com/a', timestamp='20171017230858')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ada_url import URL

from .models import ArchivedRef

#: Schemes we record but never check, with the reason shown to users.
SKIPPED_SCHEMES = {
    "mailto:": "mailto link (not checked)",
    "tel:": "telephone link (not checked)",
    "javascript:": "javascript link (not checked)",
    "data:": "data URL (not checked)",
    "sms:": "sms link (not checked)",
    "file:": "local file link (not checked)",
    "ftp:": "ftp link (not checked)",
}

_PERCENT = re.compile(r"%([0-9a-fA-F]{2})")
_WAYBACK_PATH = re.compile(
    r"^/web/(?P<ts>\d{1,14})(?P<flags>[a-z]{2}_|\*)?/(?P<original>.+)$", re.IGNORECASE | re.DOTALL
)
WAYBACK_HOSTS = frozenset({"web.archive.org", "wayback.archive.org", "www.web.archive.org"})


_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))


class InvalidURL(ValueError):
    """The text cannot be parsed as a URL (alone or against its base)."""


@dataclass(frozen=True, slots=True)
class ResolvedURL:
    """The result of resolving a cited reference."""

    href: str
    """The full WHATWG href, fragment included."""
    url: str
    """Normalised URL to check: no fragment, upper-case percent escapes."""
    fragment: str
    """Fragment without '#', as cited."""
    scheme: str
    host: str
    skip_reason: str | None
    archived: ArchivedRef | None


def _upper_escapes(text: str) -> str:
    return _PERCENT.sub(lambda m: "%" + m.group(1).upper(), text)


def parse(href: str, base: str | None = None) -> URL:
    """Parse ``href`` (optionally against ``base``) the WHATWG way, or raise :class:`InvalidURL`."""
    try:
        if base:
            return URL(href, base)
        return URL(href)
    except ValueError as exc:
        raise InvalidURL(f"cannot parse {href!r}" + (f" against {base!r}" if base else "")) from exc


def is_absolute(text: str) -> bool:
    """True if ``text`` parses as a URL on its own (it has a scheme)."""
    try:
        URL(text)
    except ValueError:
        return False
    return True


def normalise(href: str) -> tuple[str, str]:
    """Split a parsed href into (URL to check, fragment), with percent escapes upper-cased."""
    url, _, fragment = href.partition("#")
    return _upper_escapes(url), fragment


def unwrap_wayback(href: str) -> ArchivedRef | None:
    """Unwrap a Wayback Machine replay URL into the original URL and capture timestamp."""
    try:
        parsed = URL(href)
    except ValueError:
        return None
    if parsed.hostname.lower() not in WAYBACK_HOSTS:
        return None
    # ada has already normalised the path; the original URL starts after /web/<ts>[flags]/
    path_and_rest = href.split(parsed.host, 1)[1]
    match = _WAYBACK_PATH.match(path_and_rest)
    if not match:
        return None
    original = match.group("original")
    # Wayback URLs often collapse "https://" into "https:/".
    original = re.sub(r"^(https?):/(?!/)", r"\1://", original, flags=re.IGNORECASE)
    if "://" not in original:
        original = "http://" + original
    try:
        original_href = URL(original).href
    except ValueError:
        return None
    return ArchivedRef(original=normalise(original_href)[0], timestamp=match.group("ts"))


def resolve(raw: str, base: str | None) -> ResolvedURL:
    """Resolve a reference as cited against the document's base URL.

    Raises :class:`InvalidURL` when it cannot be parsed, or when it is relative and there is no base.
    """
    text = raw.strip(_C0_AND_SPACE)  # WHATWG trims only these, not every Unicode space
    lowered = text.lower()
    for prefix, reason in SKIPPED_SCHEMES.items():
        if lowered.startswith(prefix):
            return ResolvedURL(text, text, "", prefix[:-1], "", reason, None)
    if text.startswith("#"):
        return ResolvedURL(
            text, text, text[1:], "", "", "fragment-only link (same page, not checked)", None
        )
    if not base and not is_absolute(text):
        raise InvalidURL(f"relative reference {text!r} and no base URL")
    parsed = parse(text, base)
    href = parsed.href
    scheme = parsed.protocol.rstrip(":")
    if scheme not in ("http", "https"):
        return ResolvedURL(
            href, href, "", scheme, parsed.hostname, f"{scheme}: URL (not checked)", None
        )
    if not parsed.hostname:
        raise InvalidURL(f"{text!r} has no host")
    url, fragment = normalise(href)
    return ResolvedURL(
        href=href,
        url=url,
        fragment=fragment,
        scheme=scheme,
        host=parsed.hostname.lower(),
        skip_reason=None,
        archived=unwrap_wayback(url),
    )


def host_of(url: str) -> str:
    """The host name of an absolute URL ('' when it has none)."""
    try:
        return URL(url).hostname.lower()
    except ValueError:
        return ""


def wayback_replay_url(
    timestamp: str, original: str, base: str = "https://web.archive.org", raw: bool = False
) -> str:
    """The replay URL of a capture; ``raw`` gives the ``id_`` form (the page as captured, no toolbar)."""
    return f"{base.rstrip('/')}/web/{timestamp}{'id_' if raw else ''}/{original}"
