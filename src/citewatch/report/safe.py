"""Escaping for text that comes from profiles: anchor text, sentences and URLs are untrusted.

A profile can contain ``<script>``, Markdown that turns into links, a ``javascript:`` URL, or a cell
that a spreadsheet would run as a formula. Every writer goes through these few functions, so the rule
"only http(s) URLs become links; everything else is shown as text" lives in one place.

>>> is_web_url("https://example.org/a"), is_web_url("javascript:alert(1)"), is_web_url(" http://x")
(True, False, False)
>>> print(md_text("<b>*x*</b> | [y](z) (ok)"))
\\<b\\>\\*x\\*\\</b\\> \\| \\[y\\](z) (ok)
>>> md_code("a`b")
'`` a`b ``'
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_WEB_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f<>\"'`\\]")
#: Punctuation Markdown (CommonMark/GFM) could interpret inline or in a table. Parentheses and
#: ``!`` are left alone: they only mean something after a ``]`` or before a ``[``, both escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")
_WHITESPACE = re.compile(r"\s+")


def is_web_url(url: str | None) -> bool:
    """True only for an absolute http(s) URL with a host and no characters that could break out
    of an attribute or a Markdown link destination."""
    if not url or not _WEB_SCHEME.match(url) or _UNSAFE_IN_URL.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def one_line(text: str | None) -> str:
    """Collapse all whitespace (newlines too) to single spaces."""
    return _WHITESPACE.sub(" ", text or "").strip()


def md_text(text: str | None) -> str:
    """Untrusted text as literal Markdown: backslash-escape punctuation, one line, no raw HTML."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def md_code(text: str | None) -> str:
    """Untrusted text as an inline code span (a fence longer than any backtick run inside).

    Pipes are backslash-escaped: inside a GFM table cell that is the only way to keep a ``|`` in a
    code span from splitting the cell (outside tables the backslash shows; harmless).
    """
    body = one_line(text).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or longest else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_link(label: str, url: str | None) -> str:
    """A Markdown link when ``url`` is http(s); otherwise the URL shown as code, never a link."""
    if not is_web_url(url):
        return md_code(url or label)
    return f"[{md_text(label)}](<{url}>)"


def md_url(url: str | None) -> str:
    """An http(s) URL as an autolink-style link showing itself; anything else as code."""
    return md_link(url or "", url) if is_web_url(url) else md_code(url or "")
