"""What every reader shares: the reference record, sentences, sections and roles.

Readers only *locate* references (:class:`Ref`); :mod:`citewatch.extract` resolves them all against
one base URL afterwards, because the base may only be known (or guessed) once the whole document has
been read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..models import Finding, Role

#: Longest context kept for a citation (characters, after collapsing whitespace).
MAX_CONTEXT = 400
_WINDOW = 600
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]*_]*\s+")
_SPACE = re.compile(r"\s+")
# Markup that dumps and Markdown leave in prose; a reviewer reads the sentence, not the syntax.
_MD_LINK = re.compile(
    r"!?\[((?:\\.|[^\]\\\n])*)\]\("
    r"(?:[ \t]*<(?:\\.|[^<>\\\n])*>|(?:[^()\s]|\([^()\s]*\))*)"  # <destination> or destination
    r"(?:\s+(?:\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|\((?:\\.|[^()\\])*\)))?[ \t]*\)"  # title
)
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^<>\s]+)>", re.IGNORECASE)
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>])")

#: Section labels whose links are site furniture, not evidence (compared lower-case, by prefix).
NAV_SECTIONS = (
    "about the author",
    "recommended",
    "related",
    "topics",
    "topic",
    "regions",
    "tags",
    "categories",
    "share",
    "follow us",
    "more from",
    "more on",
    "read more",
    "you may also like",
    "newsletter",
    "navigation",
    "menu",
    "footer",
    "series",
    "in this series",
)
#: Site paths that are author/topic/series pages rather than cited documents.
_NAV_PATH = re.compile(
    r"^/(?:[^/?#]+/)*(?:experts?|authors?|people|staff|tags?|topics?|categor(?:y|ies)|series)(?:/|$)",
    re.IGNORECASE,
)
_NAV_LINE = re.compile(
    r"^\W*(?:by\s|part of a series|(?:or\s+)?see\s+part\s+\d|in this series|filed under|tags?:|topics?:)",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Ref:
    """A reference as located in a document, before resolution."""

    raw: str
    """Exact text at (line, column)."""
    line: int
    column: int
    text: str = ""
    context: str = ""
    section: str = ""
    role: Role = Role.SOURCE
    page: int | None = None
    target: str | None = None
    """What to resolve when it differs from ``raw`` (HTML entities decoded, ``www.`` prefixed)."""


@dataclass(slots=True)
class Extracted:
    """What a reader found: references, problems, metadata and any base the document declares."""

    refs: list[Ref] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    title: str = ""
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    base_href: str | None = None
    """``<base href>`` as written (may be relative to the document's address)."""
    canonical: str | None = None
    """The document's own address as it declares it (canonical link, og:url)."""


def collapse(text: str) -> str:
    """Whitespace runs to one space, trimmed."""
    return _SPACE.sub(" ", text).strip()


def readable(text: str) -> str:
    """Prose without Markdown link syntax, autolink brackets, emphasis markers or escapes.

    >>> readable(r"by [Abdullah Hayek \\(/experts/a/\\)](/experts/a/), see **this** <https://x.org/>.")
    'by Abdullah Hayek (/experts/a/), see this https://x.org/.'
    """
    if "[" in text:
        text = _MD_LINK.sub(lambda m: m.group(1), text)
    if "<" in text:
        text = _AUTOLINK.sub(lambda m: m.group(1), text)
    if "*" in text or "__" in text:
        text = _STRONG.sub(lambda m: m.group(2), text)
        text = _EMPHASIS.sub(lambda m: m.group(1), text)
    if "\\" in text:
        text = _ESCAPE.sub(lambda m: m.group(1), text)
    return text


def sentence_at(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` holding ``text[start:end]``, whitespace-collapsed, ≤ MAX_CONTEXT.

    Looks at most ``_WINDOW`` characters either side, so a 5 MB paragraph costs nothing extra.
    """
    lo = max(0, start - _WINDOW)
    hi = min(len(text), end + _WINDOW)
    s = lo
    for m in _SENTENCE_END.finditer(text, lo, start):
        s = m.end()
    e = hi
    m = _SENTENCE_END.search(text, end, hi)
    if m:
        e = m.start() + 1
    sentence = collapse(text[s:e])
    if len(sentence) <= MAX_CONTEXT:
        return readable(sentence)
    # Too long: a window of the source around the reference itself.
    half = max(60, (MAX_CONTEXT - (end - start)) // 2)  # some words before even a huge URL
    a, b = max(s, start - half), min(e, end + half)
    window = readable(collapse(text[a:b]))[: MAX_CONTEXT - 2]
    return ("…" if a > s else "") + window + ("…" if b < e else "")


def is_nav_section(section: str) -> bool:
    """True for sections such as "ABOUT THE AUTHORS", "RECOMMENDED", "TOPICS"."""
    low = section.strip().lower()
    return any(low.startswith(prefix) for prefix in NAV_SECTIONS)


def is_nav_line(line: str) -> bool:
    """Bylines and series lines: ``by [A](…)``, ``Part of a series: …``, ``or see Part 1: …``."""
    return bool(_NAV_LINE.match(line))


def is_nav_path(raw: str) -> bool:
    """A site-relative link to an author, topic, tag or series page."""
    return bool(_NAV_PATH.match(raw))


def is_relative(raw: str) -> bool:
    """A link to the same site: a path, not an absolute URL or protocol-relative one."""
    return raw.startswith("/") and not raw.startswith("//")


def without_spans(text: str, spans: list[tuple[int, int]], cap: int = 200) -> str:
    """``text`` minus the (sorted, non-overlapping) spans, cut at ``cap`` characters."""
    parts: list[str] = []
    size = pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        if start > pos:
            parts.append(text[pos:start])
            size += start - pos
            if size > cap:
                break
        pos = max(pos, end)
    return "".join(parts)[: cap + 1]
